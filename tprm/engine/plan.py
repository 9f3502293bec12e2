"""Recipe -> job graph.

Each job is keyed by a content hash of exactly the settings that decide its output (plus the
science version and precision), in the spirit of OpenLTH's hparam hashes: rerunning a recipe
finds its jobs done, adding a density or temperature adds only new jobs, changing retraining
settings keeps dense and pruned models, and two recipes that share a dense model share the job.

Job kinds, in dependency order:
  dense    one per dense seed (epochs knob: ONE run whose checkpoints are the temperatures;
           other knobs: one run per temperature value)
  prune    one per (dense checkpoint, density)
  retrain  one per (pruned model, retrain seed)
  pairs    one per pruned model: LMC and CKA over all retrain-seed pairs
  hessian  one per retrained model, only when metrics.hessian.enabled
  ww       one per pruned model, only when metrics.weightwatcher: the weightwatcher metrics of its
           dense checkpoint, the pruned model and every retrained model (science/spectral.py)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field, fields, replace
from itertools import combinations
from typing import Any

from tprm import SCIENCE_VERSION

KINDS = ("dense", "prune", "retrain", "pairs", "hessian", "ww")
# weightwatcher's layer averages a ww job measures, and the cell-record fields made of them: of the
# retrained models (averaged over retrain seeds, like test_error), of the dense checkpoint and of
# the pruned model (like dense_test_error). In a cell record only when its recipe asks for them.
WW_METRICS = ("alpha", "alpha_weighted", "log_spectral_norm")
WW_FIELDS = (*WW_METRICS, *[f"{stage}_{m}" for stage in ("dense", "pruned") for m in WW_METRICS])

# Fields added after the first release get a legacy value here: a spec whose field equals the
# legacy value is hashed without it, so keys computed before the field existed stay valid.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    "dense": {"init": None},
    "retrain": {"sam_rho": 0.0},
}


def job_key(kind: str, spec: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of (kind, spec, science version), legacy fields dropped."""
    legacy = LEGACY_DEFAULTS.get(kind, {})
    hashed = {k: v for k, v in spec.items() if not (k in legacy and v == legacy[k])}
    payload = json.dumps({"kind": kind, "spec": hashed, "science": SCIENCE_VERSION},
                         sort_keys=True, separators=(",", ":"), default=plain_json)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def plain_json(value: Any) -> Any:
    """json.dumps `default` for specs: a nested Mapping (a TrainSchedule) as its dict, else str."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def skipped_jobs(records: dict[str, dict]) -> set[str]:
    """Jobs that will not run because an ancestor diverged ("skipped (parent diverged)"): a
    divergence is a deterministic result, so its dependents are settled, not waiting. ``records``
    maps hash -> job record with "state" and "deps" (as the store keeps them)."""
    memo: dict[str, bool] = {}

    def blocked(h: str, depth: int = 0) -> bool:
        if h not in memo:
            rec = records.get(h) or {}
            memo[h] = depth < 16 and any(
                (records.get(d) or {}).get("state") == "diverged" or blocked(d, depth + 1)
                for d in rec.get("deps") or ())
        return memo[h]

    return {h for h, rec in records.items()
            if (rec or {}).get("state") not in ("done", "diverged", "running") and blocked(h)}


# Spec fields added later that are part of the mapping (so of the job key and the record) only when
# not at their field default: the keys of every recipe that leaves them unset stay what they were.
WHEN_SET = frozenset({"channels_last"})
# DataSpec fields added later: in a job's data settings only when set (not None), likewise.
DATA_WHEN_SET = frozenset({"size", "import_", "identity", "classes", "shape"})


@dataclass(frozen=True, eq=False)
class JobSpec(Mapping):
    """The settings that decide a job's output: typed fields, read as ``spec.seed`` (executors)
    or as a mapping ``spec["seed"]`` (the job key hashes exactly these fields; a ``WHEN_SET``
    field at its default is left out of the mapping, not of the attributes)."""

    model: dict
    data: dict
    data_identity: dict
    precision: str
    _: KW_ONLY
    channels_last: bool = False   # NHWC 2-D convolutions: changes rounding, so part of the key when set

    # The instance dict holds exactly the fields, in field order (set by the dataclass __init__).
    def __getitem__(self, key: str) -> Any:
        try:
            value = self.__dict__[key]
        except KeyError:
            raise KeyError(key) from None
        if key in WHEN_SET and value == _WHEN_SET_DEFAULTS[key]:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in self.__dict__.items() if not (k in WHEN_SET and v == _WHEN_SET_DEFAULTS[k]))

    def __len__(self) -> int:
        return sum(1 for _ in self)


_WHEN_SET_DEFAULTS = {f.name: f.default for f in fields(JobSpec) if f.name in WHEN_SET}


@dataclass(frozen=True, eq=False)
class TrainSchedule(Mapping):
    """The one shape of a training schedule from plan to executor: made here from a recipe
    section, hashed (as a mapping: the job key is unchanged) and handed as is to the executor,
    which trains with ``to_science()`` -- science.train.Schedule, the same fields."""

    lr: float
    batch_size: int
    epochs: int | None
    iterations: int | None
    momentum: float
    weight_decay: float
    milestones: tuple[float, ...]
    gamma: float
    sam_rho: float

    @classmethod
    def of(cls, section: Any, **override: Any) -> TrainSchedule:
        """The schedule of a recipe's dense or retrain section, `override` (a knob) applied."""
        sched = {
            "lr": float(section.lr), "batch_size": int(section.batch_size),
            "epochs": section.epochs, "iterations": section.iterations,
            "momentum": float(section.momentum), "weight_decay": float(section.weight_decay),
            "milestones": tuple(float(m) for m in section.milestones),
            "gamma": float(section.gamma), "sam_rho": float(section.sam_rho),
        }
        sched.update(override)
        return cls(**sched)

    def __getitem__(self, key: str) -> Any:
        try:
            return self.__dict__[key]
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dict__)

    def __len__(self) -> int:
        return len(self.__dict__)

    def to_dict(self) -> dict[str, Any]:
        """As plain data (milestones a list), the shape a job record stores."""
        return {**self.__dict__, "milestones": list(self.milestones)}

    def to_science(self) -> Any:
        """This schedule as science.train.Schedule (imports torch: call it in a worker)."""
        from tprm.science.train import Schedule

        return Schedule(**self)


