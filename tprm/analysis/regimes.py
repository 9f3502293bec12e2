"""Classify cells into the paper's regimes (I, II-A, II-B) from mc and CKA.

The paper drew its boundaries by hand, so every threshold is a setting (see PAPER.md
"Regimes"); every result carries the thresholds it used and where each came from
("default", "recipe quickstart.yaml regimes.cka_threshold", "median of 12 well-connected
cells"), so a regime map is never shown without its evidence.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

from tprm.analysis.phase import aggregate, build_grid, cell_state, check_hotter, finite_number
from tprm.engine.recipe import RegimesSection

_DEFAULT = RegimesSection()  # the recipe schema holds every regime default (docs/recipes.md)

REGIMES = ("I", "II-A", "II-B", "diverged", "unknown")
_DIRECTIONS = {"I": "raise", "II-A": "lower", "II-B": "keep", "diverged": "lower", "unknown": None}
_OPPOSITE = {"fewer": "more", "smaller": "larger", "larger": "smaller"}
_KNOB_NAMES = {"batch_size": "batch size", "lr": "learning rate", "weight_decay": "weight decay",
               "sam_rho": "SAM rho"}


@dataclass(frozen=True)
class RegimeSettings:
    """Regime thresholds (the recipe's ``regimes:`` section) and where each value came from.

    mc_on: "error" classifies on mc of train error with ``mc_threshold``; "loss" on mc of train
    loss with ``mc_loss_threshold`` (a loss barrier has its own scale). cka_output: "softmax"
    (the paper's figure) or "logits". split: "fixed" uses ``cka_threshold``; "median" uses the
    median CKA of well-connected cells of a complete grid. Cells whose LMC endpoints differ by
    more than ``max_endpoint_gap`` are flagged uncertain (the midpoint is ambiguous).
    ``sources`` maps a field name to its origin; fields not named there are "default".
    """

    mc_on: str = _DEFAULT.mc_on
    mc_threshold: float = _DEFAULT.mc_threshold
    mc_loss_threshold: float = _DEFAULT.mc_loss_threshold
    cka_threshold: float = _DEFAULT.cka_threshold
    cka_output: str = _DEFAULT.cka_output
    split: str = _DEFAULT.split
    max_endpoint_gap: float = _DEFAULT.max_endpoint_gap
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        choices = {"mc_on": ("error", "loss"), "cka_output": ("softmax", "logits"), "split": ("fixed", "median")}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"regimes.{name}: {getattr(self, name)!r} is not valid; use one of {', '.join(valid)}")
        for name in ("mc_threshold", "mc_loss_threshold", "cka_threshold", "max_endpoint_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"regimes.{name}: {value!r} is not a finite number")
        if self.max_endpoint_gap < 0:
            raise ValueError(f"regimes.max_endpoint_gap: {self.max_endpoint_gap} is negative; use a value >= 0")
        unknown = set(self.sources) - {f for f in self.__dataclass_fields__ if f != "sources"}
        if unknown:
            raise ValueError(f"regimes sources: unknown field(s) {sorted(unknown)}")

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    @property
    def mc_metric(self) -> str:
        """Record field that holds the connectivity used: "mc" (train error) or "mc_loss"."""
        return "mc" if self.mc_on == "error" else "mc_loss"

    @property
    def mc_threshold_name(self) -> str:
        return "mc_threshold" if self.mc_on == "error" else "mc_loss_threshold"

    @property
    def mc_limit(self) -> float:
        """The mc threshold in use (depends on mc_on)."""
        return getattr(self, self.mc_threshold_name)

    @property
    def cka_metric(self) -> str:
        """Record field that holds the CKA used: "cka" (softmax) or "cka_logits"."""
        return "cka" if self.cka_output == "softmax" else "cka_logits"

    def thresholds(self) -> dict:
        """The thresholds in use, keyed by setting name."""
        return {"mc_on": self.mc_on, self.mc_threshold_name: self.mc_limit, "cka_output": self.cka_output,
                "cka_threshold": self.cka_threshold, "split": self.split,
                "max_endpoint_gap": self.max_endpoint_gap}

    def threshold_sources(self) -> dict:
        return {name: self.source(name) for name in self.thresholds()}


def barrier_for(metric: str, thresholds: dict | None = None) -> float | None:
    """|threshold| below which an mc value is no barrier, for a diverging heat map of `metric`
    ("mc" or "mc_loss"; None for other metrics): from `thresholds` (a regime grid's) when they
    name it, else tprm's default."""
    name = {"mc": "mc_threshold", "mc_loss": "mc_loss_threshold"}.get(metric)
    if name is None:
        return None
    return abs((thresholds or {}).get(name, getattr(RegimeSettings, name)))


def settings_from_section(section, set_by_recipe, where: str) -> RegimeSettings:
    """RegimeSettings from a recipe's ``regimes`` section; ``set_by_recipe(field)`` says whether
    the recipe set a field (its source is then "<where> regimes.<field>", else "tprm default")."""
    names = [f.name for f in fields(RegimeSettings) if f.name != "sources"]
    sources = {f: (f"{where} regimes.{f}" if set_by_recipe(f) else "tprm default") for f in names}
    return RegimeSettings(**{f: getattr(section, f) for f in names}, sources=sources)


def classify_cell(mc: float | None, cka: float | None, endpoint_gap: float | None,
                  settings: RegimeSettings | None = None, *, diverged: bool = False) -> dict:
    """Regime of one cell from its (dense-seed averaged) metrics.

    ``mc`` is the connectivity on the basis ``settings.mc_on`` names. Regime I when
    mc < threshold; otherwise II-B when cka >= cka_threshold, else II-A. Diverged cells are
    "diverged" (too hot); a cell lacking the metrics it needs is "unknown".
    """
    s = settings or RegimeSettings()
    mc, cka, gap = (finite_number(v) for v in (mc, cka, endpoint_gap))
    basis = "train error" if s.mc_on == "error" else "train loss"
    uncertain = False
    if diverged:
        regime, reason = "diverged", "dense training diverged (too hot)"
    elif mc is None:
        regime, reason = "unknown", f"no mc ({basis}) measured"
    elif mc < s.mc_limit:
        regime, reason = "I", f"mc {mc:.3f} < {s.mc_limit:g} ({basis}): poorly connected"
    elif cka is None:
        regime, reason = "unknown", f"mc {mc:.3f} >= {s.mc_limit:g} but no CKA ({s.cka_output}) measured"
    elif cka >= s.cka_threshold:
        regime, reason = "II-B", f"mc {mc:.3f} >= {s.mc_limit:g}, CKA {cka:.3f} >= {s.cka_threshold:.4g}"
    else:
        regime, reason = "II-A", f"mc {mc:.3f} >= {s.mc_limit:g}, CKA {cka:.3f} < {s.cka_threshold:.4g}"
    if regime in ("I", "II-A", "II-B") and gap is not None and gap > s.max_endpoint_gap:
        uncertain = True
        reason += f"; endpoint gap {gap:.3f} > {s.max_endpoint_gap:g}: midpoint ambiguous"
    return {"regime": regime, "uncertain": uncertain, "reason": reason, "mc": mc, "cka": cka,
            "endpoint_gap": gap, "thresholds": s.thresholds(), "sources": s.threshold_sources()}


def classify_records(records: dict | Sequence[dict], settings: RegimeSettings | None = None) -> dict:
    """Classify one cell given its record (or its records, one per dense seed)."""
    s = settings or RegimeSettings()
    group = [records] if isinstance(records, dict) else list(records)
    return classify_cell(aggregate(group, s.mc_metric)[0], aggregate(group, s.cka_metric)[0],
                         aggregate(group, "endpoint_gap")[0], s, diverged=cell_state(group) == "diverged")


@dataclass
class RegimeGrid:
    """Regime labels over temperatures (coldest first) x densities, with the evidence."""

    knob: str
    hotter: str
    temperatures: list[float]
    densities: list[float]
    regime: list[list[str]]
    uncertain: list[list[bool]]
    reason: list[list[str]]
    mc: list[list[float | None]]
    cka: list[list[float | None]]
    endpoint_gap: list[list[float | None]]
    thresholds: dict
    sources: dict

    def to_json(self) -> dict:
        return asdict(self)


def regime_grid(cells: Sequence[dict], temperatures: Iterable[float] | None, densities: Iterable[float] | None,
                knob: str, hotter: str, settings: RegimeSettings | None = None) -> RegimeGrid:
    """Classify every cell of the plane (metrics averaged over dense seeds first)."""
    s = settings or RegimeSettings()
    check_hotter(hotter)
    cells = list(cells)
    mc = build_grid(cells, s.mc_metric, temperatures, densities, knob, hotter)
    cka = build_grid(cells, s.cka_metric, mc.temperatures, mc.densities, knob, hotter)
    gap = build_grid(cells, "endpoint_gap", mc.temperatures, mc.densities, knob, hotter)
    shape = [(i, j) for i in range(len(mc.temperatures)) for j in range(len(mc.densities))]

    def classify_all(use: RegimeSettings) -> dict[tuple[int, int], dict]:
        return {(i, j): classify_cell(mc.mean[i][j], cka.mean[i][j], gap.mean[i][j], use,
                                      diverged=mc.state[i][j] == "diverged") for i, j in shape}

    if s.split == "median":
        unknown = [(i, j) for (i, j), c in classify_all(s).items() if c["regime"] == "unknown"]
        if unknown or not shape:
            example = (f" (e.g. {knob}={mc.temperatures[unknown[0][0]]}, density={mc.densities[unknown[0][1]]})"
                       if unknown else "")
            raise ValueError(f"regimes.split: 'median' needs a complete grid; {len(unknown)} of {len(shape)} "
                             f"cells have no data{example}; use split: fixed")
        connected = [cka.mean[i][j] for i, j in shape
                     if mc.state[i][j] != "diverged" and mc.mean[i][j] >= s.mc_limit]
        if not connected:
            raise ValueError("regimes.split: 'median' needs well-connected cells; none has mc >= "
                             f"{s.mc_limit:g}; use split: fixed")
        median = statistics.median(connected)
        s = replace(s, cka_threshold=median, sources={
            **s.sources, "cka_threshold": f"median CKA of {len(connected)} well-connected cells "
                                          f"(split from {s.source('split')})"})
    result = classify_all(s)
    rows = range(len(mc.temperatures))
    cols = range(len(mc.densities))
    return RegimeGrid(
        knob=knob, hotter=hotter, temperatures=mc.temperatures, densities=mc.densities,
        regime=[[result[i, j]["regime"] for j in cols] for i in rows],
        uncertain=[[result[i, j]["uncertain"] for j in cols] for i in rows],
        reason=[[result[i, j]["reason"] for j in cols] for i in rows],
        mc=mc.mean, cka=cka.mean, endpoint_gap=gap.mean,
        thresholds=s.thresholds(), sources=s.threshold_sources())


def describe_thresholds(thresholds: dict, sources: dict) -> list[str]:
    """One readable line per rule in use, each with where its threshold came from."""
    mc_name = "mc_threshold" if "mc_threshold" in thresholds else "mc_loss_threshold"
    basis = "train error" if thresholds["mc_on"] == "error" else "train loss"
    return [f"Regime I if mc ({basis}) < {thresholds[mc_name]:g} [{sources[mc_name]}]",
            f"II-B if CKA ({thresholds['cka_output']}) >= {thresholds['cka_threshold']:.4g}"
            f" [{sources['cka_threshold']}]",
            f"uncertain (~) if endpoint gap > {thresholds['max_endpoint_gap']:g} [{sources['max_endpoint_gap']}]"]


def direction(regime: str) -> str | None:
    """Which way to move temperature: I -> "raise", II-A/diverged -> "lower", II-B -> "keep"."""
    if regime not in _DIRECTIONS:
        raise ValueError(f"regime: {regime!r} is not valid; use one of {', '.join(REGIMES)}")
    return _DIRECTIONS[regime]


def knob_name(knob: str) -> str:
    return _KNOB_NAMES.get(knob, knob.replace("_", " "))


def recommendation_text(move: str | None, knob: str, hotter: str) -> str:
    """A direction in the knob's own terms, e.g. ("raise", "epochs", "fewer") -> "train for fewer epochs"."""
    check_hotter(hotter)
    if move is None:
        return "no recommendation (regime unknown)"
    if move == "keep":
        return f"keep the {knob_name(knob)}"
    if move not in ("raise", "lower"):
        raise ValueError(f"direction: {move!r} is not valid; use raise, lower or keep")
    word = hotter if move == "raise" else _OPPOSITE[hotter]
    if knob == "epochs":
        return f"train for {word} epochs"
    return f"use a {word} {knob_name(knob)}"
