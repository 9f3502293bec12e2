"""The user's own data: ``dataset.import: "package.module:factory"``.

The factory is called with no arguments and returns the train and test sets plus their facts,
either as a mapping ``{"train", "test", "num_classes", "input_shape"}`` or as the tuple
``(train, test, num_classes, input_shape)``. Each set is a pair of tensors/arrays ``(x, y)`` or a
torch ``Dataset`` of ``(x, y)`` samples (read once, stacked into tensors). Samples are uint8
images (scaled by 1/255 as ToTensor does) or floats, shaped ``input_shape`` = (C, L) or (C, H, W).

Its identity in job keys (``imported_identity``) is a sha256 of the tensors' dtypes, shapes and
bytes, or ``dataset.identity`` when the recipe gives one (docs/recipes.md has the trade-off).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tprm.science.dataspec import DataSpec

__all__ = ["ImportedData", "imported_data", "imported_identity"]

ImportedData = tuple[Tensor, Tensor, Tensor, Tensor, int, tuple[int, ...]]
_KEYS = ("train", "test", "num_classes", "input_shape")


def imported_data(spec: DataSpec) -> ImportedData:
    """(x_train, y_train, x_test, y_test, num_classes, input_shape) from the spec's factory;
    ValueError (one line, naming the factory) for anything that does not fit the contract."""
    from tprm.science.models import load_factory

    where = f"dataset.import {spec.import_}"
    factory = load_factory(spec.import_ or "", what="dataset")
    try:
        result = factory()
    except Exception as exc:  # noqa: BLE001 -- the user's code: say what it raised, in one line
        raise ValueError(f"{where}: the factory raised {type(exc).__name__}: {exc}") from exc
    if isinstance(result, Mapping):
        absent = [k for k in _KEYS if k not in result]
        if absent:
            raise ValueError(f"{where}: the returned mapping has no {', '.join(absent)}; expected keys {_KEYS}")
        parts = [result[k] for k in _KEYS]
    elif isinstance(result, (tuple, list)) and len(result) == 4:
        parts = list(result)
    else:
        raise ValueError(f"{where}: returned {type(result).__name__}; expected (train, test, num_classes, "
                         f"input_shape) or a mapping with those keys")
    num_classes, shape = _facts(where, parts[2], parts[3])
    x_train, y_train = _as_tensors(where, "train", parts[0], num_classes, shape)
    x_test, y_test = _as_tensors(where, "test", parts[1], num_classes, shape)
    return x_train, y_train, x_test, y_test, num_classes, shape


def _facts(where: str, num_classes: Any, input_shape: Any) -> tuple[int, tuple[int, ...]]:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"{where}: num_classes is {num_classes!r}; expected an integer >= 2")
    try:
        shape = tuple(int(n) for n in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"{where}: input_shape is {input_shape!r}; expected (channels, length) or "
                         f"(channels, height, width) of positive integers")
    return int(num_classes), shape


def _as_tensors(where: str, split: str, data: Any, num_classes: int,
                shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """A split as (x, y) tensors, checked against the factory's own num_classes and input_shape."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = torch.as_tensor(np.asarray(data[0]) if not isinstance(data[0], Tensor) else data[0]), \
            torch.as_tensor(np.asarray(data[1]) if not isinstance(data[1], Tensor) else data[1])
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):  # a torch Dataset of (x, y)
        samples = [data[i] for i in range(len(data))]
        if not samples:
            raise ValueError(f"{where}: the {split} set is empty")
        x = torch.stack([torch.as_tensor(s[0]) for s in samples])
        y = torch.as_tensor([int(s[1]) for s in samples])
    else:
        raise ValueError(f"{where}: the {split} set is {type(data).__name__}; expected (x, y) tensors or a "
                         f"torch Dataset of (x, y) samples")
    x, y = x.detach().cpu().contiguous(), y.detach().cpu().reshape(-1)
    if tuple(x.shape[1:]) != shape or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{where}: the {split} set holds x of shape {tuple(x.shape)} and {len(y)} labels; "
                         f"expected (N, {', '.join(map(str, shape))}) and N labels, N >= 1")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"{where}: the {split} images are {x.dtype}; expected uint8 or a float dtype")
    if y.is_floating_point() or y.dtype == torch.bool or int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"{where}: the {split} labels must be integers in [0, {num_classes - 1}], "
                         f"got {y.dtype} in [{y.min().item()}, {y.max().item()}]")
    return x, y.long()


def imported_identity(spec: DataSpec) -> dict[str, Any]:
    """The imported data's identity: the factory, its facts, and the content sha256 of its tensors
    (or the recipe's ``dataset.identity`` string instead of the hash)."""
    *tensors, num_classes, shape = imported_data(spec)
    identity: dict[str, Any] = {"import": spec.import_, "num_classes": num_classes, "input_shape": list(shape)}
    if spec.identity is not None:
        identity["identity"] = spec.identity
        return identity
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(f"{t.dtype}{tuple(t.shape)}\n".encode())
        digest.update(t.numpy().tobytes())
    identity["sha256"] = digest.hexdigest()
    return identity
