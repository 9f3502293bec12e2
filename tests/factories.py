"""User model factories for tests (loaded through `model.import`, as a user's own model would be)."""

from __future__ import annotations

import torch
from torch import nn


class _Broken(nn.Module):
    def __init__(self, num_classes: int, width: int):
        super().__init__()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        raise RuntimeError("this model is broken on purpose")


def flaky_factory(num_classes: int, input_shape: tuple, broken_seed: int = 1) -> nn.Module:
    """A small MLP, except under dense seed `broken_seed`, where its forward raises."""
    width = int(torch.tensor(input_shape).prod())
    if torch.initial_seed() == broken_seed:
        return _Broken(num_classes, width)
    return nn.Sequential(nn.Flatten(), nn.Linear(width, 16), nn.ReLU(), nn.Linear(16, num_classes))
