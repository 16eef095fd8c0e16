"""ProxylessNAS's space (Cai et al., 2019) and the inverted-residual block MobileNetV3Space shares.

Following the official implementation, each layer's kernel size x expand ratio is one
LayerChoice of all six combinations (the candidates do not share weights), and each
stage's depth is searchable (skipping a block = a shallower stage).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

import supernet.nn as nn
from hub.searched import SearchedModelsMixin, register_searched_model
from supernet.nn import ValueChoice

__all__ = ["ConvBNAct", "InvertedResidual", "ProxylessNAS", "SqueezeExcite", "make_divisible"]


def make_divisible(value: Any, divisor: int = 8, min_value: int | None = None) -> Any:
    """Round ``value`` to a multiple of ``divisor``, not below 90% of it (works on ValueChoices too)."""
    min_value = min_value or divisor
    rounded = ValueChoice.max(min_value, ValueChoice.to_int(value + divisor / 2) // divisor * divisor)
    return ValueChoice.condition(rounded < 0.9 * value, rounded + divisor, rounded)


class ConvBNAct(nn.Sequential):
    """Convolution, BatchNorm and an optional activation; padding follows the kernel size."""

    def __init__(self, c_in: Any, c_out: Any, kernel: Any = 3, stride: int = 1, groups: Any = 1,
                 norm_layer: Callable[[Any], nn.Module] | None = None,
                 activation_layer: Callable[[], nn.Module] | None = None) -> None:
        norm_layer = norm_layer or nn.BatchNorm2d
        layers = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                  norm_layer(c_out)]
        if activation_layer is not None:
            layers.append(activation_layer())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: channel gates from a pooled bottleneck (hard-sigmoid, as MobileNetV3)."""

    def __init__(self, channels: Any, squeeze_channels: Any) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        scale = nn.functional.hardsigmoid(self.fc2(nn.functional.relu(self.fc1(scale))))
        return x * scale


class InvertedResidual(nn.Module):
    """MBConv: 1x1 expansion (skipped when the expand ratio is 1), depthwise k x k, optional
    squeeze-excite, 1x1 projection; a residual connection when the shape allows.

    ``in_channels``, ``out_channels``, ``expand_ratio`` and ``kernel_size`` may be ValueChoices.
    ``expand_conv=True`` keeps the expansion even at ratio 1 (a space whose ratio is a choice must,
    so that every architecture has the same layers).
    """

    def __init__(self, in_channels: Any, out_channels: Any, expand_ratio: Any, kernel_size: Any = 3,
                 stride: int = 1, squeeze_excite: Callable[[Any, Any], nn.Module] | None = None,
                 norm_layer: Callable[[Any], nn.Module] | None = None,
                 activation_layer: Callable[[], nn.Module] | None = None, expand_conv: bool | None = None) -> None:
        super().__init__()
        activation_layer = activation_layer or nn.ReLU6
        hidden = make_divisible(in_channels * expand_ratio, 8)
        self.has_skip = stride == 1 and in_channels is out_channels or (
            isinstance(in_channels, int) and isinstance(out_channels, int) and in_channels == out_channels
            and stride == 1)
        layers: list[nn.Module] = []
        if expand_conv is None:
            expand_conv = not (isinstance(expand_ratio, (int, float)) and expand_ratio == 1)
        if expand_conv:
            layers.append(ConvBNAct(in_channels, hidden, 1, norm_layer=norm_layer, activation_layer=activation_layer))
        else:
            hidden = in_channels
        layers.append(ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden, norm_layer=norm_layer,
                                activation_layer=activation_layer))
        if squeeze_excite is not None:
            layers.append(squeeze_excite(hidden, in_channels))
        layers.append(ConvBNAct(hidden, out_channels, 1, norm_layer=norm_layer))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.has_skip else out


