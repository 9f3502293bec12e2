"""Recipes: the YAML file that says which (temperature x density) grid to run, and how.

A recipe is read with PyYAML's *composer* only (nodes with line marks, no object construction),
then walked against the schema below, so every problem is reported as ONE line
``file:line: dotted.field: what is wrong, what is allowed`` and no YAML tag can run code.
The result is a frozen, hashable :class:`Recipe` with every default filled in; ``to_yaml()``
writes it back in full, and ``hash`` identifies its content. The schema and its defaults are the
contract in docs/ARCHITECTURE.md; docs/recipes.md explains every field.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DATASET_NAMES", "MODEL_NAMES", "HOTTER", "KNOBS", "RecipeError", "Recipe", "FrozenDict",
    "load_recipe", "parse_recipe", "find_recipe", "known_recipes", "hotter_order",
]

# Kept here (not imported from the science layer) so that loading a recipe stays fast.
DATASET_NAMES: tuple[str, ...] = ("mnist1d", "cifar10", "cifar100", "svhn")
MODEL_NAMES: tuple[str, ...] = ("mlp", "conv1d", "preresnet", "resnet18", "vgg11", "vgg16", "densenet")
_CHANNELS = {"mnist1d": 1, "cifar10": 3, "cifar100": 3, "svhn": 3}

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
# Exponent numbers without a dot or exponent sign ("1e-4", "3E5") are strings to YAML 1.1 (PyYAML);
# number fields accept them as the number anyone writing them means.
_EXP_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_MAX_SEED = 2**32 - 1

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _SEQ, _MAP = _TAG + "timestamp", _TAG + "seq", _TAG + "map"
_SCALAR_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP}
_CONSTRUCT = yaml.constructor.SafeConstructor()
_ALIAS = "tprm:alias"   # the tag an alias (*name) gets: rejected where it is read, with its field


class _Loader(yaml.SafeLoader):
    """Composes a recipe without following aliases: each ``*name`` becomes a marker node at its own
    line, so a nested-alias "billion laughs" costs nothing and is rejected naming its field."""

    def compose_node(self, parent, index):  # noqa: ANN001 -- PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            return yaml.ScalarNode(_ALIAS, f"*{event.anchor}", event.start_mark, event.end_mark)
        return super().compose_node(parent, index)


class RecipeError(ValueError):
    """A recipe problem. ``str()`` is one line: ``file:line: field: what is wrong, what is allowed``."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.source, self.line, self.field, self.problem = source, line, field, message
        text = message if source is None else f"{source}:{line or 1}: {field or 'recipe'}: {message}"
        super().__init__(" ".join(text.splitlines()))


