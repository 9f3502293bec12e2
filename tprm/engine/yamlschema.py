"""A validator for YAML documents against a schema of frozen dataclasses (the recipe's is in
recipe.py): YAML is read with PyYAML's *composer* only (nodes with line marks, no object
construction), then each node is read by the field's spec (Number, Text, ListOf, ...), so every
problem is ONE line ``source:line: dotted.field: what is wrong, what is allowed`` and no YAML tag
can run code. Also the way back: plain data, YAML text, and node trees built from data.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, cast

import yaml

# Exponent numbers without a dot or exponent sign ("1e-4", "3E5") are strings to YAML 1.1 (PyYAML);
# number fields accept them as the number anyone writing them means.
_EXP_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_TAG = "tag:yaml.org,2002:"
STR_TAG, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _SEQ, _MAP = _TAG + "timestamp", _TAG + "seq", _TAG + "map"
_SCALAR_TAGS = {STR_TAG, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP}
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


class SchemaError(ValueError):
    """A document problem. ``str()`` is one line: ``file:line: field: what is wrong, what is allowed``."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.source, self.line, self.field, self.problem = source, line, field, message
        text = message if source is None else f"{source}:{line or 1}: {field or 'recipe'}: {message}"
        super().__init__(" ".join(text.splitlines()))


class SchemaErrors(SchemaError):
    """Several problems of one document (each a SchemaError, at most MAX_ERRORS). ``str()`` stays
    one line: the first problem and how many more; ``errors`` holds them all, in file order."""

    def __init__(self, errors: list[SchemaError]) -> None:
        first = errors[0]
        super().__init__(first.problem, source=first.source, line=first.line, field=first.field)
        self.errors = errors
        if len(errors) > 1:
            self.args = (f"{self.args[0]} (and {len(errors) - 1} more: `tprm recipes validate "
                         f"{first.source}` lists them all)",)


MAX_ERRORS = 20  # problems reported for one document; the rest wait for the next check


def all_errors(exc: BaseException) -> list:
    """The problems an error stands for: its own list, or itself."""
    return list(getattr(exc, "errors", None) or [exc])


class FrozenDict(dict):
    """An immutable, hashable dict (model kwargs), so recipes are hashable; still JSON-able as a dict."""

    def _immutable(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("recipe settings are immutable; use Recipe.with_overrides")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _immutable  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


# --------------------------------------------------------------------------------------------------
# Reading nodes: one small "spec" object per kind of leaf value.
# --------------------------------------------------------------------------------------------------

class Ctx:
    """Where we are: the source name, the base directory for paths, and the line of every field."""

    def __init__(self, source: str, base_dir: Path, checks: Mapping[type, Callable] | None = None) -> None:
        self.source, self.base_dir = source, base_dir
        self.checks = checks or {}   # section class -> check(cls, values, given, path, ctx)
        self.lines: dict[str, int] = {}
        self.items: dict[str, list[tuple[Any, int]]] = {}   # grid path -> [(value, line)] as written
        self.root_line = 1
        self.errors: list[SchemaError] = []   # problems of settings read so far (reading goes on)

    def collect(self, exc: SchemaError) -> None:
        """Keep a setting's problem and read on (up to MAX_ERRORS; then stop with all of them)."""
        self.errors += all_errors(exc)
        if len(self.errors) >= MAX_ERRORS:
            raise SchemaErrors(self.errors[:MAX_ERRORS])

    def raise_collected(self) -> None:
        if self.errors:
            raise SchemaErrors(sorted(self.errors, key=lambda e: e.line or 0))

    def line_of(self, path: str) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:path.rindex("[")] if path.endswith("]") else path.rpartition(".")[0]
        return self.root_line

    def error(self, path: str, message: str, node: yaml.Node | None = None) -> SchemaError:
        line = node.start_mark.line + 1 if node is not None else self.line_of(path)
        return SchemaError(message, source=self.source, line=line, field=path or "recipe")

    def grid(self, path: str, values: Iterable[Any]) -> Iterator[tuple[str, Any, int]]:
        """(field path, value, line) of each grid entry, in the order the user wrote them."""
        written = self.items.get(path)
        if written is None:
            written = [(v, self.line_of(path)) for v in values]
        for i, (value, line) in enumerate(written):
            yield f"{path}[{i}]", value, line


def clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown(node: yaml.Node) -> str:
    """How a node is named in a message: 'abc' for strings, 1e3 for numbers, 'a list' etc."""
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if node.tag == _NULL:
        return "null"
    if node.tag == _BOOL:
        text = node.value.lower()
        return text if text in ("true", "false") else f"{clip(node.value)} (a boolean)"
    if node.tag == STR_TAG and not (getattr(node, "style", None) is None and _EXP_NUMBER.fullmatch(node.value)):
        return repr(clip(node.value))
    return clip(node.value)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def check_tag(node: yaml.Node, path: str, ctx: Ctx) -> None:
    if node.tag == _ALIAS:
        raise ctx.error(path, f"YAML alias {clip(node.value)!r} is not supported, allowed: the value "
                              "written out (recipes take no anchors or aliases)", node)
    allowed = {yaml.ScalarNode: _SCALAR_TAGS, yaml.SequenceNode: {_SEQ}, yaml.MappingNode: {_MAP}}
    if node.tag not in allowed[type(node)]:
        raise ctx.error(path, f"unsupported YAML tag {clip(_short_tag(node.tag))!r}, only plain values "
                              "are allowed (numbers, strings, booleans, null, lists, mappings)", node)


def _construct(node: yaml.ScalarNode, path: str, ctx: Ctx) -> Any:
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
        raise ctx.error(path, f"cannot read {clip(node.value)!r} as {_short_tag(node.tag)}, "
                              "write a plain value", node) from None
    return node.value   # str and timestamp: the text as written


def is_null(node: yaml.Node) -> bool:
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
class Number:
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

    def read(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        check_tag(node, path, ctx)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _NULL and self.optional:
                return None
            value: Any = None
            if node.tag == _INT:
                value = _construct(node, path, ctx)
            elif node.tag == _FLOAT and not self.integer:
                value = _construct(node, path, ctx)
            elif node.tag == STR_TAG and node.style is None and not self.integer and _EXP_NUMBER.fullmatch(node.value):
                value = float(node.value)
            if value is not None:
                return self.check(value, path, ctx, node)
        raise ctx.error(path, f"expected {self.expects()}, got {shown(node)}", node)

    def check(self, value: Any, path: str, ctx: Ctx, node: yaml.Node | None) -> Any:
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float):
            raise ctx.error(path, f"{clip(str(value))} is not a finite number, allowed: {self.allowed()}", node)
        if not _in_range(as_float, self.lo, self.hi, self.lo_open, self.hi_open):
            raise ctx.error(path, f"{clip(repr(value))} is out of range, allowed: {self.allowed()}", node)
        if self.integer or (self.keep_int and isinstance(value, int)):
            return int(value)
        return as_float


@dataclass(frozen=True)
class Bool:
    optional: bool = False

    def read(self, node: yaml.Node, path: str, ctx: Ctx) -> bool | None:
        check_tag(node, path, ctx)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _BOOL:
                return _construct(node, path, ctx)
            if node.tag == _NULL and self.optional:
                return None
        nothing = " or null" if self.optional else ""
        raise ctx.error(path, f"expected true or false{nothing}, got {shown(node)}", node)


