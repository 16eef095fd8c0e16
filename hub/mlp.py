"""A small fully connected space for vector inputs (regression, tabular data): the hidden width,
the number of hidden layers and each layer's activation. Small enough to search on a CPU in seconds."""

from __future__ import annotations

import functools

import torch

import supernet.nn as nn

__all__ = ["MLPSpace"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}


def _layer(index: int, in_features: int, width: nn.ValueChoice, activations: tuple[str, ...]) -> nn.Module:
    """Hidden layer ``index``: a linear map to ``width`` features, then an activation chosen per layer."""
    return nn.Sequential(nn.Linear(in_features if index == 0 else width, width),
                         nn.LayerChoice({name: ACTIVATIONS[name]() for name in activations}, label=f"act{index}"))


class MLPSpace(nn.Module):
    """``depth`` hidden layers of a shared searched ``width`` (label ``width``; ``depth``: a range, label
    ``depth``), each followed by an activation chosen among ``activations`` (labels ``act0``, ``act1``, ...),
    and a linear head to ``num_outputs``. Inputs are flattened to ``in_features`` values.

    The defaults have 3 widths x (3 + 3^2 + 3^3) activation choices = 117 architectures.
    """

    def __init__(self, in_features: int = 8, num_outputs: int = 1, widths: tuple[int, ...] = (16, 32, 64),
                 depth: tuple[int, int] = (1, 3), activations: tuple[str, ...] = ("relu", "tanh", "identity")) -> None:
        super().__init__()
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown or not activations:
            raise ValueError(f"activations must be a non-empty list among {list(ACTIVATIONS)}, got {list(activations)}")
        width = nn.ValueChoice(list(widths), label="width")
        self.layers = nn.Repeat(functools.partial(_layer, in_features=in_features, width=width,
                                                  activations=tuple(activations)), tuple(depth), label="depth")
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(x.flatten(1)))
