"""A user's own data factories (`dataset.import`), copied next to a recipe by tests/test_data_import.py.

``SHIFT`` is edited by the tests to change the data's content without changing its shape.
"""

import torch
from torch.utils.data import TensorDataset

SHIFT = 0


def _signals(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1-channel signals of length 20 whose class (0..2) is where a bump sits: learnable in a step."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = 0.1 * torch.randn(n, 1, 20, generator=g) + SHIFT
    for c in range(3):
        x[y == c, 0, 6 * c:6 * c + 4] += 1.0
    return x, y


def signals():
    """Tensors, as a mapping."""
    return {"train": _signals(60, 0), "test": _signals(30, 1), "num_classes": 3, "input_shape": (1, 20)}


def image_sets():
    """torch Datasets of uint8 images, as a tuple."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (24, 3, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.arange(24) % 4
    return TensorDataset(x[:16], y[:16]), TensorDataset(x[16:], y[16:]), 4, [3, 8, 8]


def wrong_shape():
    return {"train": _signals(10, 0), "test": _signals(5, 1), "num_classes": 3, "input_shape": (1, 21)}


def bad_labels():
    x, y = _signals(10, 0)
    return (x, y + 5), _signals(5, 1), 3, (1, 20)


def broken():
    raise RuntimeError("the data server is down")