@dataclass(frozen=True)
class Text:
    """A string: free text, one of ``choices``, or matching ``pattern`` (described by ``what``)."""

    choices: tuple[str, ...] = ()
    pattern: re.Pattern | None = None
    what: str = ""
    optional: bool = False
    path_like: bool = False         # resolve relative to the recipe's directory
    must_exist: bool = False

    def read(self, node: yaml.Node, path: str, ctx: Ctx) -> str | None:
        check_tag(node, path, ctx)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _NULL and self.optional:
                return None
            if node.tag in (STR_TAG, _TIMESTAMP) or (node.tag in (_INT, _FLOAT) and node.style is None):
                return self.check(node.value, path, ctx, node)
        kind = "one of " + ", ".join(self.choices) if self.choices else "a string"
        raise ctx.error(path, f"expected {kind}{' or null' if self.optional else ''}, got {shown(node)}", node)

    def check(self, text: str, path: str, ctx: Ctx, node: yaml.Node | None) -> str:
        if self.choices and text not in self.choices:
            close = difflib.get_close_matches(text, self.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ctx.error(path, f"unknown value {clip(text)!r}{hint}, allowed: {', '.join(self.choices)}", node)
        if self.pattern is not None and not self.pattern.fullmatch(text):
            raise ctx.error(path, f"{clip(text)!r} is not valid, allowed: {self.what}", node)
        if self.path_like:
            if not text.strip():
                raise ctx.error(path, f"{text!r} is not a path, allowed: a file path or null", node)
            try:
                resolved = (ctx.base_dir / Path(text).expanduser()).resolve()
                exists = resolved.is_file()
            except (OSError, ValueError, RuntimeError):
                raise ctx.error(path, f"{clip(text)!r} is not a valid path, allowed: a file path or null",
                                node) from None
            if self.must_exist and not exists:
                raise ctx.error(path, f"file {clip(text, 60)!r} not found (looked for {resolved}), "
                                      "allowed: an existing file, relative to the recipe's directory", node)
            return str(resolved)
        return text


@dataclass(frozen=True)
class ListOf:
    """A list of ``item`` values: a grid when ``unique`` (stored sorted, so order does not matter)."""

    item: Any
    what: str = "values"
    min_len: int = 0
    unique: bool = True
    sort: bool = True
    optional: bool = False

    def read(self, node: yaml.Node, path: str, ctx: Ctx) -> tuple | None:
        check_tag(node, path, ctx)
        if self.optional and is_null(node):
            return None
        if not isinstance(node, yaml.SequenceNode):
            nothing = " or null" if self.optional else ""
            raise ctx.error(path, f"expected a list of {self.what}{nothing}, got {shown(node)}", node)
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
class FreeMapping:
    """model.kwargs: plain YAML data passed to the model builder (keys are Python identifiers)."""

    reserved: tuple[str, ...] = ("num_classes", "input_shape")

    def read(self, node: yaml.Node, path: str, ctx: Ctx) -> FrozenDict:
        check_tag(node, path, ctx)
        if not isinstance(node, yaml.MappingNode):
            raise ctx.error(path, f"expected a mapping of keyword arguments, got {shown(node)}", node)
        out = self._plain(node, path, ctx, 0)
        for key in out:
            if not key.isidentifier():
                raise ctx.error(path, f"key {clip(key)!r} is not a Python name, allowed: keyword argument names")
            if key in self.reserved:
                raise ctx.error(path, f"{key!r} is set by tprm from the dataset, allowed: other keyword arguments")
        return out

    def _plain(self, node: yaml.Node, path: str, ctx: Ctx, depth: int) -> Any:
        check_tag(node, path, ctx)
        if depth > 16:
            raise ctx.error(path, "nested too deeply, allowed: at most 16 levels", node)
        if isinstance(node, yaml.SequenceNode):
            return tuple(self._plain(child, path, ctx, depth + 1) for child in node.value)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                check_tag(key_node, path, ctx)
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                    raise ctx.error(path, f"key {shown(key_node)} is not a name, allowed: string keys", key_node)
                key = key_node.value
                if key in out:
                    raise ctx.error(path, f"duplicate key {clip(key)!r}, allowed: each key once", key_node)
                if depth == 0:
                    ctx.lines[f"{path}.{key}"] = key_node.start_mark.line + 1
                out[key] = self._plain(value_node, path, ctx, depth + 1)
            return FrozenDict(out)
        value = _construct(cast(yaml.ScalarNode, node), path, ctx)
        if isinstance(value, float) and not math.isfinite(value):
            raise ctx.error(path, f"{node.value} is not a finite number, allowed: finite numbers", node)
        return value


def setting(default: Any, spec: Any) -> Any:
    return field(default=default, metadata={"spec": spec})


def section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"section": cls})


def yaml_key(f: dataclasses.Field) -> str:
    return f.name[:-1] if f.name.endswith("_") else f.name


def read_section(cls: type, node: yaml.Node, path: str, ctx: Ctx) -> Any:
    """Read a mapping node into ``cls``; absent keys keep their defaults."""
    check_tag(node, path or "recipe", ctx)
    if is_null(node) and path:
        return cls()
    by_key = {yaml_key(f): f for f in fields(cls)}
    if not isinstance(node, yaml.MappingNode):
        where = f"the {path} section" if path else "a recipe"
        raise ctx.error(path, f"expected a mapping for {where} (keys: {', '.join(by_key)}), got {shown(node)}",
                        node)
    values: dict[str, Any] = {}
    given: dict[str, yaml.Node] = {}
    before = len(ctx.errors)
    for key_node, value_node in node.value:
        try:
            _read_key(key_node, value_node, by_key, values, given, path, ctx)
        except SchemaErrors:
            raise
        except SchemaError as exc:  # this setting is wrong: note it and read the others
            ctx.collect(exc)
    check = ctx.checks.get(cls)
    if check is not None and len(ctx.errors) == before:  # cross-field checks need every field right
        check(cls, values, given, path, ctx)
    return cls(**values)