def _plain(value: Any) -> Any:
    """A spec value as plain data: a TrainSchedule (also inside the pruning dict) as its dict."""
    if isinstance(value, TrainSchedule):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, eq=False)
class DenseSpec(JobSpec):
    schedule: TrainSchedule
    seed: int
    checkpoints: list[int]   # epochs to keep; [-1]: the end of an iteration budget
    init: str | None         # checksum of the init state_dict file


@dataclass(frozen=True, eq=False)
class PruneSpec(JobSpec):
    dense: str               # the dense job's hash
    epoch: int               # its checkpoint to prune
    density: float
    pruning: dict            # method, scope, layers (+ rounds, a TrainSchedule for imp)
    seed: int


@dataclass(frozen=True, eq=False)
class RetrainSpec(JobSpec):
    pruned: str              # the prune job's hash
    schedule: TrainSchedule
    seed: int
    last_epochs: int


@dataclass(frozen=True, eq=False)
class PairsSpec(JobSpec):
    retrains: list[str]      # retrain job hashes
    pairs: list[list[int]]   # index pairs into retrains
    lmc: dict
    cka: dict


@dataclass(frozen=True, eq=False)
class HessianSpec(JobSpec):
    model_job: str           # the retrain job's hash
    samples: int
    probes: int
    power_iters: int


@dataclass(frozen=True, eq=False)
class WwSpec(JobSpec):
    dense: str               # the dense job's hash
    epoch: int               # its checkpoint (the cell's temperature)
    pruned: str              # the prune job's hash
    retrains: list[str]      # retrain job hashes


@dataclass(frozen=True)
class Job:
    hash: str
    kind: str
    label: str
    spec: JobSpec
    deps: tuple[str, ...] = ()

    def record(self) -> dict:
        """The job as plain data (JSON-able: the spec as a dict)."""
        return {"hash": self.hash, "kind": self.kind, "label": self.label,
                "spec": {k: _plain(v) for k, v in self.spec.items()}, "deps": list(self.deps)}


@dataclass(frozen=True)
class Cell:
    """One (temperature, density, dense seed) point and the jobs that measure it."""
    temperature: float
    density: float
    dense_seed: int
    dense: str
    epoch: int
    prune: str
    retrains: tuple[str, ...]
    pairs: str
    hessians: tuple[str, ...] = ()
    ww: str | None = None    # the weightwatcher job (metrics.weightwatcher)


@dataclass
class Plan:
    recipe_name: str
    jobs: dict[str, Job] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)

    def add(self, job: Job) -> str:
        self.jobs.setdefault(job.hash, job)
        return job.hash

    def by_kind(self) -> dict[str, list[Job]]:
        out: dict[str, list[Job]] = {k: [] for k in KINDS}
        for job in self.jobs.values():
            out[job.kind].append(job)
        return out

    def ordered(self) -> list[Job]:
        """Jobs in dependency order (kinds are layered, so kind order is a topological order)."""
        return [j for k in KINDS for j in self.by_kind()[k]]


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def build_plan(recipe, data_identity: dict, init_checksum: str | None = None,
               model_code: str | None = None) -> Plan:
    """Expand a validated recipe into its job graph (no I/O besides what the caller passes in).
    `model_code` is an imported model's code identity (engine/modelimport.py): in the key when set,
    so the keys of built-in models stay what they were."""
    plan = Plan(recipe.name)
    model = {"name": recipe.model.name, "import": recipe.model.import_,
             "kwargs": dict(recipe.model.kwargs)}
    if model_code is not None:
        model["code"] = model_code
    data = recipe.data_spec()
    if data.import_ is not None:  # the factory's facts, so jobs size models without loading the data
        data = replace(data, classes=data_identity.get("num_classes"), shape=data_identity.get("input_shape"))
    data_fields = {k: getattr(data, k) for k in data.__dataclass_fields__
                   if not (k in DATA_WHEN_SET and getattr(data, k) is None)}
    common = {"model": model, "data": data_fields, "data_identity": data_identity,
              "precision": recipe.execution.precision,
              "channels_last": recipe.execution.channels_last}
    for seed in recipe.dense_seeds:
        for t, dense_hash, epoch in _dense_points(plan, recipe, common, seed, init_checksum):
            for d in recipe.densities:
                _add_cell(plan, recipe, common, t, float(d), seed, dense_hash, epoch)
    return plan


