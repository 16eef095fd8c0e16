"""AutoActivation: a searchable activation function (Searching for Activation Functions)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from supernet.context import auto_label
from supernet.primitives.base import FixableMeta, Mutable
from supernet.primitives.layer_choice import LayerChoice

__all__ = ["AutoActivation", "BINARY_OPS", "FixedAutoActivation", "UNARY_OPS"]


class _Unary(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        if name in ("add_beta", "mul_beta", "gaussian"):
            self.beta = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.name
        if n == "identity":
            return x
        if n == "neg":
            return -x
        if n == "abs":
            return x.abs()
        if n == "square":
            return x * x
        if n == "cube":
            return x * x * x
        if n == "sqrt":
            return torch.sqrt(x.abs() + 1e-7)
        if n == "add_beta":
            return x + self.beta
        if n == "mul_beta":
            return x * self.beta
        if n == "log":
            return torch.log(x.abs() + 1e-7)
        if n == "exp":
            return torch.exp(x.clamp(max=20))
        if n == "gaussian":
            return torch.exp(-self.beta * x * x)
        if n == "relu":
            return torch.relu(x)
        if n == "min0":
            return torch.clamp(x, max=0)
        return getattr(torch, n)(x)  # sin, cos, sinh, cosh, tanh, asinh, atan, sinc, sigmoid, erf

    def extra_repr(self) -> str:
        return self.name


class _Binary(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        if name in ("mix", "exp_sq_diff", "exp_abs_diff"):
            self.beta = nn.Parameter(torch.full((1,), 0.5))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        n = self.name
        if n == "add":
            return x1 + x2
        if n == "mul":
            return x1 * x2
        if n == "sub":
            return x1 - x2
        if n == "div":
            return x1 / (x2.abs() + 1e-7)
        if n == "max":
            return torch.maximum(x1, x2)
        if n == "min":
            return torch.minimum(x1, x2)
        if n == "sigmoid_mul":
            return torch.sigmoid(x1) * x2
        if n == "exp_sq_diff":
            return torch.exp(-self.beta * (x1 - x2) ** 2)
        if n == "exp_abs_diff":
            return torch.exp(-self.beta * (x1 - x2).abs())
        return self.beta * x1 + (1 - self.beta) * x2  # mix

    def extra_repr(self) -> str:
        return self.name


UNARY_OPS = ("identity", "neg", "abs", "square", "cube", "sqrt", "add_beta", "mul_beta", "log", "exp", "sin",
             "cos", "sinh", "cosh", "tanh", "asinh", "atan", "sinc", "relu", "min0", "sigmoid", "erf", "gaussian")
BINARY_OPS = ("add", "mul", "sub", "div", "max", "min", "sigmoid_mul", "exp_sq_diff", "exp_abs_diff", "mix")


class _ActivationForward(nn.Module):
    first_unary: nn.Module
    unaries: nn.ModuleList
    binaries: nn.ModuleList

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.first_unary(x)
        for unary, binary in zip(self.unaries, self.binaries):
            out = binary(out, unary(x))
        return out


class FixedAutoActivation(_ActivationForward):
    """A frozen AutoActivation: fixed unary and binary operators; keeps the searched one's ``label``."""

    def __init__(self, first_unary: nn.Module, unaries: list[nn.Module], binaries: list[nn.Module],
                 label: str | None = None) -> None:
        super().__init__()
        self.label = label
        self.first_unary = first_unary
        self.unaries = nn.ModuleList(unaries)
        self.binaries = nn.ModuleList(binaries)

    def extra_repr(self) -> str:
        return "" if self.label is None else f"label={self.label!r}"


def _unaries() -> OrderedDict:
    return OrderedDict((n, _Unary(n)) for n in UNARY_OPS)


def _binaries() -> OrderedDict:
    return OrderedDict((n, _Binary(n)) for n in BINARY_OPS)


class AutoActivation(Mutable, _ActivationForward, metaclass=FixableMeta):
    """``unit_num`` core units ``binary(out, unary(x))`` after a first ``unary(x)``; every
    unary and binary operator is a choice (``{label}/unary_{i}``, ``{label}/binary_{i}``).
    """

    def __init__(self, unit_num: int = 1, label: str | None = None) -> None:
        super().__init__()
        self.label = auto_label("auto_activation", label)
        _check_units(unit_num, self.label)
        self.unit_num = unit_num
        self.first_unary = LayerChoice(_unaries(), label=f"{self.label}/unary_0")
        self.unaries = nn.ModuleList(LayerChoice(_unaries(), label=f"{self.label}/unary_{i + 1}")
                                     for i in range(unit_num))
        self.binaries = nn.ModuleList(LayerChoice(_binaries(), label=f"{self.label}/binary_{i}")
                                      for i in range(unit_num))

    @classmethod
    def create_fixed(cls, fixed: Mapping[str, Any], unit_num: int = 1, label: str | None = None) -> FixedAutoActivation:
        label = auto_label("auto_activation", label)
        _check_units(unit_num, label)
        first = LayerChoice(_unaries(), label=f"{label}/unary_0")
        unaries = [LayerChoice(_unaries(), label=f"{label}/unary_{i + 1}") for i in range(unit_num)]
        binaries = [LayerChoice(_binaries(), label=f"{label}/binary_{i}") for i in range(unit_num)]
        return FixedAutoActivation(first, unaries, binaries, label)

    def freeze(self, arch: Mapping[str, Any]) -> FixedAutoActivation:
        return FixedAutoActivation(self.first_unary.freeze(arch), [u.freeze(arch) for u in self.unaries],
                                   [b.freeze(arch) for b in self.binaries], self.label)

    def extra_repr(self) -> str:
        return f"unit_num={self.unit_num}, label={self.label!r}"


def _check_units(unit_num: int, label: str) -> None:
    if not isinstance(unit_num, int) or unit_num < 1:
        raise ValueError(f"AutoActivation {label!r}: unit_num must be a positive int, got {unit_num!r}")