class FrozenDict(dict):
    """An immutable, hashable dict (model kwargs), so recipes are hashable; still JSON-able as a dict."""

    def _immutable(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("recipe settings are immutable; use Recipe.with_overrides")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _immutable

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


# --------------------------------------------------------------------------------------------------
# Reading nodes: one small "spec" object per kind of leaf value.
# --------------------------------------------------------------------------------------------------

class _Ctx:
    """Where we are: the source name, the base directory for paths, and the line of every field."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source, self.base_dir = source, base_dir
        self.lines: dict[str, int] = {}
        self.items: dict[str, list[tuple[Any, int]]] = {}   # grid path -> [(value, line)] as written
        self.root_line = 1

    def line_of(self, path: str) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:path.rindex("[")] if path.endswith("]") else path.rpartition(".")[0]
        return self.root_line

    def error(self, path: str, message: str, node: yaml.Node | None = None) -> RecipeError:
        line = node.start_mark.line + 1 if node is not None else self.line_of(path)
        return RecipeError(message, source=self.source, line=line, field=path or "recipe")

    def grid(self, path: str, values: Iterable[Any]) -> Iterator[tuple[str, Any, int]]:
        """(field path, value, line) of each grid entry, in the order the user wrote them."""
        written = self.items.get(path)
        if written is None:
            written = [(v, self.line_of(path)) for v in values]
        for i, (value, line) in enumerate(written):
            yield f"{path}[{i}]", value, line


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _shown(node: yaml.Node) -> str:
    """How a node is named in a message: 'abc' for strings, 1e3 for numbers, 'a list' etc."""
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if node.tag == _NULL:
        return "null"
    if node.tag == _BOOL:
        text = node.value.lower()
        return text if text in ("true", "false") else f"{_clip(node.value)} (a boolean)"
    if node.tag == _STR and not (node.style is None and _EXP_NUMBER.fullmatch(node.value)):
        return repr(_clip(node.value))
    return _clip(node.value)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def _check_tag(node: yaml.Node, path: str, ctx: _Ctx) -> None:
    if node.tag == _ALIAS:
        raise ctx.error(path, f"YAML alias {_clip(node.value)!r} is not supported, allowed: the value "
                              "written out (recipes take no anchors or aliases)", node)
    allowed = {yaml.ScalarNode: _SCALAR_TAGS, yaml.SequenceNode: {_SEQ}, yaml.MappingNode: {_MAP}}
    if node.tag not in allowed[type(node)]:
        raise ctx.error(path, f"unsupported YAML tag {_clip(_short_tag(node.tag))!r}, only plain values "
                              "are allowed (numbers, strings, booleans, null, lists, mappings)", node)


def _construct(node: yaml.ScalarNode, path: str, ctx: _Ctx) -> Any:
    """Python value of a scalar with a standard tag (explicit tags like !!int abc can fail)."""
    try:
        if node.tag == _INT:
            return _CONSTRUCT.construct_yaml_int(node)
        if node.tag == _FLOAT:
            return _CONSTRUCT.construct_yaml_float(node)
        if node.tag == _BOOL:
            return _CONSTRUCT.construct_yaml_bool(node)
        if node.tag == _NULL:
            return None
    except Exception:  # noqa: BLE001 -- any failure of PyYAML's converter is a bad value
        raise ctx.error(path, f"cannot read {_clip(node.value)!r} as {_short_tag(node.tag)}, "
                              "write a plain value", node) from None
    return node.value   # str and timestamp: the text as written


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {_num(hi)}"
    return "any finite number"


def _in_range(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (v < lo or (lo_open and v == lo)):
        return False
    return not (hi is not None and (v > hi or (hi_open and v == hi)))


@dataclass(frozen=True)
class _Number:
    """An int (``integer=True``) or a finite float, optionally null, within a range."""

    integer: bool = False
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False
    keep_int: bool = False          # a number field that keeps ints as ints (temperature values)

    def expects(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return kind + (" or null" if self.optional else "")

    def allowed(self) -> str:
        return _range_text(self.lo, self.hi, self.lo_open, self.hi_open)

    def read(self, node: yaml.Node, path: str, ctx: _Ctx) -> Any:
        _check_tag(node, path, ctx)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _NULL and self.optional:
                return None
            value: Any = None
            if node.tag == _INT:
                value = _construct(node, path, ctx)
            elif node.tag == _FLOAT and not self.integer:
                value = _construct(node, path, ctx)
            elif node.tag == _STR and node.style is None and not self.integer and _EXP_NUMBER.fullmatch(node.value):
                value = float(node.value)
            if value is not None:
                return self.check(value, path, ctx, node)
        raise ctx.error(path, f"expected {self.expects()}, got {_shown(node)}", node)

    def check(self, value: Any, path: str, ctx: _Ctx, node: yaml.Node | None) -> Any:
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float):
            raise ctx.error(path, f"{_clip(str(value))} is not a finite number, allowed: {self.allowed()}", node)
        if not _in_range(as_float, self.lo, self.hi, self.lo_open, self.hi_open):
            raise ctx.error(path, f"{_clip(repr(value))} is out of range, allowed: {self.allowed()}", node)
        if self.integer or (self.keep_int and isinstance(value, int)):
            return int(value)
        return as_float


@dataclass(frozen=True)
class _Bool:
    optional: bool = False

    def read(self, node: yaml.Node, path: str, ctx: _Ctx) -> bool | None:
        _check_tag(node, path, ctx)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _BOOL:
                return _construct(node, path, ctx)
            if node.tag == _NULL and self.optional:
                return None
        nothing = " or null" if self.optional else ""
        raise ctx.error(path, f"expected true or false{nothing}, got {_shown(node)}", node)


@dataclass(frozen=True)
class _Text:
    """A string: free text, one of ``choices``, or matching ``pattern`` (described by ``what``)."""

    choices: tuple[str, ...] = ()
    pattern: re.Pattern | None = None
    what: str = ""
    optional: bool = False
    path_like: bool = False         # resolve relative to the recipe's directory
    must_exist: bool = False

    def read(self, node: yaml.Node, path: str, ctx: _Ctx) -> str | None:
        _check_tag(node, path, ctx)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _NULL and self.optional:
                return None
            if node.tag in (_STR, _TIMESTAMP) or (node.tag in (_INT, _FLOAT) and node.style is None):
                return self.check(node.value, path, ctx, node)
        kind = "one of " + ", ".join(self.choices) if self.choices else "a string"
        raise ctx.error(path, f"expected {kind}{' or null' if self.optional else ''}, got {_shown(node)}", node)

    def check(self, text: str, path: str, ctx: _Ctx, node: yaml.Node | None) -> str:
        if self.choices and text not in self.choices:
            close = difflib.get_close_matches(text, self.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ctx.error(path, f"unknown value {_clip(text)!r}{hint}, allowed: {', '.join(self.choices)}", node)
        if self.pattern is not None and not self.pattern.fullmatch(text):
            raise ctx.error(path, f"{_clip(text)!r} is not valid, allowed: {self.what}", node)
        if self.path_like:
            if not text.strip():
                raise ctx.error(path, f"{text!r} is not a path, allowed: a file path or null", node)
            try:
                resolved = (ctx.base_dir / Path(text).expanduser()).resolve()
                exists = resolved.is_file()
            except (OSError, ValueError, RuntimeError):
                raise ctx.error(path, f"{_clip(text)!r} is not a valid path, allowed: a file path or null",
                                node) from None
            if self.must_exist and not exists:
                raise ctx.error(path, f"file {_clip(text, 60)!r} not found (looked for {resolved}), "
                                      "allowed: an existing file, relative to the recipe's directory", node)
            return str(resolved)
        return text


@dataclass(frozen=True)
class _List:
    """A list of ``item`` values: a grid when ``unique`` (stored sorted, so order does not matter)."""

    item: Any
    what: str = "values"
    min_len: int = 0
    unique: bool = True
    sort: bool = True
    optional: bool = False

    def read(self, node: yaml.Node, path: str, ctx: _Ctx) -> tuple | None:
        _check_tag(node, path, ctx)
        if self.optional and _is_null(node):
            return None
        if not isinstance(node, yaml.SequenceNode):
            nothing = " or null" if self.optional else ""
            raise ctx.error(path, f"expected a list of {self.what}{nothing}, got {_shown(node)}", node)
        written: list[tuple[Any, int]] = []
        for i, child in enumerate(node.value):
            value = self.item.read(child, f"{path}[{i}]", ctx)
            line = child.start_mark.line + 1
            if self.unique:
                for j, (other, _) in enumerate(written):
                    if other == value:
                        raise ctx.error(f"{path}[{i}]", f"{value!r} appears twice (also {path}[{j}]), "
                                                        "allowed: each value once", child)
            written.append((value, line))
        ctx.items[path] = written
        if len(written) < self.min_len:
            what = "empty list" if not written else f"only {len(written)} value(s)"
            raise ctx.error(path, f"{what}, allowed: a list of at least {self.min_len} {self.what}", node)
        values = [v for v, _ in written]
        return tuple(sorted(values) if self.sort else values)


@dataclass(frozen=True)
class _Layers:
    """pruning.layers: "default" or a list of fnmatch patterns over parameter names."""

    def read(self, node: yaml.Node, path: str, ctx: _Ctx) -> str | tuple[str, ...]:
        _check_tag(node, path, ctx)
        if isinstance(node, yaml.SequenceNode):
            return _List(_Text(pattern=re.compile(r"\S+"), what="a non-empty name pattern"),
                         what="parameter name patterns", min_len=1, sort=False).read(node, path, ctx)
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value == "default":
            return "default"
        raise ctx.error(path, f"expected 'default' or a list of parameter name patterns, got {_shown(node)}", node)


@dataclass(frozen=True)
class _FreeMapping:
    """model.kwargs: plain YAML data passed to the model builder (keys are Python identifiers)."""

    reserved: tuple[str, ...] = ("num_classes", "input_shape")

    def read(self, node: yaml.Node, path: str, ctx: _Ctx) -> FrozenDict:
        _check_tag(node, path, ctx)
        if not isinstance(node, yaml.MappingNode):
            raise ctx.error(path, f"expected a mapping of keyword arguments, got {_shown(node)}", node)
        out = self._plain(node, path, ctx, 0)
        for key in out:
            if not key.isidentifier():
                raise ctx.error(path, f"key {_clip(key)!r} is not a Python name, allowed: keyword argument names")
            if key in self.reserved:
                raise ctx.error(path, f"{key!r} is set by tprm from the dataset, allowed: other keyword arguments")
        return out

    def _plain(self, node: yaml.Node, path: str, ctx: _Ctx, depth: int) -> Any:
        _check_tag(node, path, ctx)
        if depth > 16:
            raise ctx.error(path, "nested too deeply, allowed: at most 16 levels", node)
        if isinstance(node, yaml.SequenceNode):
            return tuple(self._plain(child, path, ctx, depth + 1) for child in node.value)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                _check_tag(key_node, path, ctx)
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                    raise ctx.error(path, f"key {_shown(key_node)} is not a name, allowed: string keys", key_node)
                key = key_node.value
                if key in out:
                    raise ctx.error(path, f"duplicate key {_clip(key)!r}, allowed: each key once", key_node)
                if depth == 0:
                    ctx.lines[f"{path}.{key}"] = key_node.start_mark.line + 1
                out[key] = self._plain(value_node, path, ctx, depth + 1)
            return FrozenDict(out)
        value = _construct(node, path, ctx)
        if isinstance(value, float) and not math.isfinite(value):
            raise ctx.error(path, f"{node.value} is not a finite number, allowed: finite numbers", node)
        return value


def _setting(default: Any, spec: Any) -> Any:
    return field(default=default, metadata={"spec": spec})


def _section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"section": cls})


def _yaml_key(f: dataclasses.Field) -> str:
    return f.name[:-1] if f.name.endswith("_") else f.name


_SEED = _Number(integer=True, lo=0, hi=_MAX_SEED)
_POS_INT = _Number(integer=True, lo=1)
_FRACTION = _Number(lo=0, hi=1)

# --------------------------------------------------------------------------------------------------
# The schema (attribute names = YAML keys; ``import_`` is ``import``). Defaults = docs/ARCHITECTURE.md.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentSection:
    crop_padding: int | None = _setting(None, _Number(integer=True, lo=0, optional=True))
    flip: bool | None = _setting(None, _Bool(optional=True))


@dataclass(frozen=True)
class NormalizeSection:
    mean: tuple[float, ...] | None = _setting(None, _List(_Number(), "numbers (one per channel)",
                                                          min_len=1, unique=False, sort=False, optional=True))
    std: tuple[float, ...] | None = _setting(None, _List(_Number(lo=0, lo_open=True), "numbers > 0 (one per channel)",
                                                         min_len=1, unique=False, sort=False, optional=True))


@dataclass(frozen=True)
class DatasetSection:
    name: str = _setting("mnist1d", _Text(choices=DATASET_NAMES))
    root: str | None = _setting(None, _Text(optional=True, path_like=True))
    download: bool = _setting(False, _Bool())
    seed: int = _setting(42, _SEED)
    num_samples: int = _setting(5000, _Number(integer=True, lo=50))
    train_subset: int | None = _setting(None, _Number(integer=True, lo=1, optional=True))
    test_subset: int | None = _setting(None, _Number(integer=True, lo=1, optional=True))
    augment: AugmentSection = _section(AugmentSection)
    normalize: NormalizeSection = _section(NormalizeSection)


@dataclass(frozen=True)
class ModelSection:
    name: str = _setting("conv1d", _Text(pattern=_LABEL, what="a built-in model name "
                                                                   "(or a label when model.import is set)"))
    import_: str | None = _setting(None, _Text(optional=True, pattern=_IMPORT,
                                               what="'package.module:factory' or null"))
    kwargs: FrozenDict = field(default_factory=FrozenDict, metadata={"spec": _FreeMapping()})


@dataclass(frozen=True)
class _ScheduleSection:
    """Fields shared by dense training and retraining (one SGD/SAM schedule)."""

    epochs: int | None = _setting(64, _Number(integer=True, lo=1, optional=True))
    iterations: int | None = _setting(None, _Number(integer=True, lo=1, optional=True))
    batch_size: int = _setting(128, _POS_INT)
    lr: float = _setting(0.05, _Number(lo=0, lo_open=True))
    momentum: float = _setting(0.9, _Number(lo=0, hi=1, hi_open=True))
    weight_decay: float = _setting(5.0e-4, _Number(lo=0))
    milestones: tuple[float, ...] = _setting((0.5, 0.75), _List(_Number(lo=0, hi=1, lo_open=True, hi_open=True),
                                                                "fractions of the budget in (0, 1)"))
    gamma: float = _setting(0.1, _Number(lo=0, hi=1, lo_open=True))
    sam_rho: float = _setting(0.0, _Number(lo=0))


@dataclass(frozen=True)
class DenseSection(_ScheduleSection):
    checkpoint_every: int = _setting(1, _POS_INT)
    init: str | None = _setting(None, _Text(optional=True, path_like=True, must_exist=True))


@dataclass(frozen=True)
class TemperatureSection:
    knob: str = _setting("epochs", _Text(choices=KNOBS))
    values: tuple[float, ...] = _setting((4, 8, 16, 32, 48, 64),
                                         _List(_Number(keep_int=True), "temperature values", min_len=1))


@dataclass(frozen=True)
class PruningSection:
    method: str = _setting("magnitude", _Text(choices=("magnitude", "random", "imp")))
    scope: str = _setting("layerwise", _Text(choices=("layerwise", "global")))
    layers: str | tuple[str, ...] = _setting("default", _Layers())
    imp_rounds: int = _setting(3, _POS_INT)


@dataclass(frozen=True)
class RetrainSection(_ScheduleSection):
    epochs: int | None = _setting(30, _Number(integer=True, lo=1, optional=True))
    lr: float = _setting(0.1, _Number(lo=0, lo_open=True))
    seeds: tuple[int, ...] = _setting((0, 1), _List(_SEED, "seeds (integers >= 0)", min_len=2))
    last_epochs: int = _setting(5, _POS_INT)


@dataclass(frozen=True)
class LmcSection:
    points: int = _setting(11, _Number(integer=True, lo=3))
    bn_batch_size: int = _setting(64, _POS_INT)
    test: bool = _setting(True, _Bool())


@dataclass(frozen=True)
class CkaSection:
    samples: int = _setting(6400, _Number(integer=True, lo=2))


@dataclass(frozen=True)
class HessianSection:
    enabled: bool = _setting(False, _Bool())
    samples: int = _setting(512, _POS_INT)
    probes: int = _setting(64, _POS_INT)
    power_iters: int = _setting(20, _POS_INT)


@dataclass(frozen=True)
class MetricsSection:
    lmc: LmcSection = _section(LmcSection)
    cka: CkaSection = _section(CkaSection)
    hessian: HessianSection = _section(HessianSection)


@dataclass(frozen=True)
class RegimesSection:
    mc_on: str = _setting("error", _Text(choices=("error", "loss")))
    mc_threshold: float = _setting(-0.05, _Number(hi=0))
    mc_loss_threshold: float = _setting(-0.1, _Number(hi=0))
    cka_threshold: float = _setting(0.95, _FRACTION)
    cka_output: str = _setting("softmax", _Text(choices=("softmax", "logits")))
    split: str = _setting("fixed", _Text(choices=("fixed", "median")))
    max_endpoint_gap: float = _setting(0.05, _FRACTION)


@dataclass(frozen=True)
class CasesSection:
    noise_floor: float = _setting(0.002, _FRACTION)
    select_retrain_epochs: int | None = _setting(None, _Number(integer=True, lo=1, optional=True))
    sam_max_steps: int = _setting(6, _POS_INT)
    sam_rho_min: float = _setting(0.01, _Number(lo=0, lo_open=True))
    sam_rho_max: float = _setting(2.0, _Number(lo=0, lo_open=True))


@dataclass(frozen=True)
class RaySection:
    """execution.ray: where and how job groups run when execution.backend is ray (docs/cluster.md)."""

    address: str | None = _setting(None, _Text(optional=True, pattern=_RAY_ADDRESS,
                                               what="null, auto, HOST:PORT or ray://HOST:PORT"))
    cpus_per_group: float = _setting(1.0, _Number(lo=0, lo_open=True))
    gpus_per_group: float | None = _setting(None, _Number(lo=0, optional=True))
    max_retries: int = _setting(3, _Number(integer=True, lo=0))
    max_groups: int | None = _setting(None, _Number(integer=True, lo=1, optional=True))
    ship_code: bool = _setting(True, _Bool())


@dataclass(frozen=True)
class ExecutionSection:
    device: str = _setting("auto", _Text(pattern=_DEVICE, what="auto, cpu, cuda, cuda:N or mps"))
    jobs: int = _setting(1, _POS_INT)
    precision: str = _setting("float32", _Text(choices=("float32", "float64")))
    on_error: str = _setting("continue", _Text(choices=("continue", "stop")))
    fuse: bool = _setting(True, _Bool())
    max_fused: int = _setting(128, _POS_INT)
    threads: int | None = _setting(1, _Number(integer=True, lo=1, hi=1024, optional=True))
    backend: str = _setting("local", _Text(choices=("local", "ray")))
    ray: RaySection = _section(RaySection)


@dataclass(frozen=True)
class Recipe:
    """A validated recipe with every default filled in. Build it with load_recipe/parse_recipe."""

    name: str = _setting(None, _Text(pattern=_NAME, what="lower-case letters, digits, '-' and '_', "
                                                          "starting with a letter or digit (max 64)"))
    description: str = _setting("", _Text())
    dataset: DatasetSection = _section(DatasetSection)
    model: ModelSection = _section(ModelSection)
    dense: DenseSection = _section(DenseSection)
    temperature: TemperatureSection = _section(TemperatureSection)
    densities: tuple[float, ...] = _setting((0.05, 0.1, 0.2, 0.4, 0.8),
                                            _List(_Number(lo=0, hi=1, lo_open=True), "densities in (0, 1]", 1))
    pruning: PruningSection = _section(PruningSection)
    retrain: RetrainSection = _section(RetrainSection)
    dense_seeds: tuple[int, ...] = _setting((0,), _List(_SEED, "seeds (integers >= 0)", min_len=1))
    metrics: MetricsSection = _section(MetricsSection)
    regimes: RegimesSection = _section(RegimesSection)
    cases: CasesSection = _section(CasesSection)
    execution: ExecutionSection = _section(ExecutionSection)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (YAML keys, lists, dicts), every default included."""
        return _plain(self)

    def to_yaml(self) -> str:
        """The full resolved recipe as YAML; ``parse_recipe(r.to_yaml()) == r``."""
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the resolved recipe without name and description."""
        content = self.to_dict()
        del content["name"], content["description"]
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
        merged = _merge(self.to_dict(), _plain_overrides(overrides))
        try:
            text = yaml.dump(merged, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        except yaml.YAMLError as exc:
            raise RecipeError(f"cannot write the overrides as YAML ({_clip(str(exc), 80)}), allowed: numbers, "
                              "strings, booleans, null, lists and mappings",
                              source="<overrides>", line=1, field="overrides") from None
        return parse_recipe(text, source="<overrides>")

    def data_spec(self):
        """The science layer's DataSpec for this recipe's dataset (imported lazily)."""
        from tprm.science.dataspec import DataSpec

        d = self.dataset
        return DataSpec(name=d.name, root=d.root, download=d.download, seed=d.seed,
                        num_samples=d.num_samples, train_subset=d.train_subset, test_subset=d.test_subset,
                        crop_padding=d.augment.crop_padding, flip=d.augment.flip,
                        mean=d.normalize.mean, std=d.normalize.std)


# --------------------------------------------------------------------------------------------------
# Walking the node tree
# --------------------------------------------------------------------------------------------------


def _read_section(cls: type, node: yaml.Node, path: str, ctx: _Ctx) -> Any:
    """Read a mapping node into ``cls``; absent keys keep their defaults."""
    _check_tag(node, path or "recipe", ctx)
    if _is_null(node) and path:
        return cls()
    by_key = {_yaml_key(f): f for f in fields(cls)}
    if not isinstance(node, yaml.MappingNode):
        where = f"the {path} section" if path else "a recipe"
        raise ctx.error(path, f"expected a mapping for {where} (keys: {', '.join(by_key)}), got {_shown(node)}",
                        node)
    values: dict[str, Any] = {}
    given: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        _check_tag(key_node, path, ctx)
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in (_NULL, _BOOL):
            raise ctx.error(path, f"key {_shown(key_node)} is not a setting name, allowed: {', '.join(by_key)}",
                            key_node)
        key = key_node.value
        sub = f"{path}.{key}" if path else key
        named = sub if re.fullmatch(r"\w+", key) else path
        if key in given:
            raise ctx.error(named, f"duplicate key {_clip(key)!r} (first at line {ctx.lines[sub]}), "
                                   "allowed: each setting once", key_node)
        if key not in by_key:
            close = difflib.get_close_matches(key, list(by_key), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ctx.error(named, f"unknown key {_clip(key)!r}{hint}, allowed: {', '.join(by_key)}", key_node)
        f = by_key[key]
        ctx.lines[sub] = key_node.start_mark.line + 1
        given[key] = value_node
        if "section" in f.metadata:
            values[f.name] = _read_section(f.metadata["section"], value_node, sub, ctx)
        else:
            values[f.name] = f.metadata["spec"].read(value_node, sub, ctx)
    check = _SECTION_CHECKS.get(cls)
    if check is not None:
        check(cls, values, given, path, ctx)
    return cls(**values)


def _check_budget(cls: type, values: dict[str, Any], given: dict[str, yaml.Node], path: str, ctx: _Ctx) -> None:
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


def _check_model(cls: type, values: dict[str, Any], given: dict[str, yaml.Node], path: str, ctx: _Ctx) -> None:
    """Without ``import`` the name picks a built-in model; with it, the name is only a label."""
    factory = values.get("import_")
    if factory is None:
        name = values.get("name", "conv1d")
        if name not in MODEL_NAMES:
            close = difflib.get_close_matches(name, MODEL_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ctx.error(f"{path}.name", f"unknown model {_clip(name)!r}{hint}, allowed: "
                                            f"{', '.join(MODEL_NAMES)} (or set model.import)", given.get("name"))
    elif "name" not in given:
        values["name"] = factory.rpartition(":")[2].rpartition(".")[2]


def _check_temperature(cls: type, values: dict[str, Any], given: dict[str, yaml.Node], path: str, ctx: _Ctx) -> None:
    """Temperature values take the knob's type and range (cross-checks with dense come later)."""
    knob = values.get("knob", "epochs")
    if knob != "epochs" and "values" not in given:
        raise ctx.error(f"{path}.values", f"missing for knob {knob!r} (the default values are epoch counts), "
                                          f"allowed: a list of {knob} values to sweep")
    if "values" not in values:
        return
    integer = knob in ("epochs", "batch_size")
    rule = {"epochs": _POS_INT, "batch_size": _POS_INT, "lr": _Number(lo=0, lo_open=True),
            "weight_decay": _Number(lo=0), "sam_rho": _Number(lo=0)}[knob]
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


def _check_recipe(recipe: Recipe, ctx: _Ctx) -> None:
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
    channels = _CHANNELS[recipe.dataset.name]
    for key in ("mean", "std"):
        value = getattr(recipe.dataset.normalize, key)
        if value is not None and len(value) != channels:
            if "dataset.name" not in ctx.lines:  # the dataset defaulted: that is what to fix
                raise ctx.error("dataset.name", f"not set, so the default {recipe.dataset.name} ({channels} "
                                                f"channel) is used but dataset.normalize.{key} has {len(value)} "
                                                f"values, allowed: one of {', '.join(DATASET_NAMES)}")
            raise ctx.error(f"dataset.normalize.{key}", f"{len(value)} value(s) for {recipe.dataset.name}, "
                                                        f"allowed: one per channel ({channels})")
    if recipe.model.import_ is None:
        _check_model_kwargs(recipe, ctx)
    c = recipe.cases
    if c.sam_rho_max <= c.sam_rho_min:
        raise ctx.error("cases.sam_rho_max", f"{c.sam_rho_max:g} is not above cases.sam_rho_min "
                                             f"({c.sam_rho_min:g}), allowed: a value > sam_rho_min")


def _check_model_kwargs(recipe: Recipe, ctx: _Ctx) -> None:
    """model.kwargs against the built-in model's settings (types, ranges, fit to the dataset)."""
    from tprm.science.dataspec import DataSpec
    from tprm.science.modelspec import check_model_kwargs

    m = recipe.model
    problem = check_model_kwargs(m.name, dict(m.kwargs), DataSpec(name=recipe.dataset.name).input_shape)
    if problem is not None:
        key, message = problem
        if "model.name" not in ctx.lines:  # the model defaulted: that is what to fix
            raise ctx.error("model.name", f"not set, so the default {m.name} is used: {message}")
        raise ctx.error(f"model.kwargs.{key}" if key else "model.name", message)


def parse_recipe(text: str, source: str = "<string>", *, base_dir: str | Path | None = None) -> Recipe:
    """Validate recipe YAML ``text``. ``source`` names it in errors; relative paths (dense.init,
    dataset.root) are resolved against ``base_dir`` (default: the current directory)."""
    ctx = _Ctx(source, Path(base_dir) if base_dir is not None else Path.cwd())
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise RecipeError(f"invalid YAML: {problem}, allowed: well-formed YAML (check indentation, colons "
                          "and quotes)", source=source, line=mark.line + 1 if mark else 1, field="yaml") from None
    except yaml.YAMLError as exc:   # reader errors: characters YAML does not allow
        position = getattr(exc, "position", 0) or 0
        reason = getattr(exc, "reason", "invalid input")
        raise RecipeError(f"invalid YAML: {reason}, allowed: printable UTF-8 text", source=source,
                          line=text.count("\n", 0, position) + 1, field="yaml") from None
    except RecursionError:
        raise RecipeError("invalid YAML: nested too deeply, allowed: a recipe of a few levels",
                          source=source, line=1, field="yaml") from None
    if root is None:
        raise RecipeError("the file is empty, allowed: a mapping with at least 'name: <recipe-name>'",
                          source=source, line=1, field="recipe")
    ctx.root_line = root.start_mark.line + 1
    if not isinstance(root, yaml.MappingNode):
        _check_tag(root, "recipe", ctx)
        raise ctx.error("", f"expected a mapping of settings (name: ..., dataset: ...), got {_shown(root)}", root)
    recipe = _read_section(Recipe, root, "", ctx)
    _check_recipe(recipe, ctx)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; relative paths inside it are relative to its directory."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("no such file, allowed: the path of a recipe .yaml file",
                          source=str(path), line=1, field="recipe") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read the file ({_clip(str(exc), 80)}), allowed: a readable UTF-8 YAML file",
                          source=str(path), line=1, field="recipe") from None
    return parse_recipe(text, str(path), base_dir=path.resolve().parent)