def _dense_points(plan: Plan, recipe, common: dict, seed: int,
                  init_checksum: str | None) -> list[tuple[Any, str, int]]:
    """Add the dense jobs of one seed; [(temperature, dense job hash, checkpoint epoch)].

    The epochs knob is ONE run whose checkpoints are the temperatures; any other knob is one run
    per temperature value (checkpoint -1: the end of an iteration budget)."""
    knob = recipe.temperature.knob
    if knob == "epochs":
        every = recipe.dense.checkpoint_every
        checkpoints = list(range(every, recipe.dense.epochs + 1, every))
        spec = DenseSpec(**common, schedule=TrainSchedule.of(recipe.dense), seed=seed,
                         checkpoints=checkpoints, init=init_checksum)
        dense_hash = plan.add(Job(job_key("dense", spec), "dense", f"dense seed={seed}", spec))
        return [(t, dense_hash, int(t)) for t in recipe.temperature.values]
    points = []
    for t in recipe.temperature.values:
        sched = TrainSchedule.of(recipe.dense, **{knob: t})
        final = sched["epochs"] if sched["epochs"] else -1
        spec = DenseSpec(**common, schedule=sched, seed=seed, checkpoints=[final],
                         init=init_checksum)
        label = f"dense {knob}={_fmt(t)} seed={seed}"
        points.append((t, plan.add(Job(job_key("dense", spec), "dense", label, spec)), final))
    return points


def _add_cell(plan: Plan, recipe, common: dict, t: Any, d: float, seed: int, dense_hash: str,
              epoch: int) -> None:
    """Add one (temperature, density, seed) cell's jobs: prune, retrains, pairs, hessians, ww."""
    pruning = {"method": recipe.pruning.method, "scope": recipe.pruning.scope,
               "layers": recipe.pruning.layers}
    if recipe.pruning.keep_dense is not None:  # in the key only when set (older keys unchanged)
        pruning["keep_dense"] = list(recipe.pruning.keep_dense)
    if recipe.pruning.method == "imp":
        pruning["rounds"] = recipe.pruning.imp_rounds
        pruning["schedule"] = TrainSchedule.of(recipe.retrain)
    m = recipe.metrics
    pspec = PruneSpec(**common, dense=dense_hash, epoch=epoch, density=d, pruning=pruning, seed=seed)
    tag = f"T={_fmt(t)} d={d:.3g} seed={seed}"
    prune_hash = plan.add(Job(job_key("prune", pspec), "prune", f"prune {tag}", pspec,
                              (dense_hash,)))
    retrains = []
    for rs in recipe.retrain.seeds:
        rspec = RetrainSpec(**common, pruned=prune_hash, schedule=TrainSchedule.of(recipe.retrain),
                            seed=rs, last_epochs=recipe.retrain.last_epochs)
        retrains.append(plan.add(Job(job_key("retrain", rspec), "retrain",
                                     f"retrain {tag} r={rs}", rspec, (prune_hash,))))
    qspec = PairsSpec(**common, retrains=retrains,
                      pairs=[list(p) for p in combinations(range(len(retrains)), 2)],
                      lmc={"points": m.lmc.points, "bn_batch_size": m.lmc.bn_batch_size,
                           "test": m.lmc.test},
                      cka={"samples": m.cka.samples})
    pairs_hash = plan.add(Job(job_key("pairs", qspec), "pairs", f"pairs {tag}", qspec,
                              tuple(retrains)))
    hessians = []
    if m.hessian.enabled:
        for rs, rh in zip(recipe.retrain.seeds, retrains):
            hspec = HessianSpec(**common, model_job=rh, samples=m.hessian.samples,
                                probes=m.hessian.probes, power_iters=m.hessian.power_iters)
            hessians.append(plan.add(Job(job_key("hessian", hspec), "hessian",
                                         f"hessian {tag} r={rs}", hspec, (rh,))))
    ww = None
    if m.weightwatcher:
        wspec = WwSpec(**common, dense=dense_hash, epoch=epoch, pruned=prune_hash, retrains=retrains)
        ww = plan.add(Job(job_key("ww", wspec), "ww", f"ww {tag}", wspec,
                          (dense_hash, prune_hash, *retrains)))
    plan.cells.append(Cell(t, d, seed, dense_hash, epoch, prune_hash, tuple(retrains), pairs_hash,
                           tuple(hessians), ww))
