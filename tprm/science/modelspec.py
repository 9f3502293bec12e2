"""The settings (``model.kwargs``) each built-in model accepts, with their types and ranges: torch-free,
so `tprm recipes validate` rejects a bad setting before any run. tests/test_models.py checks that
this table names exactly the keyword arguments (and defaults) of the builders in models.py.

The upper bounds are sanity limits of ours (the paper fixes none): far above any model the paper
trains, low enough that a typo cannot ask for an impossible allocation or overflow an int64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

MAX_WIDTH = 65536   # channels / units per layer
MAX_SMALL = 1024    # kernel, stride, padding, growth rate
MAX_DEPTH = 1000
MAX_SCALE = 64.0    # width multipliers

# One checker per setting: value -> None when fine, else "what is allowed" (for the error line).
Check = Callable[[Any], "str | None"]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(lo: int, hi: int) -> Check:
    return lambda v: None if _is_int(v) and lo <= v <= hi else f"an integer in [{lo}, {hi}]"


def _ints(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(x) and lo <= x <= hi for x in v)
        return None if ok else f"a non-empty list of integers in [{lo}, {hi}]"
    return check


def _scale(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 < v <= MAX_SCALE
    return None if ok else f"a number in (0, {MAX_SCALE:g}]"


def _fraction(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1
    return None if ok else "a number in (0, 1]"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _depth(step: int, offset: int, examples: str) -> Check:
    def check(v: Any) -> str | None:
        ok = _is_int(v) and step + offset <= v <= MAX_DEPTH and (v - offset) % step == 0
        return None if ok else f"an integer {step}n+{offset} with n >= 1, up to {MAX_DEPTH} ({examples})"
    return check


# name -> {setting: (default, check)}; defaults mirror the builders' signatures.
MODEL_SETTINGS: dict[str, dict[str, tuple[Any, Check]]] = {
    "mlp": {"widths": ((64, 64), _ints(1, MAX_WIDTH))},
    "conv1d": {"widths": ((32, 32, 32), _ints(1, MAX_WIDTH)), "kernel": (5, _int(1, MAX_SMALL)),
               "stride": (2, _int(1, MAX_SMALL)), "padding": (2, _int(0, MAX_SMALL)),
               "batchnorm": (False, _bool)},
    "preresnet": {"depth": (20, _depth(6, 2, "8, 14, 20, 32, 56, 110")), "width": (1.0, _scale)},
    "resnet18": {},
    "vgg11": {"width": (1.0, _scale)},
    "vgg16": {"width": (1.0, _scale)},
    "densenet": {"depth": (40, _depth(6, 4, "10, 16, 22, 40, 100")),
                 "growth_rate": (12, _int(1, MAX_SMALL)), "compression": (0.5, _fraction)},
}
# How many input dimensions (channels + spatial) each model takes.
INPUT_DIMS = {"conv1d": 2, "preresnet": 3, "resnet18": 3, "vgg11": 3, "vgg16": 3, "densenet": 3}


def check_model_kwargs(name: str, kwargs: dict, input_shape: tuple[int, ...]) -> tuple[str, str] | None:
    """The first problem of built-in model ``name`` with ``kwargs`` on inputs of ``input_shape``, as
    (setting, message) with setting "" for the model itself; None when the model can be built."""
    settings = MODEL_SETTINGS[name]
    for key, value in kwargs.items():
        if key not in settings:
            allowed = ", ".join(settings) or "(none)"
            return key, f"unknown setting {key!r} for model {name}, allowed: {allowed}"
        problem = settings[key][1](value)
        if problem is not None:
            return key, f"{_shown(value)} is not valid for model {name}, allowed: {problem}"
    dims = INPUT_DIMS.get(name)
    if dims is not None and len(input_shape) != dims:
        from tprm.science.datasets_registry import REGISTRY

        sets = ", ".join(n for n, e in REGISTRY.items() if len(e.input_shape) == dims)
        kind = f"1-D signals ({sets})" if dims == 2 else f"images ({sets})"
        return "", f"model {name} takes {kind}, the dataset's samples have shape {tuple(input_shape)}"
    if name == "conv1d":
        merged = {k: kwargs.get(k, d) for k, (d, _) in settings.items()}
        length = input_shape[1]
        for _ in merged["widths"]:
            length = (length + 2 * merged["padding"] - merged["kernel"]) // merged["stride"] + 1
            if length < 1:
                return "widths", (f"{len(merged['widths'])} layers of kernel {merged['kernel']}, stride "
                                  f"{merged['stride']}, padding {merged['padding']} do not fit an input "
                                  f"of length {input_shape[1]}, allowed: fewer layers or a smaller stride")
    return None


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    try:
        text = repr(list(value) if isinstance(value, tuple) else value)
    except ValueError:  # an int too long to print
        text = "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."