class ProxylessNAS(nn.Module, SearchedModelsMixin):
    """ProxylessNAS's mobile space: a 3x3 stem, an MBConv1 block, six searchable stages of MBConv
    layers (kernel 3/5/7 x expand 3/6, depth 1..4 or fixed), a 1x1 feature-mix conv and a linear head.

    ``base_widths`` are the widths of stem, first block, six stages, feature mix (9 values),
    scaled by ``width_mult``. At 32x32 (``num_labels=10``) the network is the same; it just ends
    at 1x1 resolution instead of 7x7.
    """

    STAGE_DEPTHS = (4, 4, 4, 4, 4, 1)
    STAGE_STRIDES = (2, 2, 2, 1, 2, 1)

    def __init__(self, num_labels: int = 1000, base_widths: tuple[int, ...] = (32, 16, 32, 40, 80, 96, 192, 320, 1280),
                 dropout_rate: float = 0.0, width_mult: float = 1.0, bn_eps: float = 1e-3,
                 bn_momentum: float = 0.1) -> None:
        super().__init__()
        if len(base_widths) != 9:
            raise ValueError(f"base_widths needs 9 values (stem, first block, 6 stages, feature mix), "
                             f"got {len(base_widths)}: {tuple(base_widths)}")
        if not width_mult > 0:
            raise ValueError(f"width_mult must be positive, got {width_mult!r}")
        widths = [make_divisible(w * width_mult, 8) for w in base_widths]

        norm = functools.partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)  # a closure would not pickle
        self.stem = ConvBNAct(3, widths[0], 3, 2, norm_layer=norm, activation_layer=nn.ReLU6)
        self.first_block = InvertedResidual(widths[0], widths[1], 1, 3, 1, norm_layer=norm)
        stages: list[nn.Module] = []
        c_in = widths[1]
        for s, (depth, stride) in enumerate(zip(self.STAGE_DEPTHS, self.STAGE_STRIDES)):
            c_out = widths[s + 2]

            def block(i: int, s: int = s, c_in: int = c_in, c_out: int = c_out, stride: int = stride) -> nn.Module:
                return nn.LayerChoice(OrderedDict(
                    (f"k{k}_e{e}", InvertedResidual(c_in if i == 0 else c_out, c_out, e, k, stride if i == 0 else 1,
                                                    norm_layer=norm))
                    for k in (3, 5, 7) for e in (3, 6)), label=f"s{s}_i{i}")

            stages.append(nn.Repeat(block, (1, depth) if depth > 1 else 1, label=f"s{s}_depth"))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.feature_mix = ConvBNAct(c_in, widths[8], 1, norm_layer=norm, activation_layer=nn.ReLU6)
        self.dropout = nn.Dropout(dropout_rate)
        self.classifier = nn.Linear(widths[8], num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_mix(self.stages(self.first_block(self.stem(x))))
        return self.classifier(self.dropout(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)))


# -- published architectures ---------------------------------------------------------------------------
def _arch(depths: tuple[int, ...], layers: list[str]) -> dict[str, Any]:
    """An arch from per-stage depths and the ``kKeE`` code of every layer (a stage's unused layers
    keep their first candidate, which the depth switches off)."""
    arch: dict[str, Any] = {}
    codes = iter(layers)
    for s, (depth, max_depth) in enumerate(zip(depths, ProxylessNAS.STAGE_DEPTHS)):
        if max_depth > 1:
            arch[f"s{s}_depth"] = depth
        for i in range(max_depth):
            code = next(codes) if i < depth else "k3e3"
            k, e = code[1:].split("e")
            arch[f"s{s}_i{i}"] = f"k{k}_e{e}"
    return arch


def _register(name: str, widths: tuple[int, ...], depths: tuple[int, ...], layers: str, description: str,
              reported: str) -> None:
    register_searched_model(name, ProxylessNAS, lambda: ProxylessNAS(base_widths=widths),
                            lambda: _arch(depths, layers.split()), description, reported)


# The searched networks of the paper (Table 2 and Figure 4), as released by its authors; the figures are
# those their ImageNet training logs print (logs/imagenet_*_log.txt of the release).
_MOBILE_WIDTHS = (32, 16, 32, 40, 80, 96, 192, 320, 1280)
_register("proxyless-mobile", _MOBILE_WIDTHS, (2, 4, 4, 4, 4, 1),
          "k5e3 k3e3  k7e3 k3e3 k5e3 k5e3  k7e6 k5e3 k5e3 k5e3  k5e6 k5e3 k5e3 k5e3  k7e6 k7e6 k7e3 k7e3  k7e6",
          "ProxylessNAS searched for mobile latency (ImageNet, 224x224)",
          "4.08M params, 320.4M multiply-adds (released training log)")
_register("proxyless-gpu", (40, 24, 32, 56, 112, 128, 256, 432, 1728), (1, 2, 2, 3, 4, 1),
          "k5e3  k7e3 k3e3  k7e6 k5e3  k5e6 k3e3 k5e3  k7e6 k7e6 k7e6 k5e6  k7e6",
          "ProxylessNAS searched for GPU latency (ImageNet, 224x224)",
          "7.12M params, 465.3M multiply-adds (released training log)")
_register("proxyless-cpu", (40, 24, 32, 48, 88, 104, 216, 360, 1432), (4, 4, 2, 4, 4, 1),
          "k3e6 k3e3 k3e3 k3e3  k3e6 k3e3 k3e3 k5e3  k3e6 k3e3  k5e6 k3e3 k3e3 k3e3  k5e6 k5e3 k5e3 k3e3  k5e6",
          "ProxylessNAS searched for CPU latency (ImageNet, 224x224)",
          "4.36M params, 439.2M multiply-adds (released training log)")
