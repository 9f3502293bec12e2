"""Recipes: the YAML file that says which (temperature x density) grid to run, and how.

This module holds the recipe's schema (one frozen dataclass per section, each field with its
default and its spec) and the checks that span fields; ``yamlschema.py`` reads YAML against it, so
every problem is reported as ONE line ``file:line: dotted.field: what is wrong, what is allowed``
and no YAML tag can run code. The result is a frozen, hashable :class:`Recipe` with every default
filled in that remembers which keys its file set (``key_lines``); ``to_yaml()`` writes it back in
full, and ``hash`` identifies its content. The schema and its defaults are the contract in
docs/ARCHITECTURE.md; docs/recipes.md explains every field.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from tprm.engine.yamlschema import (
    STR_TAG,
    Bool,
    Ctx,
    FreeMapping,
    FrozenDict,
    ListOf,
    Number,
    SchemaError,
    Text,
    as_nodes,
    check_tag,
    clip,
    compose,
    dump_yaml,
    read_section,
    section,
    setting,
    shown,
    to_plain,
)

from tprm.engine.recipefiles import find_recipe, known_recipes, renamed
from tprm.engine.recipemerge import merge, plain_overrides
from tprm.science.dataspec import DATASET_NAMES as _DATASET_NAMES
from tprm.science.dataspec import DataSpec
from tprm.science.modelspec import MODEL_SETTINGS
from tprm.science.pruning_methods import METHOD_NAMES

RecipeError = SchemaError  # a recipe's one-line error: ``file:line: field: problem, allowed``

__all__ = [
    "DATASET_NAMES", "MODEL_NAMES", "HOTTER", "KNOBS", "RecipeError", "Recipe", "FrozenDict",
    "load_recipe", "parse_recipe", "find_recipe", "known_recipes", "renamed", "hotter_order",
]

# The science layer's light spec modules name the data sets and models (no torch imported).
DATASET_NAMES: tuple[str, ...] = _DATASET_NAMES
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_SETTINGS)

# Which way each temperature knob turns to make dense training hotter (noisier/shorter).
# weight_decay: larger = hotter is OUR choice (see docs/recipes.md for the reason).
HOTTER: dict[str, str] = {"epochs": "fewer", "batch_size": "smaller", "lr": "larger",
                          "weight_decay": "larger", "sam_rho": "larger"}
KNOBS: tuple[str, ...] = tuple(HOTTER)

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NAME_PATTERN = _NAME   # what a recipe name may be (`tprm recipes new NAME` checks it as given)
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_IMPORT = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_DEVICE = re.compile(r"auto|cpu|mps|cuda|cuda:\d+")
_RAY_ADDRESS = re.compile(r"auto|(ray://)?[A-Za-z0-9_.\[\]:-]+:\d{1,5}")
_MAX_SEED = 2**32 - 1
# keys added after recipes were stored: in the recipe hash only when not at their schema default
_HASHED_WHEN_SET = (("execution", "channels_last"), ("execution", "compile"), ("execution", "resume_every"),
                    ("execution", "tf32"), ("cases", "near_mc"), ("cases", "near_cka"), ("cases", "extra_dense_seeds"),
                    ("model", "path"), ("model", "version"), ("pruning", "keep_dense"), ("dataset", "size"),
                    ("dataset", "import"), ("dataset", "path"), ("dataset", "identity"), ("metrics", "weightwatcher"))
# defaults that changed: the new default is hashed as the old one, so stored recipes keep their hash
_HASHED_AS = {("execution", "threads"): ("auto", 1)}


def _default(section_name: str, key: str) -> Any:
    """The schema default of `section_name.key` (one source: the section's dataclass field)."""
    cls = next(f.metadata["section"] for f in fields(Recipe) if f.name == section_name)
    return next(f.default for f in fields(cls) if f.name.rstrip("_") == key)

@dataclass(frozen=True)
class _Layers:
    """pruning.layers: "default" or a list of fnmatch patterns over parameter names."""

    def read(self, node: yaml.Node, path: str, ctx: Ctx) -> str | tuple[str, ...] | None:
        check_tag(node, path, ctx)
        if isinstance(node, yaml.SequenceNode):
            return ListOf(Text(pattern=re.compile(r"\S+"), what="a non-empty name pattern"),
                         what="parameter name patterns", min_len=1, sort=False).read(node, path, ctx)
        if isinstance(node, yaml.ScalarNode) and node.tag == STR_TAG and node.value == "default":
            return "default"
        raise ctx.error(path, f"expected 'default' or a list of parameter name patterns, got {shown(node)}", node)


@dataclass(frozen=True)
class _Threads:
    """execution.threads: "auto" (cores / workers on an idle machine, 1 while it is busy) or a number."""

    def read(self, node: yaml.Node, path: str, ctx: Ctx) -> str | int | None:
        check_tag(node, path, ctx)
        if isinstance(node, yaml.ScalarNode) and node.tag == STR_TAG and node.value == "auto":
            return "auto"
        if isinstance(node, yaml.ScalarNode) and node.tag != STR_TAG:
            return Number(integer=True, lo=1, hi=1024, optional=True).read(node, path, ctx)
        raise ctx.error(path, f"expected auto or an integer in [1, 1024], got {shown(node)}", node)


_SEED = Number(integer=True, lo=0, hi=_MAX_SEED)
_POS_INT = Number(integer=True, lo=1)
_FRACTION = Number(lo=0, hi=1)

# --------------------------------------------------------------------------------------------------
# The schema (attribute names = YAML keys; ``import_`` is ``import``). Defaults = docs/ARCHITECTURE.md.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentSection:
    crop_padding: int | None = setting(None, Number(integer=True, lo=0, optional=True))
    flip: bool | None = setting(None, Bool(optional=True))


@dataclass(frozen=True)
class NormalizeSection:
    mean: tuple[float, ...] | None = setting(None, ListOf(Number(), "numbers (one per channel)",
                                                          min_len=1, unique=False, sort=False, optional=True))
    std: tuple[float, ...] | None = setting(None, ListOf(Number(lo=0, lo_open=True), "numbers > 0 (one per channel)",
                                                         min_len=1, unique=False, sort=False, optional=True))


@dataclass(frozen=True)
class DatasetSection:
    name: str = setting("mnist1d", Text(choices=DATASET_NAMES))
    root: str | None = setting(None, Text(optional=True, path_like=True))
    download: bool = setting(False, Bool())
    seed: int = setting(42, _SEED)
    num_samples: int = setting(5000, Number(integer=True, lo=50))
    train_subset: int | None = setting(None, Number(integer=True, lo=1, optional=True))
    test_subset: int | None = setting(None, Number(integer=True, lo=1, optional=True))
    size: int | None = setting(None, Number(integer=True, lo=8, hi=1024, optional=True))  # imagefolder resize
    import_: str | None = setting(None, Text(optional=True, pattern=_IMPORT,
                                             what="'package.module:factory' or null"))  # the user's own data
    path: str | None = setting(None, Text(optional=True, path_like=True))  # a folder searched for dataset.import
    identity: str | None = setting(None, Text(optional=True, pattern=re.compile(r"\S.{0,199}"),
                                              what="a string naming the imported data's version"))
    augment: AugmentSection = section(AugmentSection)
    normalize: NormalizeSection = section(NormalizeSection)


@dataclass(frozen=True)
class ModelSection:
    name: str = setting("conv1d", Text(pattern=_LABEL, what="a built-in model name "
                                                                   "(or a label when model.import is set)"))
    import_: str | None = setting(None, Text(optional=True, pattern=_IMPORT,
                                               what="'package.module:factory' or null"))
    kwargs: FrozenDict = field(default_factory=FrozenDict, metadata={"spec": FreeMapping()})
    path: str | None = setting(None, Text(optional=True, path_like=True))  # a folder searched for model.import
    version: str | None = setting(None, Text(optional=True, pattern=re.compile(r"\S.{0,199}"),
                                             what="a version string (keys results instead of the code's hash)"))


@dataclass(frozen=True)
class _ScheduleSection:
    """Fields shared by dense training and retraining (one SGD/SAM schedule)."""

    epochs: int | None = setting(64, Number(integer=True, lo=1, optional=True))
    iterations: int | None = setting(None, Number(integer=True, lo=1, optional=True))
    batch_size: int = setting(128, _POS_INT)
    lr: float = setting(0.05, Number(lo=0, lo_open=True))
    momentum: float = setting(0.9, Number(lo=0, hi=1, hi_open=True))
    weight_decay: float = setting(5.0e-4, Number(lo=0))
    milestones: tuple[float, ...] = setting((0.5, 0.75), ListOf(Number(lo=0, hi=1, lo_open=True, hi_open=True),
                                                                "fractions of the budget in (0, 1)"))
    gamma: float = setting(0.1, Number(lo=0, hi=1, lo_open=True))
    sam_rho: float = setting(0.0, Number(lo=0))


@dataclass(frozen=True)
class DenseSection(_ScheduleSection):
    checkpoint_every: int = setting(1, _POS_INT)
    init: str | None = setting(None, Text(optional=True, path_like=True, must_exist=True))


@dataclass(frozen=True)
class TemperatureSection:
    knob: str = setting("epochs", Text(choices=KNOBS))
    values: tuple[float, ...] = setting((4, 8, 16, 32, 48, 64),
                                         ListOf(Number(keep_int=True), "temperature values", min_len=1))


@dataclass(frozen=True)
class PruningSection:
    method: str = setting("magnitude", Text(choices=METHOD_NAMES))
    scope: str = setting("layerwise", Text(choices=("layerwise", "global")))
    layers: str | tuple[str, ...] = setting("default", _Layers())
    imp_rounds: int = setting(3, _POS_INT)
    keep_dense: tuple[str, ...] | None = setting(None, ListOf(Text(pattern=re.compile(r"\S+"), what="a name pattern"),
                                                             "parameter name patterns", 1, sort=False, optional=True))


@dataclass(frozen=True)
class RetrainSection(_ScheduleSection):
    epochs: int | None = setting(30, Number(integer=True, lo=1, optional=True))
    lr: float = setting(0.1, Number(lo=0, lo_open=True))
    seeds: tuple[int, ...] = setting((0, 1), ListOf(_SEED, "seeds (integers >= 0)", min_len=2))
    last_epochs: int = setting(5, _POS_INT)


@dataclass(frozen=True)
class LmcSection:
    points: int = setting(11, Number(integer=True, lo=3))
    bn_batch_size: int = setting(64, _POS_INT)
    test: bool = setting(True, Bool())


@dataclass(frozen=True)
class CkaSection:
    samples: int = setting(6400, Number(integer=True, lo=2))


@dataclass(frozen=True)
class HessianSection:
    enabled: bool = setting(False, Bool())
    samples: int = setting(512, _POS_INT)
    probes: int = setting(64, _POS_INT)
    power_iters: int = setting(20, _POS_INT)


@dataclass(frozen=True)
class MetricsSection:
    lmc: LmcSection = section(LmcSection)
    cka: CkaSection = section(CkaSection)
    hessian: HessianSection = section(HessianSection)
    weightwatcher: bool = setting(False, Bool())  # alpha etc. of dense/pruned/retrained models (extra [ww])


@dataclass(frozen=True)
class RegimesSection:
    mc_on: str = setting("error", Text(choices=("error", "loss")))
    mc_threshold: float = setting(-0.05, Number(hi=0))
    mc_loss_threshold: float = setting(-0.1, Number(hi=0))
    cka_threshold: float = setting(0.95, _FRACTION)
    cka_output: str = setting("softmax", Text(choices=("softmax", "logits")))
    split: str = setting("fixed", Text(choices=("fixed", "median")))
    max_endpoint_gap: float = setting(0.05, _FRACTION)


@dataclass(frozen=True)
class CasesSection:
    noise_floor: float = setting(0.002, _FRACTION)
    select_retrain_epochs: int | None = setting(None, Number(integer=True, lo=1, optional=True))
    sam_max_steps: int = setting(6, _POS_INT)
    sam_rho_min: float = setting(0.01, Number(lo=0, lo_open=True))
    sam_rho_max: float = setting(2.0, Number(lo=0, lo_open=True))
    near_mc: float = setting(0.02, Number(lo=0))
    near_cka: float = setting(0.01, _FRACTION)
    extra_dense_seeds: int = setting(1, Number(integer=True, lo=0))


@dataclass(frozen=True)
class RaySection:
    """execution.ray: where and how job groups run when execution.backend is ray (docs/cluster.md)."""

    address: str | None = setting(None, Text(optional=True, pattern=_RAY_ADDRESS,
                                               what="null, auto, HOST:PORT or ray://HOST:PORT"))
    cpus_per_group: float = setting(1.0, Number(lo=0, lo_open=True))
    gpus_per_group: float | None = setting(None, Number(lo=0, optional=True))
    max_retries: int = setting(3, Number(integer=True, lo=0))
    max_groups: int | None = setting(None, Number(integer=True, lo=1, optional=True))
    ship_code: bool = setting(True, Bool())


@dataclass(frozen=True)
class ExecutionSection:
    device: str = setting("auto", Text(pattern=_DEVICE, what="auto, cpu, cuda, cuda:N or mps"))
    jobs: int = setting(1, _POS_INT)
    precision: str = setting("float32", Text(choices=("float32", "float64", "bf16")))
    on_error: str = setting("continue", Text(choices=("continue", "stop")))
    fuse: bool = setting(True, Bool())
    max_fused: int = setting(128, _POS_INT)
    threads: int | str | None = setting("auto", _Threads())  # docs/speed.md; not in job keys
    backend: str = setting("local", Text(choices=("local", "ray")))
    ray: RaySection = section(RaySection)
    channels_last: bool = setting(False, Bool())   # NHWC 2-D convolutions (in the job key when true)
    compile: bool = setting(False, Bool())         # torch.compile (CUDA graphs), CUDA only
    resume_every: float = setting(5.0, Number(lo=0))  # minutes between resumable training states; 0 off
    # TF32 convolutions and matrix products on CUDA; off: "float32" means float32 (docs/speed.md)
    tf32: bool = setting(False, Bool())


@dataclass(frozen=True)
class Recipe:
    """A validated recipe with every default filled in. Build it with load_recipe/parse_recipe."""

    name: str = setting(None, Text(pattern=_NAME, what="lower-case letters, digits, '-' and '_', "
                                                          "starting with a letter or digit (max 64)"))
    description: str = setting("", Text())
    dataset: DatasetSection = section(DatasetSection)
    model: ModelSection = section(ModelSection)
    dense: DenseSection = section(DenseSection)
    temperature: TemperatureSection = section(TemperatureSection)
    densities: tuple[float, ...] = setting((0.05, 0.1, 0.2, 0.4, 0.8),
                                            ListOf(Number(lo=0, hi=1, lo_open=True), "densities in (0, 1]", 1))
    pruning: PruningSection = section(PruningSection)
    retrain: RetrainSection = section(RetrainSection)
    dense_seeds: tuple[int, ...] = setting((0,), ListOf(_SEED, "seeds (integers >= 0)", min_len=1))
    metrics: MetricsSection = section(MetricsSection)
    regimes: RegimesSection = section(RegimesSection)
    cases: CasesSection = section(CasesSection)
    execution: ExecutionSection = section(ExecutionSection)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (YAML keys, lists, dicts), every default included."""
        return to_plain(self)

    def to_yaml(self) -> str:
        """The full resolved recipe as YAML; ``parse_recipe(r.to_yaml()) == r``."""
        return dump_yaml(self.to_dict())

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the resolved recipe without name and description."""
        content = self.to_dict()
        del content["name"], content["description"]
        for sec, key in _HASHED_WHEN_SET:  # keys added later: old recipes keep their hash
            if content[sec][key] == _default(sec, key):
                del content[sec][key]
        for (sec, key), (new, old) in _HASHED_AS.items():
            if content[sec][key] == new:
                content[sec][key] = old
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def with_overrides(self, overrides: Mapping[str, Any]) -> Recipe:
        """A re-validated copy with ``overrides`` (nested dict, YAML keys) deep-merged in.

        Setting one of epochs/iterations clears the other, and setting model.import clears the
        label in model.name (and vice versa), as when the key is left out of a file.
        """
        if not isinstance(overrides, Mapping):
            raise RecipeError(f"expected a mapping of settings, got {type(overrides).__name__}, allowed: a nested "
                              "dict such as {'dense': {'lr': 0.1}}", source="<overrides>", line=1, field="overrides")
        merged = merge(self.to_dict(), plain_overrides(overrides))
        try:
            root = as_nodes(merged, "<overrides>")
        except yaml.YAMLError as exc:
            raise RecipeError(f"cannot write the overrides as YAML ({clip(str(exc), 80)}), allowed: numbers, "
                              "strings, booleans, null, lists and mappings",
                              source="<overrides>", line=1, field="overrides") from None
        sub = _validate(root, Ctx("<overrides>", Path.cwd(), _SECTION_CHECKS))
        object.__setattr__(sub, "_lines", self.key_lines)  # what the file set is the base's file
        object.__setattr__(sub, "_origin", self.origin)
        return sub

    @property
    def key_lines(self) -> FrozenDict:
        """{dotted key: line} of every setting the recipe's file wrote explicitly (empty when it
        was built otherwise); a sub-grid made by with_overrides keeps its base's."""
        return self.__dict__.get("_lines", FrozenDict())

    @property
    def origin(self) -> tuple[str, Path]:
        """(source, folder) of the text the recipe was read from: errors found later name the
        source; model.import is looked up in the folder (engine/modelimport.py)."""
        return self.__dict__.get("_origin") or ("<string>", Path.cwd())

    def set_in_file(self, key: str) -> bool:
        """True when the file set `key` (dotted, e.g. "regimes.cka_threshold") explicitly."""
        return key in self.key_lines

    def data_spec(self):
        """The science layer's DataSpec for this recipe's dataset."""
        d = self.dataset
        return DataSpec(name=d.name, root=d.root, download=d.download, seed=d.seed,
                        num_samples=d.num_samples, train_subset=d.train_subset, test_subset=d.test_subset,
                        crop_padding=d.augment.crop_padding, flip=d.augment.flip,
                        mean=d.normalize.mean, std=d.normalize.std, size=d.size, import_=d.import_,
                        identity=d.identity)


# --------------------------------------------------------------------------------------------------
# Walking the node tree
# --------------------------------------------------------------------------------------------------


def _check_budget(cls: type, values: dict[str, Any], given: dict[str, yaml.Node], path: str, ctx: Ctx) -> None:
    """Exactly one of epochs/iterations; giving only iterations clears the default epochs."""
    if values.get("iterations") is not None and "epochs" not in given:
        values["epochs"] = None
    defaults = {f.name: f.default for f in fields(cls)}
    epochs = values.get("epochs", defaults["epochs"])
    iterations = values.get("iterations", defaults["iterations"])
    if epochs is None and iterations is None:
        raise ctx.error(path, "neither epochs nor iterations is set, allowed: exactly one of "
                              f"{path}.epochs or {path}.iterations")
    if epochs is not None and iterations is not None:
        raise ctx.error(f"{path}.iterations", f"both epochs ({epochs}) and iterations ({iterations}) are set, "
                                              "allowed: exactly one (write epochs: null to count iterations)")


def _check_model(cls: type, values: dict[str, Any], given: dict[str, yaml.Node], path: str, ctx: Ctx) -> None:
    """Without ``import`` the name picks a built-in model; with it, the name is only a label."""
    factory = values.get("import_")
    if factory is None:
        name = values.get("name", "conv1d")
        if name not in MODEL_NAMES:
            close = difflib.get_close_matches(name, MODEL_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ctx.error(f"{path}.name", f"unknown model {clip(name)!r}{hint}, allowed: "
                                            f"{', '.join(MODEL_NAMES)} (or set model.import)", given.get("name"))
    elif "name" not in given:
        values["name"] = factory.rpartition(":")[2].rpartition(".")[2]
    if values.get("path") is not None and not Path(values["path"]).is_dir():
        raise ctx.error(f"{path}.path", f"folder {values['path']} not found, allowed: a folder (relative to "
                                        "the recipe's) holding the module of model.import", given.get("path"))


def _check_temperature(cls: type, values: dict[str, Any], given: dict[str, yaml.Node], path: str, ctx: Ctx) -> None:
    """Temperature values take the knob's type and range (cross-checks with dense come later)."""
    knob = values.get("knob", "epochs")
    if knob != "epochs" and "values" not in given:
        raise ctx.error(f"{path}.values", f"missing for knob {knob!r} (the default values are epoch counts), "
                                          f"allowed: a list of {knob} values to sweep")
    if "values" not in values:
        return
    integer = knob in ("epochs", "batch_size")
    listed = values["values"] if isinstance(values["values"], (list, tuple)) else ()
    if "knob" not in given and listed and not any(isinstance(v, int) for v in listed):
        # no value is an epoch count: the missing knob, not the values, is what to fix
        raise ctx.error(f"{path}.knob", f"not set, so the default {knob} is used, but no value in "
                                        f"{path}.values is an integer epoch count; allowed: one of {', '.join(KNOBS)}")
    rule = {"epochs": _POS_INT, "batch_size": _POS_INT, "lr": Number(lo=0, lo_open=True),
            "weight_decay": Number(lo=0), "sam_rho": Number(lo=0)}[knob]
    out = []
    for sub, value, line in ctx.grid(f"{path}.values", values["values"]):
        if integer and not isinstance(value, int):
            raise RecipeError(f"expected an integer {knob} value, got {value!r}", source=ctx.source,
                              line=line, field=sub)
        ctx.lines[sub] = line
        out.append(rule.check(value, sub, ctx, None))
    values["values"] = tuple(sorted(out))


_SECTION_CHECKS = {DenseSection: _check_budget, RetrainSection: _check_budget, ModelSection: _check_model,
                   TemperatureSection: _check_temperature}


def _check_recipe(recipe: Recipe, ctx: Ctx) -> None:
    """Checks that span sections: name present, temperatures reachable, channels, ranges."""
    if recipe.name is None:
        raise ctx.error("name", "missing, allowed: a recipe name like 'my-recipe' (lower-case letters, digits, "
                                "'-' and '_')")
    t, dense = recipe.temperature, recipe.dense
    if t.knob == "epochs":
        if dense.epochs is None:
            raise ctx.error("temperature.knob", "knob epochs needs dense.epochs (checkpoints of one run), "
                                                "allowed: set dense.epochs and dense.iterations: null")
        every = dense.checkpoint_every
        allowed = f"integers in [1, {dense.epochs}] that are multiples of dense.checkpoint_every ({every})"
        for sub, value, line in ctx.grid("temperature.values", t.values):
            if value > dense.epochs:
                raise RecipeError(f"{value} epochs is more than dense.epochs ({dense.epochs}), allowed: {allowed}",
                                  source=ctx.source, line=line, field=sub)
            if value % every:
                raise RecipeError(f"{value} is not a multiple of dense.checkpoint_every ({every}), so no "
                                  f"checkpoint exists there, allowed: {allowed}",
                                  source=ctx.source, line=line, field=sub)
    if t.knob == "batch_size" and dense.iterations is None:
        raise ctx.error("temperature.knob", "knob batch_size needs a fixed iteration count (otherwise smaller "
                                            "batches also mean more SGD steps), allowed: set dense.iterations "
                                            "and dense.epochs: null")
    r = recipe.retrain
    if r.epochs is not None and r.last_epochs > r.epochs:
        raise ctx.error("retrain.last_epochs", f"{r.last_epochs} is more than retrain.epochs ({r.epochs}), "
                                               f"allowed: integers in [1, {r.epochs}]")
    _check_dataset(recipe, ctx)
    channels = recipe.data_spec().input_shape[0] if recipe.dataset.import_ is None else None
    for key in ("mean", "std") if channels is not None else ():
        value = getattr(recipe.dataset.normalize, key)
        if value is not None and len(value) != channels:
            if "dataset.name" not in ctx.lines:  # the dataset defaulted: that is what to fix
                raise ctx.error("dataset.name", f"not set, so the default {recipe.dataset.name} ({channels} "
                                                f"channel) is used but dataset.normalize.{key} has {len(value)} "
                                                f"values, allowed: one of {', '.join(DATASET_NAMES)}")
            raise ctx.error(f"dataset.normalize.{key}", f"{len(value)} value(s) for {recipe.dataset.name}, "
                                                        f"allowed: one per channel ({channels})")
    if recipe.model.import_ is None and recipe.dataset.import_ is None:  # else: the model check builds it
        _check_model_kwargs(recipe, ctx)
    c = recipe.cases
    if c.sam_rho_max <= c.sam_rho_min:
        raise ctx.error("cases.sam_rho_max", f"{c.sam_rho_max:g} is not above cases.sam_rho_min "
                                             f"({c.sam_rho_min:g}), allowed: a value > sam_rho_min")


def _check_dataset(recipe: Recipe, ctx: Ctx) -> None:
    """imagefolder needs its folder; only imagefolder images are resized."""
    d = recipe.dataset
    if d.path is not None and not Path(d.path).is_dir():
        raise ctx.error("dataset.path", f"folder {d.path} not found, allowed: a folder (relative to the "
                                        "recipe's) holding the module of dataset.import")
    if d.import_ is not None:
        for key in ("size", "root"):
            if getattr(d, key) is not None:
                raise ctx.error(f"dataset.{key}", "set with dataset.import, allowed: null (the factory "
                                                  "returns the data itself)")
        return
    if d.identity is not None or d.path is not None:
        key = "identity" if d.identity is not None else "path"
        raise ctx.error(f"dataset.{key}", "set without dataset.import, allowed: null, or set dataset.import")
    resized = DataSpec(name=d.name).info.default_size is not None
    if resized and d.root is None:
        raise ctx.error("dataset.root", "not set, allowed: a folder holding train/ and test/ (or val/), "
                                        "each with one folder of images per class")
    if d.size is not None and not resized:
        raise ctx.error("dataset.size", f"{d.size} for {d.name}, allowed: only with dataset.name: imagefolder "
                                        f"(its images are resized to size x size)")


def _check_model_kwargs(recipe: Recipe, ctx: Ctx) -> None:
    """model.kwargs against the built-in model's settings (types, ranges, fit to the dataset)."""
    from tprm.science.modelspec import check_model_kwargs

    m = recipe.model
    problem = check_model_kwargs(m.name, dict(m.kwargs), recipe.data_spec().input_shape)
    if problem is not None:
        key, message = problem
        if "model.name" not in ctx.lines:  # the model defaulted: that is what to fix
            raise ctx.error("model.name", f"not set, so the default {m.name} is used: {message}")
        raise ctx.error(f"model.kwargs.{key}" if key else "model.name", message)


def parse_recipe(text: str, source: str = "<string>", *, base_dir: str | Path | None = None) -> Recipe:
    """Validate recipe YAML ``text``. ``source`` names it in errors; relative paths (dense.init,
    dataset.root) are resolved against ``base_dir`` (default: the current directory)."""
    ctx = Ctx(source, Path(base_dir) if base_dir is not None else Path.cwd(), _SECTION_CHECKS)
    root = compose(text, source)
    if root is None:
        raise RecipeError("the file is empty, allowed: a mapping with at least 'name: <recipe-name>'",
                          source=source, line=1, field="recipe")
    return _validate(root, ctx)


def _validate(root: yaml.Node, ctx: Ctx) -> Recipe:
    """A Recipe from a composed node tree; it remembers the line of every key the tree set."""
    ctx.root_line = root.start_mark.line + 1
    if not isinstance(root, yaml.MappingNode):
        check_tag(root, "recipe", ctx)
        raise ctx.error("", f"expected a mapping of settings (name: ..., dataset: ...), got {shown(root)}", root)
    recipe = read_section(Recipe, root, "", ctx)
    ctx.raise_collected()  # every wrong setting at once; the cross-field checks need them right
    _check_recipe(recipe, ctx)
    object.__setattr__(recipe, "_lines", FrozenDict(ctx.lines))
    object.__setattr__(recipe, "_origin", (ctx.source, Path(ctx.base_dir)))
    return recipe


def check_setting(key: str, value: Any, flag: str) -> Any:
    """One setting given outside a file (a command-line override such as ``--device``), checked by
    the schema's own spec for dotted `key`; RecipeError ``FLAG: what is wrong, allowed: ...``."""
    cls: Any = Recipe
    *sections, leaf = key.split(".")
    for name in sections:
        cls = next(f for f in fields(cls) if f.name == name).metadata["section"]
    spec = next(f for f in fields(cls) if f.name == leaf).metadata["spec"]
    try:
        return spec.read(as_nodes(value, flag), key, Ctx(flag, Path.cwd()))
    except RecipeError as exc:
        raise RecipeError(f"{flag}: {exc.problem}") from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; relative paths inside it are relative to its directory."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("no such file, allowed: the path of a recipe .yaml file",
                          source=str(path), line=1, field="recipe") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read the file ({clip(str(exc), 80)}), allowed: a readable UTF-8 YAML file",
                          source=str(path), line=1, field="recipe") from None
    return parse_recipe(text, str(path), base_dir=path.resolve().parent)


def hotter_order(recipe: Recipe) -> list:
    """The temperature values sorted from coldest to hottest (HOTTER says which way is hot)."""
    values = sorted(recipe.temperature.values)
    return values if HOTTER[recipe.temperature.knob] == "larger" else values[::-1]
