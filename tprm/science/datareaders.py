"""Reading a built-in dataset's files into uint8 NCHW images and int64 labels, one routine per file
format (``DatasetEntry.reader``), through torchvision's own dataset classes (tprm.science.tvclasses,
which also downloads).
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tprm.science.datafiles import class_images, ensure_files, imagefolder_test_dir
from tprm.science.datasets_registry import IMAGEFOLDER_SPLITS, DatasetEntry
from tprm.science.dataspec import DataSpec, imagefolder_classes
from tprm.science.tvclasses import torchvision_classes

__all__ = ["read_tensors"]


def _gunzip_beside(folder: Path, files: list[str]) -> None:
    """MNIST-like sets: torchvision reads the decompressed idx files next to the .gz ones."""
    for name in files:
        plain = folder / name[: -len(".gz")]
        if name.endswith(".gz") and (not plain.is_file() or plain.stat().st_mtime < (folder / name).stat().st_mtime):
            tmp = plain.with_name(f".{plain.name}.{os.getpid()}.tmp")
            with gzip.open(folder / name, "rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(tmp, plain)


def _read_split(entry: DatasetEntry, root: Path, split: str) -> tuple[Tensor, Tensor]:
    """One split of a torchvision-format set as (uint8 N,C,H,W images, int64 labels)."""
    ds = torchvision_classes()[entry.torchvision or ""](str(root), download=False, **entry.splits[split])
    if entry.reader == "cifar":
        return (torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))),
                torch.tensor(ds.targets, dtype=torch.int64))
    if entry.reader in ("svhn", "stl10"):  # already N, C, H, W
        return (torch.from_numpy(np.ascontiguousarray(ds.data)),
                torch.from_numpy(np.asarray(ds.labels, dtype=np.int64)))
    return ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)  # mnist: N, H, W tensors


def _read_image_folder(spec: DataSpec, root: Path, split_dir: Path, classes: list[str]) -> tuple[Tensor, Tensor]:
    """Every image under ``split_dir/<class>/`` as RGB, resized to size x size, labelled by class index."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor, resize

    side = spec.input_shape[-1]
    images, labels = [], []
    for label, cls in enumerate(classes):
        for path in class_images(split_dir / cls):
            with Image.open(path) as img:
                images.append(pil_to_tensor(resize(img.convert("RGB"), [side, side])))
            labels.append(label)
    if not images:
        raise ValueError(f"imagefolder: no images in {split_dir}")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def read_tensors(spec: DataSpec, root: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """uint8 NCHW images and int64 labels for both splits (x_train, y_train, x_test, y_test)."""
    folder, files = ensure_files(spec, root)
    entry = spec.info
    out: list[Tensor] = []
    try:
        if entry.reader == "imagefolder":
            classes = imagefolder_classes(root)
            for split_dir in (root / IMAGEFOLDER_SPLITS[0], imagefolder_test_dir(root)):
                out += _read_image_folder(spec, root, split_dir, classes)
        else:
            if entry.reader == "mnist":
                _gunzip_beside(folder, files)
            for split in ("train", "test"):
                out += _read_split(entry, root, split)
    except Exception as exc:
        raise ValueError(f"{spec.name}: could not read the files in {folder} ({type(exc).__name__}: {exc})") from exc
    for x in (out[0], out[2]):
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != spec.input_shape:
            raise ValueError(f"{spec.name}: files in {folder} hold {x.dtype} images of shape {tuple(x.shape[1:])}, "
                             f"expected uint8 {spec.input_shape}")
    return out[0], out[1], out[2], out[3]
