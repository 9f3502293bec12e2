"""The paper's three case studies as measured decision procedures on cell records: one module
each (case_direction, case_select, case_sam) over shared statistics (case_stats); this index
keeps the names importable from one place.

Nothing here trains: the service runs (or reuses) jobs through measure callbacks, then hands the
cell records to these functions, which decide, score the decision against ground truth and
format a short report. Every result is a plain dataclass whose ``to_json()`` is JSON-serialisable.
"""

from __future__ import annotations

from tprm.analysis.case_direction import (BASELINES, Comparison, Decision, DirectionEvaluation, DirectionRow,
                                          MethodScore, _score, compare_to_baseline, direction_for_cell,
                                          evaluate_direction_rule, evaluate_on_plane, format_direction,
                                          format_direction_evaluation, track_record_lines, verdict_lines)
from tprm.analysis.case_sam import (GridSearch, SamWalk, WalkPoint, format_sam_walk, grid_search_best,
                                    record_trainings, regime_doubts, sam_walk)
from tprm.analysis.case_select import Pick, Selection, format_selection, select_model
from tprm.analysis.case_stats import MOVES, paired_difference_interval, standard_error, wilson_interval

__all__ = ["BASELINES", "MOVES", "Comparison", "Decision", "DirectionEvaluation", "DirectionRow", "GridSearch",
           "MethodScore", "Pick", "SamWalk", "Selection", "WalkPoint", "_score", "compare_to_baseline",
           "direction_for_cell", "evaluate_direction_rule", "evaluate_on_plane", "format_direction",
           "format_direction_evaluation", "format_sam_walk", "format_selection", "grid_search_best",
           "paired_difference_interval", "record_trainings", "regime_doubts", "sam_walk", "select_model",
           "standard_error", "track_record_lines", "verdict_lines", "wilson_interval"]