def known_recipes(search_dirs: Iterable[str | Path]) -> dict[str, Path]:
    """Recipe name -> file, over ``search_dirs`` in order (the first directory wins a name)."""
    found: dict[str, Path] = {}
    for directory in search_dirs:
        directory = Path(directory)
        if directory.is_dir():
            for p in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
                found.setdefault(p.stem, p)
    return found


def find_recipe(name_or_path: str | Path, search_dirs: Iterable[str | Path]) -> Path:
    """An existing file path as given, else ``<dir>/<name>.yaml`` from the first dir that has it."""
    direct = Path(name_or_path)
    if _is_file(direct):
        return direct
    search_dirs = list(search_dirs)
    name = str(name_or_path)
    for directory in search_dirs:
        for candidate in (Path(directory) / f"{name}.yaml", Path(directory) / f"{name}.yml"):
            if _is_file(candidate):
                return candidate
    known = sorted(known_recipes(search_dirs))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise RecipeError(f"no recipe named {_clip(name, 60)!r}{hint}; known: {', '.join(known) or '(none)'}")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def hotter_order(recipe: Recipe) -> list:
    """The temperature values sorted from coldest to hottest (HOTTER says which way is hot)."""
    values = sorted(recipe.temperature.values)
    return values if HOTTER[recipe.temperature.knob] == "larger" else values[::-1]


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {_yaml_key(f): _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _plain_overrides(value: Any) -> Any:
    """Override data as plain dicts/lists (``import_`` accepted for ``import``)."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(value)
    if isinstance(value, Mapping):
        return {("import" if k == "import_" else k): _plain_overrides(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain_overrides(v) for v in value]
    return value


def _merge(base: dict, override: Mapping, path: str = "") -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and path != "model.kwargs":
            out[key] = _merge(out[key], value, f"{path}.{key}" if path else str(key))
        else:
            out[key] = value
    # Overriding one key of a pair without the other does what leaving the key out of a file does.
    if path in ("dense", "retrain"):
        for key, partner in (("epochs", "iterations"), ("iterations", "epochs")):
            if override.get(key) is not None and partner not in override:
                out[partner] = None
    if path == "model":
        if override.get("import") is not None and "name" not in override:
            out.pop("name", None)           # re-derived from the factory's name
        if "name" in override and "import" not in override:
            out["import"] = None            # a built-in model name replaces an imported factory
    return out


class _Dumper(yaml.SafeDumper):
    """Block mappings, flow lists, no anchors: a readable full recipe."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(dict, lambda d, data: d.represent_mapping(_MAP, data, flow_style=False))
_Dumper.add_representer(list, lambda d, data: d.represent_sequence(_SEQ, data, flow_style=True))
