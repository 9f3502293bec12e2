"""Test helpers: tiny datasets written in the real on-disk formats torchvision reads, and a user factory.

The files follow the official layouts (CIFAR python-pickle batches; SVHN .mat with X as HxWxCxN and
label 10 for the digit 0; gzipped idx-ubyte for the MNIST family; STL-10's column-major binaries;
class folders of PNGs), so tests exercise torchvision's real loaders on a few dozen images.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from torch import nn


def _images(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images (N, 3, 32, 32) and labels covering every class."""
    x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    y = (np.arange(n) + rng.integers(0, classes)) % classes
    rng.shuffle(y)
    return x, y.astype(np.int64)


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_fake_cifar10(root: Path | str, n_train: int = 64, n_test: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta); return the arrays."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = _images(rng, n_train, 10)
    x_test, y_test = _images(rng, n_test, 10)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _dump(folder / f"data_batch_{i}", {
            "batch_label": f"training batch {i} of 5",
            "labels": [int(v) for v in y_train[part]],
            "data": x_train[part].reshape(len(part), -1),
            "filenames": [f"img_{j}.png" for j in part],
        })
    _dump(folder / "test_batch", {
        "batch_label": "testing batch 1 of 1",
        "labels": [int(v) for v in y_test],
        "data": x_test.reshape(n_test, -1),
        "filenames": [f"test_{j}.png" for j in range(n_test)],
    })
    _dump(folder / "batches.meta", {
        "label_names": [f"class{i}" for i in range(10)],
        "num_cases_per_batch": -(-n_train // 5),
        "num_vis": 3072,
    })
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_fake_cifar100(root: Path | str, n_train: int = 64, n_test: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/cifar-100-python`` (train, test, meta); return the arrays (fine labels)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = _images(rng, n_train, 100)
    x_test, y_test = _images(rng, n_test, 100)
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        _dump(folder / name, {
            "filenames": [f"{name}_{j}.png" for j in range(len(y))],
            "batch_label": f"{name} batch",
            "fine_labels": [int(v) for v in y],
            "coarse_labels": [int(v) // 5 for v in y],
            "data": x.reshape(len(y), -1),
        })
    _dump(folder / "meta", {
        "fine_label_names": [f"fine{i}" for i in range(100)],
        "coarse_label_names": [f"coarse{i}" for i in range(20)],
    })
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_fake_svhn(root: Path | str, n_train: int = 64, n_test: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/train_32x32.mat`` and ``root/test_32x32.mat``; return NCHW arrays, labels 0..9."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = _images(rng, n, 10)
        mat_labels = np.where(y == 0, 10, y).astype(np.uint8).reshape(-1, 1)  # SVHN: digit 0 is label 10
        savemat(str(Path(root) / f"{split}_32x32.mat"), {"X": x.transpose(2, 3, 1, 0), "y": mat_labels})
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return out


def _idx_gz(path: Path, array: np.ndarray) -> None:
    """An idx-ubyte file (big-endian magic 0x08 = uint8, its dims, then the bytes), gzipped."""
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake_mnist(root: Path | str, folder: str = "MNIST", n_train: int = 40, n_test: int = 20,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (the MNIST family's
    official layout; folder MNIST, FashionMNIST or KMNIST); return NCHW arrays and labels."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        _idx_gz(raw / f"{prefix}-images-idx3-ubyte.gz", x)
        _idx_gz(raw / f"{prefix}-labels-idx1-ubyte.gz", y)
        out[f"x_{split}"], out[f"y_{split}"] = x[:, None], y.astype(np.int64)
    return out


def write_fake_stl10(root: Path | str, n_train: int = 12, n_test: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/stl10_binary/{train,test}_{X,y}.bin``: uint8 images stored column-major (N, C, W, H)
    and labels 1..10, as the official binary files; return NCHW arrays and labels 0..9."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.int64)
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes())
        (folder / f"{split}_y.bin").write_bytes((y + 1).astype(np.uint8).tobytes())
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return out


def write_fake_imagefolder(root: Path | str, classes: tuple[str, ...] = ("ant", "bee", "cat"),
                           per_class: int = 2, test_dir: str = "test") -> dict[str, tuple[int, int, int]]:
    """Write ``root/{train,<test_dir>}/<class>/img<i>.png``: one solid colour per class (so any resize
    keeps it), 20x12 pixels; return {class: colour}."""
    from PIL import Image

    colours = {c: (40 * i + 20, 200 - 50 * i, 30 + 70 * i) for i, c in enumerate(classes)}
    for split in ("train", test_dir):
        for c, colour in colours.items():
            folder = Path(root) / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (20, 12), colour).save(folder / f"img{i}.png")
    return colours


class TinyUserNet(nn.Module):
    """A user's own model, as a factory target for ``load_factory``."""

    def __init__(self, num_classes: int, input_shape: tuple, hidden: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), hidden), nn.Tanh())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def tiny_factory(num_classes: int, input_shape: tuple, hidden: int = 8) -> nn.Module:
    """Factory with the ``factory(num_classes=, input_shape=, **kwargs)`` signature."""
    return TinyUserNet(num_classes, input_shape, hidden)


def learnable_images(n_train: int, n_test: int):
    """32x32 RGB images whose class is a bright 8x8 patch at one of 10 places, on uint8 noise, as a
    TensorData (a task a few epochs learn: precision comparisons need errors far from chance)."""
    import torch

    from tprm.science.data import TensorData

    g = torch.Generator().manual_seed(0)
    n = n_train + n_test
    x = torch.randint(0, 64, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 10
    for c in range(10):
        row, col = divmod(c, 4)
        x[y == c, :, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8] += 180
    return TensorData("patches", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 10,
                      mean=(0.3, 0.3, 0.3), std=(0.3, 0.3, 0.3))
