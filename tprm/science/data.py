"""Datasets as whole tensors on one device, with batched on-device normalisation and augmentation.

Why tensors and not DataLoaders: the models in this tool are small and many (retrain seeds, densities,
temperatures), so per-sample Python transforms and worker processes would dominate the run time.
Images stay uint8 (NCHW) on the device; a batch is gathered by index, randomly cropped/flipped with
per-sample offsets drawn from the caller's ``torch.Generator`` (so every random choice belongs to one
seeded stream), then converted to float and normalised exactly as ``ToTensor`` + ``Normalize`` do.

Datasets: ``mnist1d`` (generated offline by the ``mnist1d`` package and cached as ``.npz``; the
embedded default) and the file-based sets of tprm/science/datasets_registry.py, whose files are
located and checked by tprm.science.datafiles and read by tprm.science.datareaders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tprm.science.datafiles import (  # the torch-free part, re-exported here
    dataset_status,
    ensure_files,
    fetch_dataset,
    file_digests,
    files_note,
    torchvision_root,
)
from tprm.science.datasets_registry import REGISTRY
from tprm.science.dataspec import DATASET_NAMES, DataMissingError, DataSpec

DISPLAY_NAMES = {name: entry.title for name, entry in REGISTRY.items()}

__all__ = [
    "DATASET_NAMES",
    "DISPLAY_NAMES",
    "DataMissingError",
    "DataSpec",
    "TensorData",
    "data_identity",
    "dataset_status",
    "fetch_dataset",
    "load_data",
    "torchvision_root",
]


class TensorData:
    """A whole dataset as tensors on one device: raw samples plus how to normalise/augment them.

    ``x_train``/``x_test`` hold raw samples (uint8 images scaled by 1/255 on use, or float signals);
    every method returns float batches in ``dtype``. Augmentation (zero-padded random crop, horizontal
    flip) is applied only by ``train_batch`` and only with a generator; the padding is added to the raw
    pixels before normalisation, as torchvision's ``RandomCrop(padding=p)`` before ``Normalize`` does.
    """

    def __init__(
        self,
        name: str,
        x_train: Tensor,
        y_train: Tensor,
        x_test: Tensor,
        y_test: Tensor,
        num_classes: int,
        *,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        crop_padding: int = 0,
        flip: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not dtype.is_floating_point:
            raise ValueError(f"TensorData dtype: must be a floating dtype, got {dtype}")
        if x_train.dim() not in (3, 4) or x_train.shape[1:] != x_test.shape[1:]:
            raise ValueError(
                "TensorData: x_train/x_test must be (N, C, L) or (N, C, H, W) with equal sample "
                f"shapes, got {tuple(x_train.shape)} and {tuple(x_test.shape)}"
            )
        if len(x_train) != len(y_train) or len(x_test) != len(y_test):
            raise ValueError("TensorData: each x and y must have the same number of samples")
        self.name = name
        self.files_note: str | None = None  # set by load_data: "<title>: not the official files ..."
        self.num_classes = int(num_classes)
        self.input_shape: tuple[int, ...] = tuple(x_train.shape[1:])
        self.dtype = dtype
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self.x_train, self.y_train = x_train, y_train.long()
        self.x_test, self.y_test = x_test.to(x_train.device), y_test.long().to(x_train.device)
        channels = self.input_shape[0]
        view = (channels,) + (1,) * (len(self.input_shape) - 1)
        self._mean = self._std = None
        if self.mean is not None or self.std is not None:
            mean_t = torch.tensor(self.mean or (0.0,) * channels, dtype=dtype)
            std_t = torch.tensor(self.std or (1.0,) * channels, dtype=dtype)
            if len(mean_t) != channels or len(std_t) != channels:
                raise ValueError(f"TensorData: mean/std need {channels} values, got {self.mean}, {self.std}")
            if not (bool((mean_t == 0).all()) and bool((std_t == 1).all())):
                self._mean = mean_t.view(view).to(self.device)
                self._std = std_t.view(view).to(self.device)

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    def to(self, device: str | torch.device) -> TensorData:
        """A copy with every tensor on ``device`` (same settings)."""
        return TensorData(
            self.name,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.num_classes,
            mean=self.mean,
            std=self.std,
            crop_padding=self.crop_padding,
            flip=self.flip,
            dtype=self.dtype,
        )

    def normalise(self, x: Tensor) -> Tensor:
        """Raw samples -> float in ``dtype``: uint8 / 255 (as ToTensor), then (x - mean) / std."""
        if x.dtype == torch.uint8:
            out = x.to(self.dtype).div(255)
        else:
            out = x.to(self.dtype)
        if self._mean is not None:
            out = out.sub(self._mean).div(self._std)
        return out

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Per-sample zero-padded random crop and horizontal flip of a raw batch, as one gather.

        Draws, in this order and on the generator's own device: the crop offsets (one per spatial
        dim per sample) when ``crop_padding > 0``, then the flip coins when ``flip``.
        """
        p, batch = self.crop_padding, len(x)
        if (p == 0 and not self.flip) or batch == 0:
            return x
        spatial = tuple(x.shape[2:])
        gdev = generator.device
        if p > 0:
            offsets = torch.randint(0, 2 * p + 1, (len(spatial), batch), generator=generator, device=gdev)
            offsets = offsets.to(x.device)
        else:
            offsets = torch.zeros((len(spatial), batch), dtype=torch.long, device=x.device)
        ranges = [torch.arange(n, device=x.device) for n in spatial]
        if self.flip:
            flips = torch.randint(0, 2, (batch,), generator=generator, device=gdev).to(x.device).bool()
            ranges[-1] = torch.where(flips[:, None], ranges[-1].flip(0), ranges[-1])  # (B, W)
        # Index of output position j along spatial dim d in the padded sample: offset_d + j (or the
        # mirrored j along the last dim); one advanced-indexing gather does crop and flip together.
        index: list[Tensor] = [
            torch.arange(batch, device=x.device).view(-1, *[1] * (x.dim() - 1)),
            torch.arange(x.shape[1], device=x.device).view(1, -1, *[1] * len(spatial)),
        ]
        for d, n in enumerate(spatial):
            shape = [batch, 1] + [n if i == d else 1 for i in range(len(spatial))]
            index.append((offsets[d][:, None] + ranges[d]).view(shape))
        return _zero_pad(x, p)[tuple(index)] if p > 0 else x[tuple(index)]

    def train_batch(self, idx: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Normalised, augmented training batch for indices ``idx``.

        All augmentation randomness comes from ``generator`` (which may live on the CPU while the data
        is on an accelerator); with ``generator=None`` the batch is not augmented, so no hidden global
        random stream is ever used.
        """
        idx = idx.to(self.device)
        x = self.x_train[idx]
        if generator is not None:
            x = self.augment(x, generator)
        return self.normalise(x), self.y_train[idx]

    def _split(self, split: str) -> tuple[Tensor, Tensor]:
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        raise ValueError(f"split: must be 'train' or 'test', got {split!r}")

    def plain(self, split: str, start: int = 0, stop: int | None = None) -> tuple[Tensor, Tensor]:
        """Normalised, un-augmented samples ``start:stop`` of ``split`` (for evaluation, BN stats, CKA)."""
        x, y = self._split(split)
        return self.normalise(x[start:stop]), y[start:stop]

    def plain_batches(
        self, split: str, batch_size: int, limit: int | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Normalised, un-augmented batches of ``split`` in order, over its first ``limit`` samples."""
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        total = len(self._split(split)[1])
        n = total if limit is None else min(int(limit), total)
        for start in range(0, n, batch_size):
            yield self.plain(split, start, min(start + batch_size, n))

    def __repr__(self) -> str:
        return (
            f"TensorData({self.name!r}, train={self.n_train}, test={self.n_test}, "
            f"input_shape={self.input_shape}, classes={self.num_classes}, device={self.device}, "
            f"dtype={self.dtype}, crop_padding={self.crop_padding}, flip={self.flip})"
        )


def _zero_pad(x: Tensor, p: int) -> Tensor:
    """Zero padding of every spatial dim, for any dtype (uint8 images included)."""
    shape = list(x.shape[:2]) + [n + 2 * p for n in x.shape[2:]]
    out = torch.zeros(shape, dtype=x.dtype, device=x.device)
    out[(slice(None), slice(None)) + tuple(slice(p, p + n) for n in x.shape[2:])] = x
    return out


# ---------------------------------------------------------------------------------------------------
# loading


def load_data(
    spec: DataSpec,
    cache_dir: Path | str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TensorData:
    """Load ``spec`` as a :class:`TensorData` on ``device``.

    ``cache_dir`` holds the generated mnist1d arrays; it is also the torchvision root when
    ``spec.root`` is None. ``files_note`` of the result says when the files are not the official ones.
    """
    spec = spec.resolved()
    cache_dir = Path(cache_dir)
    note = None
    num_classes = None
    if spec.import_ is not None:
        from tprm.science.dataimport import imported_data

        x_train, y_train, x_test, y_test, num_classes, _ = imported_data(spec)
    elif spec.name == "mnist1d":
        arrays = _mnist1d_arrays(spec, cache_dir)
        x_train = torch.from_numpy(arrays["x"]).unsqueeze(1)
        x_test = torch.from_numpy(arrays["x_test"]).unsqueeze(1)
        y_train, y_test = torch.from_numpy(arrays["y"]), torch.from_numpy(arrays["y_test"])
    else:
        from tprm.science.datareaders import read_tensors

        root = _root(spec, cache_dir)
        x_train, y_train, x_test, y_test = read_tensors(spec, root)
        note = files_note(spec, root)
    x_train, y_train = _subset(x_train, y_train, spec.train_subset, "train_subset", spec.name)
    x_test, y_test = _subset(x_test, y_test, spec.test_subset, "test_subset", spec.name)
    if x_train.is_floating_point():
        x_train, x_test = x_train.to(dtype), x_test.to(dtype)
    data = TensorData(
        spec.info.name if spec.import_ is not None else spec.name,
        x_train.to(device),
        y_train.to(device),
        x_test.to(device),
        y_test.to(device),
        num_classes or spec.num_classes,
        mean=spec.mean,
        std=spec.std,
        crop_padding=spec.crop_padding,
        flip=spec.flip,
        dtype=dtype,
    )
    data.files_note = note
    return data


def _subset(x: Tensor, y: Tensor, n: int | None, field: str, name: str) -> tuple[Tensor, Tensor]:
    if n is None:
        return x, y
    if n > len(y):
        raise ValueError(f"DataSpec.{field}: {n} exceeds the {len(y)} samples of {name}")
    return x[:n].clone(), y[:n].clone()


def _root(spec: DataSpec, cache_dir: Path | None) -> Path:
    if spec.root is not None:
        return torchvision_root(spec.name, Path(spec.root))
    if cache_dir is None:
        raise ValueError(f"DataSpec.root: {spec.name} needs a data directory (root), got null")
    return Path(cache_dir)


def data_identity(spec: DataSpec, cache_dir: Path | str | None = None) -> dict:
    """JSON-able identity of the data a job sees: its source plus subset/normalisation/augmentation.

    mnist1d: the generator settings and package version. dataset.import: the factory, its facts and
    a content hash (tprm/science/dataimport.py). File-based sets: the sha256 of every file
    read (computed once per file and cached by size and mtime next to the data). ``cache_dir`` is the
    root fallback when ``spec.root`` is None, as in :func:`load_data`.
    """
    spec = spec.resolved()
    identity: dict[str, Any] = {"name": spec.name}
    if spec.import_ is not None:
        from tprm.science.dataimport import imported_identity

        identity = {"name": "import", **imported_identity(spec)}
    elif spec.name == "mnist1d":
        identity["generator"] = _mnist1d_settings(spec)
    else:
        folder, files = ensure_files(spec, _root(spec, Path(cache_dir) if cache_dir else None))
        identity["files"] = {name: digest["sha256"] for name, digest in file_digests(folder, files).items()}
    identity.update(
        train_subset=spec.train_subset,
        test_subset=spec.test_subset,
        normalisation={"mean": _listed(spec.mean), "std": _listed(spec.std)},
        augmentation={"crop_padding": spec.crop_padding, "flip": spec.flip},
    )
    return identity


def _listed(values: tuple[float, ...] | None) -> list[float] | None:
    return None if values is None else list(values)


# --- mnist1d ---------------------------------------------------------------------------------------


def _mnist1d_settings(spec: DataSpec) -> dict[str, Any]:
    """mnist1d's generator arguments with our seed/size (the download url is not a setting)."""
    from importlib.metadata import version

    from mnist1d.data import get_dataset_args

    settings = get_dataset_args(as_dict=True)
    settings.pop("url", None)
    settings.update(seed=spec.seed, num_samples=spec.num_samples)
    settings["mnist1d_version"] = version("mnist1d")
    return settings


@contextlib.contextmanager
def _preserved_global_rngs() -> Iterator[None]:
    """mnist1d seeds Python's and NumPy's global RNGs; restore them so callers' streams are untouched."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _mnist1d_arrays(spec: DataSpec, cache_dir: Path) -> dict[str, np.ndarray]:
    """Generated mnist1d arrays, from ``cache_dir/mnist1d-<hash>.npz`` when present (never downloads)."""
    settings = _mnist1d_settings(spec)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"mnist1d-{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache (e.g. truncated by a crash): regenerate below
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for name, value in settings.items():
        if name != "mnist1d_version":
            setattr(args, name, value)
    with _preserved_global_rngs():
        generated = make_dataset(args)
    arrays = {
        "x": np.ascontiguousarray(generated["x"], dtype=np.float64),
        "y": np.ascontiguousarray(generated["y"], dtype=np.int64),
        "x_test": np.ascontiguousarray(generated["x_test"], dtype=np.float64),
        "y_test": np.ascontiguousarray(generated["y_test"], dtype=np.int64),
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return arrays
