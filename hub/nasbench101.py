"""NAS-Bench-101: stacks of cells that are any small DAG of conv/pool operations (Ying et al., 2019)."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

import supernet.nn as nn
from hub.searched import SearchedModelsMixin

__all__ = ["NasBench101"]


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, bn_eps: float, bn_momentum: float) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum), nn.ReLU(inplace=True))


def _same_width(module: Callable[..., nn.Module], c: int, **kwargs: Any) -> nn.Module:
    return module(c, c, **kwargs)


def _max_pool_3x3(c: int) -> nn.Module:
    return nn.MaxPool2d(3, 1, 1)


class NasBench101(nn.Module, SearchedModelsMixin):
    """A 3x3 stem, ``num_stacks`` stacks of ``num_modules_per_stack`` cells (max-pool and double the
    channels between stacks), global pooling and a linear classifier. All cells share the label
    ``cell``; operations are conv3x3-bn-relu, conv1x1-bn-relu and maxpool3x3."""

    def __init__(self, stem_out_channels: int = 128, num_stacks: int = 3, num_modules_per_stack: int = 3,
                 max_num_vertices: int = 7, max_num_edges: int = 9, num_labels: int = 10, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.003) -> None:
        super().__init__()
        for name, value in (("stem_out_channels", stem_out_channels), ("num_stacks", num_stacks),
                            ("num_modules_per_stack", num_modules_per_stack), ("num_labels", num_labels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        momentum = 1 - bn_momentum if bn_momentum > 0.5 else bn_momentum  # accept TF-style decay too
        # the cells keep their factories, so they are picklable objects rather than closures
        ops = OrderedDict([
            ("conv3x3-bn-relu", functools.partial(_same_width, ConvBNReLU, kernel=3, bn_eps=bn_eps,
                                                  bn_momentum=momentum)),
            ("conv1x1-bn-relu", functools.partial(_same_width, ConvBNReLU, kernel=1, bn_eps=bn_eps,
                                                  bn_momentum=momentum)),
            ("maxpool3x3", _max_pool_3x3),
        ])
        projection = functools.partial(ConvBNReLU, kernel=1, bn_eps=bn_eps, bn_momentum=momentum)

        layers: list[nn.Module] = [ConvBNReLU(3, stem_out_channels, 3, bn_eps, momentum)]
        c_in = c_out = stem_out_channels
        for stack in range(num_stacks):
            if stack > 0:
                layers.append(nn.MaxPool2d(2, 2))
                c_out *= 2
            for _ in range(num_modules_per_stack):
                layers.append(nn.NasBench101Cell(ops, c_in, c_out, projection, max_num_vertices, max_num_edges,
                                                 label="cell"))
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_out, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))
