"""The data settings of a recipe (DataSpec) and per-dataset facts: torch-free, so planning a
recipe and the read-only commands never import torch (tprm.science.data re-exports them)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tprm.science.datasets_registry import DATASET_NAMES, IMAGEFOLDER_SPLITS, REGISTRY, DatasetEntry

__all__ = ["DATASET_NAMES", "DataMissingError", "DataSpec", "imagefolder_classes"]


class DataMissingError(Exception):
    """Dataset files are not on disk (or could not be fetched); the message says where they go."""


def imagefolder_classes(root: str | Path) -> list[str]:
    """The class folder names of an imagefolder set (those of ``root/train``, sorted): the label of a
    class is its index here, in both splits."""
    train = Path(root) / IMAGEFOLDER_SPLITS[0]
    if not train.is_dir():
        raise DataMissingError(f"imagefolder: no {train} folder; dataset.root must hold train/ and test/ "
                               f"(or val/) with one folder of images per class")
    classes = sorted(e.name for e in os.scandir(train) if e.is_dir() and not e.name.startswith("."))
    if len(classes) < 2:
        raise DataMissingError(f"imagefolder: {train} has {len(classes)} class folder(s), expected at least 2")
    return classes


def _float_tuple(value: Any, field: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = (value,)
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"DataSpec.{field}: expected a list of numbers, got {value!r}") from None


@dataclass(frozen=True)
class DataSpec:
    """Which data, which subset, and how it is normalised/augmented. ``None`` means dataset default."""

    name: str = "mnist1d"  # one of DATASET_NAMES (tprm/science/datasets_registry.py)
    root: str | None = None  # torchvision root (engine passes <store>/data when None)
    download: bool = False
    seed: int = 42  # mnist1d generator seed (data identity, not a training seed)
    num_samples: int = 5000  # mnist1d generator size (80 % train / 20 % test)
    train_subset: int | None = None  # keep the first N train samples
    test_subset: int | None = None
    crop_padding: int | None = None  # None -> dataset default (cifar 4, svhn 4, mnist1d 0)
    flip: bool | None = None  # None -> dataset default (cifar True, svhn False, mnist1d False)
    mean: tuple[float, ...] | None = None  # None -> dataset default
    std: tuple[float, ...] | None = None
    size: int | None = None  # imagefolder: images resized to size x size (None -> 32)
    import_: str | None = None  # "package.module:factory" returning the user's own data (dataimport.py)
    identity: str | None = None  # imported data: a user-given identity instead of the content hash
    classes: int | None = None  # imported data: num_classes and input_shape as its factory said
    shape: tuple[int, ...] | None = None  # (the planner fills both in from the data identity)

    def __post_init__(self) -> None:
        # Lists from YAML become tuples so specs compare and hash by value.
        object.__setattr__(self, "mean", _float_tuple(self.mean, "mean"))
        object.__setattr__(self, "std", _float_tuple(self.std, "std"))
        if self.root is not None:
            object.__setattr__(self, "root", str(self.root))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))

    @property
    def info(self) -> DatasetEntry:
        """Fixed facts and defaults of the named dataset (raises ValueError for an unknown name)."""
        if self.import_ is not None:  # the user's data: no normalisation or augmentation by default
            return DatasetEntry("import", f"import {self.import_}", self.classes or 0, self.shape or (),
                                (), (), 0, False, "import")
        if self.name not in REGISTRY:
            raise ValueError(
                f"DataSpec.name: unknown dataset {self.name!r}; allowed: {', '.join(DATASET_NAMES)}"
            )
        return REGISTRY[self.name]

    @property
    def num_classes(self) -> int:
        """The number of classes (imagefolder: its class folders, read from ``root``)."""
        if self.import_ is not None:
            return int(self._imported("classes"))
        if self.info.num_classes == 0:
            if self.root is None:
                raise DataMissingError(f"{self.name}: needs dataset.root (a folder with train/ and test/)")
            return len(imagefolder_classes(self.root))
        return self.info.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample without the batch dim, known without loading the data."""
        if self.import_ is not None:
            return tuple(self._imported("shape"))
        info = self.info
        if info.default_size is not None:
            side = self.size if self.size is not None else info.default_size
            return (info.input_shape[0], side, side)
        return info.input_shape

    def _imported(self, field: str) -> Any:
        value = getattr(self, field)
        if value is None:
            raise ValueError(f"DataSpec.{field}: not known for dataset.import {self.import_} until its "
                             f"factory has run (the planner records it in the data identity)")
        return value

    def resolved(self) -> DataSpec:
        """A validated copy with the dataset defaults filled in (what a content hash should see)."""
        info = self.info
        spec = dataclasses.replace(
            self,
            crop_padding=info.crop_padding if self.crop_padding is None else self.crop_padding,
            flip=info.flip if self.flip is None else self.flip,
            mean=info.mean if self.mean is None and info.mean else self.mean,
            std=info.std if self.std is None and info.std else self.std,
        )
        spec._validate()
        return spec

    def _validate(self) -> None:
        if self.import_ is not None and self.shape is None:
            return  # the factory's data is checked when it is loaded (TensorData)
        channels = self.info.input_shape[0]
        if self.size is not None and (self.info.default_size is None or isinstance(self.size, bool)
                                      or not isinstance(self.size, int) or self.size < 8):
            raise ValueError(f"DataSpec.size: only imagefolder images are resized, to an integer >= 8; "
                             f"got {self.size!r} for {self.name}")
        for field in ("mean", "std"):
            value = getattr(self, field)
            if value is not None and len(value) != channels:
                raise ValueError(
                    f"DataSpec.{field}: {self.name} has {channels} channel(s), got {len(value)} "
                    f"values {list(value)}"
                )
        if any(not (s > 0) for s in self.std or ()):
            raise ValueError(f"DataSpec.std: every value must be > 0, got {list(self.std)}")
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ValueError(f"DataSpec.crop_padding: must be an integer >= 0, got {self.crop_padding!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"DataSpec.flip: must be true or false, got {self.flip!r}")
        for field in ("train_subset", "test_subset"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"DataSpec.{field}: must be null or an integer >= 1, got {value!r}")
        if self.name == "mnist1d":
            if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) or self.num_samples < 50:
                raise ValueError(
                    f"DataSpec.num_samples: must be an integer >= 50 (10 classes, 80/20 split), "
                    f"got {self.num_samples!r}"
                )
            if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
                raise ValueError(f"DataSpec.seed: must be an integer >= 0, got {self.seed!r}")
