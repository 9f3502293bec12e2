"""Model registry: the architectures the paper uses (CIFAR sized) plus small ones for MNIST-1D.

Every registry model ends in one ``nn.Linear`` classifier (``classifier_parameter`` finds it: the
classifier is not pruned). A user model comes from ``load_factory("pkg.mod:factory")``. Weight init
draws from the global torch RNG; wrap construction in ``seeded(seed)`` to make it its own stream.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from tprm.science.prune import classifier_weight

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "classifier_parameter",
    "load_factory",
    "seeded",
]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with the global torch RNG (CPU and CUDA) forked and seeded with ``seed``.

    Building a model inside gives the same weights for the same seed, and the caller's RNG state is
    restored afterwards, so init randomness never shifts other streams.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _check_positive_ints(values: Sequence[int], field: str, model: str) -> list[int]:
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"model {model}: {field} must be a list of integers, got {values!r}") from None
    if not out or any(v < 1 for v in out) or any(int(v) != v for v in values):
        raise ValueError(f"model {model}: {field} must be a non-empty list of integers >= 1, got {values!r}")
    return out


def _check_width(width: float, model: str) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"model {model}: width must be a number > 0, got {width!r}")
    return float(width)


# --- mlp ---------------------------------------------------------------------------------------------


def mlp(num_classes: int, input_shape: tuple, widths: Sequence[int] = (64, 64)) -> nn.Module:
    """Fully connected ReLU net on the flattened input; ``widths`` are the hidden layer sizes."""
    widths = _check_positive_ints(widths, "widths", "mlp")
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for w in widths:
        layers += [nn.Linear(fan_in, w), nn.ReLU()]
        fan_in = w
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


# --- conv1d --------------------------------------------------------------------------------------------


class Conv1dNet(nn.Module):
    """Small 1-D CNN for MNIST-1D: strided conv (+ optional BatchNorm) + ReLU blocks, then a linear head.

    BatchNorm is off by default so the default model has no running statistics, which lets many
    copies be trained as one fused (vmapped) computation.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple,
        widths: Sequence[int] = (32, 32, 32),
        kernel: int = 5,
        stride: int = 2,
        padding: int = 2,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        widths = _check_positive_ints(widths, "widths", "conv1d")
        if len(input_shape) != 2:
            raise ValueError(f"model conv1d: input_shape must be (channels, length), got {tuple(input_shape)}")
        for field, value, low in (("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"model conv1d: {field} must be an integer >= {low}, got {value!r}")
        channels, length = int(input_shape[0]), int(input_shape[1])
        layers: list[nn.Module] = []
        for w in widths:
            layers.append(nn.Conv1d(channels, w, kernel, stride=stride, padding=padding, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(w))
            layers.append(nn.ReLU())
            channels = w
            length = (length + 2 * padding - kernel) // stride + 1
            if length < 1:
                raise ValueError(
                    f"model conv1d: input length {input_shape[1]} is too short for {len(widths)} layers "
                    f"of kernel {kernel}, stride {stride}, padding {padding}"
                )
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels * length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


# --- preresnet ---------------------------------------------------------------------------------------


class PreActBlock(nn.Module):
    """Pre-activation basic block (BN-ReLU-conv x2); 1x1 conv shortcut on the raw input when shapes change."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)  # BN's output is not needed by its backward: safe in place
        self.downsample = (
            nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            if stride != 1 or in_planes != planes
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out.add_(x if self.downsample is None else self.downsample(x))  # conv output: not saved


class PreResNet(nn.Module):
    """Pre-activation ResNet for CIFAR (He et al. 2016): depth 6n+2, three stages of n basic blocks
    with 16/32/64 channels times ``width``, final BN-ReLU, global average pooling, linear classifier."""

    def __init__(self, num_classes: int, input_shape: tuple, depth: int = 20, width: float = 1.0) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"model preresnet: depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 56, 110), got {depth!r}")
        width = _check_width(width, "preresnet")
        n = (depth - 2) // 6
        planes = [_scaled(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(input_shape[0], planes[0], 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        in_planes = planes[0]
        for stage, p in enumerate(planes):
            for i in range(n):
                blocks.append(PreActBlock(in_planes, p, stride=2 if stage > 0 and i == 0 else 1))
                in_planes = p
        self.layers = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():  # He init for convs, as the reference CIFAR ResNets do
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(self.pool(out).flatten(1))


# --- resnet18 ------------------------------------------------------------------------------------------


def resnet18(num_classes: int, input_shape: tuple) -> nn.Module:
    """torchvision's ResNet-18 adapted to 32x32 inputs: 3x3 stride-1 stem conv and no max-pool."""
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


# --- vgg -------------------------------------------------------------------------------------------------

_VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG with BatchNorm for CIFAR: conv3x3-BN-ReLU stacks and 5 max-pools, then one linear classifier
    on the pooled 512 (x ``width``) features (the CIFAR-sized head used in pruning work)."""

    def __init__(self, config: str, num_classes: int, input_shape: tuple, width: float = 1.0) -> None:
        super().__init__()
        width = _check_width(width, config)
        pools = _VGG_CONFIGS[config].count("M")
        if len(input_shape) != 3 or min(input_shape[1:]) < 2**pools:
            raise ValueError(
                f"model {config}: input_shape must be (C, H, W) with H, W >= {2**pools} "
                f"({pools} max-pools), got {tuple(input_shape)}"
            )
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for item in _VGG_CONFIGS[config]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = _scaled(int(item), width)
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def vgg11(num_classes: int, input_shape: tuple, width: float = 1.0) -> nn.Module:
    """VGG-11 with BatchNorm (CIFAR head)."""
    return VGG("vgg11", num_classes, input_shape, width)


def vgg16(num_classes: int, input_shape: tuple, width: float = 1.0) -> nn.Module:
    """VGG-16 with BatchNorm (CIFAR head)."""
    return VGG("vgg16", num_classes, input_shape, width)


# --- densenet ------------------------------------------------------------------------------------------


class _DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (4k channels) - BN-ReLU-conv3x3 (k channels); output concatenated to the input."""

    def __init__(self, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        inner = 4 * growth_rate
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, padding=1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.bn2(self.conv1(self.relu(self.bn1(x))))))
        return torch.cat([x, out], dim=1)


class _Transition(nn.Module):
    """BN-ReLU-conv1x1 (compressing channels) then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.relu(self.bn(x))))


class DenseNet(nn.Module):
    """DenseNet-BC for CIFAR (Huang et al. 2017): three dense blocks of (depth-4)/6 bottleneck layers,
    transitions compressing channels by ``compression``; default depth 40, growth rate 12 (small)."""

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple,
        depth: int = 40,
        growth_rate: int = 12,
        compression: float = 0.5,
    ) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"model densenet: depth must be 6n+4 with n >= 1 (10, 16, 22, 40, 100), got {depth!r}")
        if isinstance(growth_rate, bool) or not isinstance(growth_rate, int) or growth_rate < 1:
            raise ValueError(f"model densenet: growth_rate must be an integer >= 1, got {growth_rate!r}")
        if not isinstance(compression, (int, float)) or not 0 < compression <= 1:
            raise ValueError(f"model densenet: compression must be in (0, 1], got {compression!r}")
        n = (depth - 4) // 6
        channels = 2 * growth_rate
        layers: list[nn.Module] = [nn.Conv2d(input_shape[0], channels, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(n):
                layers.append(_DenseLayer(channels, growth_rate))
                channels += growth_rate
            if block < 2:
                out = max(1, int(math.floor(channels * compression)))
                layers.append(_Transition(channels, out))
                channels = out
        layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


# --- registry ------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "conv1d": Conv1dNet,
    "preresnet": PreResNet,
    "resnet18": resnet18,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "densenet": DenseNet,
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def _settings(builder: Callable[..., nn.Module]) -> list[str]:
    params = inspect.signature(builder).parameters
    return [p for p in params if p not in ("self", "num_classes", "input_shape")]


def build_model(name: str, num_classes: int, input_shape: tuple, **kwargs) -> nn.Module:
    """Build registry model ``name`` for ``num_classes`` outputs on inputs of ``input_shape`` (no batch)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    builder = _REGISTRY[name]
    allowed = _settings(builder)
    for key in kwargs:
        if key not in allowed:
            raise ValueError(
                f"unknown setting {key!r} for model {name!r}; allowed: {', '.join(allowed) or '(none)'}"
            )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"model {name}: num_classes must be an integer >= 2, got {num_classes!r}")
    return builder(num_classes, tuple(int(s) for s in input_shape), **kwargs)


def load_factory(spec: str, what: str = "model") -> Callable[..., Any]:
    """Import a user factory from ``"package.module:factory"`` (``what`` names it in errors).

    A model factory is called as ``factory(num_classes=..., input_shape=..., **kwargs)`` and must
    return an ``nn.Module`` whose final classifier is an ``nn.Linear``; a data factory
    (tprm/science/dataimport.py) as ``factory()``.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"{what} import: expected 'package.module:factory', got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what} import {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ValueError(f"{what} import {spec!r}: module {module_name!r} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ValueError(f"{what} import {spec!r}: {attr!r} is not callable")
    return factory


def classifier_parameter(model: nn.Module) -> str:
    """Name of the weight of the model's last ``nn.Linear`` (the classifier, e.g. ``"fc.weight"``)."""
    name = classifier_weight(model)
    if name is None:
        raise ValueError(f"classifier_parameter: {type(model).__name__} has no nn.Linear layer")
    return name