def _read_key(key_node: yaml.Node, value_node: yaml.Node, by_key: dict, values: dict,
              given: dict, path: str, ctx: Ctx) -> None:
    """One `key: value` of a section into `values` (SchemaError when the key or value is wrong)."""
    check_tag(key_node, path, ctx)
    if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in (_NULL, _BOOL):
        raise ctx.error(path, f"key {shown(key_node)} is not a setting name, allowed: {', '.join(by_key)}",
                        key_node)
    key = key_node.value
    sub = f"{path}.{key}" if path else key
    named = sub if re.fullmatch(r"\w+", key) else path
    if key in given:
        raise ctx.error(named, f"duplicate key {clip(key)!r} (first at line {ctx.lines[sub]}), "
                               "allowed: each setting once", key_node)
    if key not in by_key:
        close = difflib.get_close_matches(key, list(by_key), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ctx.error(named, f"unknown key {clip(key)!r}{hint}, allowed: {', '.join(by_key)}", key_node)
    f = by_key[key]
    ctx.lines[sub] = key_node.start_mark.line + 1
    given[key] = value_node
    if "section" in f.metadata:
        values[f.name] = read_section(f.metadata["section"], value_node, sub, ctx)
    else:
        values[f.name] = f.metadata["spec"].read(value_node, sub, ctx)


def mistake_line(text: str, exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    """(line of the mistake, a hint) for a YAML syntax error. PyYAML reports where parsing
    failed, often the line after the mistake: an unclosed bracket or quote is reported where the
    text runs out (its opening line is the mistake), and a key written without its colon
    (`epochs 16`) only fails at the next `key: value`, which looks like its continuation."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    context = exc.context or ""
    if exc.context_mark is not None and exc.context_mark.line + 1 < line and (
            "flow" in context or "quoted" in context):
        return exc.context_mark.line + 1, " (a bracket or quote opened on this line is not closed)"
    lines = text.splitlines()
    if "mapping values are not allowed" in (exc.problem or "") and 1 < line <= len(lines):
        previous = line - 1
        while previous > 1 and not lines[previous - 1].strip():
            previous -= 1
        above, here = lines[previous - 1], lines[line - 1]
        indent = len(here) - len(here.lstrip())
        if (":" not in above and above.strip() and not above.lstrip().startswith(("#", "-"))
                and len(above) - len(above.lstrip()) == indent):
            return previous, f" (line {previous} has no ':' after its key)"
    if (exc.problem or "").startswith("expected <block end>"):
        return line, " (this line's indentation matches no key above it)"
    return line, ""


def compose(text: str, source: str) -> yaml.Node | None:
    """The node tree of YAML ``text`` (aliases become marker nodes; None for an empty document);
    SchemaError (``source:line: yaml: ...``) for text that is not YAML."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "invalid YAML"
        line, hint = mistake_line(text, exc)
        raise SchemaError(f"invalid YAML: {problem}{hint}, allowed: well-formed YAML (check indentation, "
                          "colons and quotes)", source=source, line=line, field="yaml") from None
    except yaml.YAMLError as exc:   # reader errors: characters YAML does not allow
        position = getattr(exc, "position", 0) or 0
        reason = getattr(exc, "reason", "invalid input")
        raise SchemaError(f"invalid YAML: {reason}, allowed: printable UTF-8 text", source=source,
                          line=text.count("\n", 0, position) + 1, field="yaml") from None
    except RecursionError:
        raise SchemaError("invalid YAML: nested too deeply, allowed: a recipe of a few levels",
                          source=source, line=1, field="yaml") from None


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    if is_dataclass(value):
        return {yaml_key(f): to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    return value


def dump_yaml(data: Any) -> str:
    """Plain data as readable YAML (block mappings, flow lists, no anchors)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    """Block mappings, flow lists, no anchors: a readable full recipe."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def as_nodes(data: Any, source: str) -> yaml.Node:
    """Plain data as the node tree composing its YAML would give (no text written or parsed);
    every node is marked at line 1 of `source`."""
    root = _Dumper(io.StringIO()).represent_data(data)
    mark = yaml.Mark(source, 0, 0, 0, None, 0)
    todo = [root]
    while todo:
        node = todo.pop()
        node.start_mark = node.end_mark = mark
        if isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in node.value for n in pair)
    return root


_Dumper.add_representer(dict, lambda d, data: d.represent_mapping(_MAP, data, flow_style=False))
_Dumper.add_representer(list, lambda d, data: d.represent_sequence(_SEQ, data, flow_style=True))
