"""A user's own model factories for the model.import tests (tests/test_model_import.py): a small
net that ends in nn.Linear, one that ends in a convolution (pool -> flatten, no nn.Linear), and one
whose factory raises for a bad setting, and one that passes the validation probe (an eval-mode
forward) but fails as soon as it trains (a job that fails at run time). Each is called as factory(num_classes=, input_shape=, ...)."""

from __future__ import annotations

import math

from torch import nn


def tiny_net(num_classes: int, input_shape: tuple, width: int = 8) -> nn.Module:
    """Flatten -> Linear -> ReLU -> Linear (the classifier, kept dense by default)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(),
                         nn.Linear(width, num_classes))


def conv_head(num_classes: int, input_shape: tuple, width: int = 4) -> nn.Module:
    """Conv -> ReLU -> 1x1 conv to the classes -> global pool -> flatten: its output layer is a conv."""
    return nn.Sequential(nn.Conv1d(input_shape[0], width, 3, padding=1), nn.ReLU(),
                         nn.Conv1d(width, num_classes, 1), nn.AdaptiveAvgPool1d(1), nn.Flatten())


def picky_net(num_classes: int, input_shape: tuple, width: int = 8) -> nn.Module:
    """tiny_net that refuses an odd width (a factory that raises on a bad setting)."""
    if width % 2:
        raise ValueError(f"width must be even, got {width}")
    return tiny_net(num_classes, input_shape, width)


class _NoTraining(nn.Sequential):
    def forward(self, x):
        if self.training:
            raise RuntimeError("train_fails cannot train (a test model)")
        return super().forward(x)


def train_fails(num_classes: int, input_shape: tuple, width: int = 8) -> nn.Module:
    """tiny_net's layers, but its forward raises in training mode (validation builds it fine)."""
    return _NoTraining(*tiny_net(num_classes, input_shape, width))
