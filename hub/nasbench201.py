"""NAS-Bench-201: a ResNet-like macro skeleton of densely connected 4-node cells (Dong & Yang, 2020)."""

from __future__ import annotations

from collections import OrderedDict

import torch

import supernet.nn as nn
from hub.searched import SearchedModelsMixin

__all__ = ["NB201_OPS", "NasBench201"]


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.c_out, *x.shape[2:])


NB201_OPS = OrderedDict([
    ("none", lambda c_in, c_out: Zero(c_in, c_out)),
    ("skip_connect", lambda c_in, c_out: nn.Identity() if c_in == c_out else ReLUConvBN(c_in, c_out, 1)),
    ("conv_1x1", lambda c_in, c_out: ReLUConvBN(c_in, c_out, 1)),
    ("conv_3x3", lambda c_in, c_out: ReLUConvBN(c_in, c_out, 3)),
    ("avg_pool_3x3", lambda c_in, c_out: nn.AvgPool2d(3, 1, 1, count_include_pad=False)),
])


class ResidualReduction(nn.Module):
    """The basic residual block with stride 2 between the stacks."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NasBench201(nn.Module, SearchedModelsMixin):
    """Three stacks of ``num_modules_per_stack`` cells (widths C, 2C, 4C) joined by residual
    reductions. All cells share the label ``cell``: 6 edges of 5 operators, 15,625 cells."""

    def __init__(self, stem_out_channels: int = 16, num_modules_per_stack: int = 5, num_labels: int = 10) -> None:
        super().__init__()
        for name, value in (("stem_out_channels", stem_out_channels),
                            ("num_modules_per_stack", num_modules_per_stack), ("num_labels", num_labels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        c = stem_out_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stack, width in enumerate((c, 2 * c, 4 * c)):
            if stack > 0:
                layers.append(ResidualReduction(width // 2, width))
            layers += [nn.NasBench201Cell(NB201_OPS, width, width, label="cell") for _ in range(num_modules_per_stack)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(4 * c, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
