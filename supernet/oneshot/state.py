"""The architecture state of a supernet: one entry per label, shared by every mixed op with it.

Path-sampling ops read the current architecture (``set_arch``); differentiable ops read
mixing weights computed from one architecture-parameter tensor per label (softmax, or
Gumbel-softmax at a temperature the algorithm sets). Tests and exports can pin the
weights to exact one-hot values with ``set_weights``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from supernet.primitives.base import Choice
from supernet.space import SearchSpace

__all__ = ["ArchState"]


def _key(label: str) -> str:
    return label.replace(".", "::")  # parameter names cannot contain '.'


class ArchState(nn.Module):
    """Architecture parameters (``alpha``) and the sampled architecture of a converted model."""

    def __init__(self, space: SearchSpace, family: str = "path_sampling") -> None:
        super().__init__()
        self.space = space
        self.family = family
        self.alpha = nn.ParameterDict()
        self.arch: dict[str, Any] = space.default_arch()
        self.temperature = 1.0
        self.gumbel = False
        self.pinned: dict[str, Any] | None = None
        self._noise: dict[str, torch.Tensor] = {}
        self._value_choices: list[Any] = []

    # -- parameters ------------------------------------------------------------------------------
    def add_alpha(self, label: str, size: int) -> nn.Parameter:
        """The architecture parameter of ``label`` (created at the first request, shared after)."""
        key = _key(label)
        if key not in self.alpha:
            self.alpha[key] = nn.Parameter(1e-3 * torch.randn(size))
        elif self.alpha[key].numel() != size:
            raise ValueError(f"label {label!r} asks for {size} architecture weights but has "
                             f"{self.alpha[key].numel()}")
        return self.alpha[key]

    def alpha_of(self, label: str) -> nn.Parameter:
        return self.alpha[_key(label)]

    def labels(self) -> list[str]:
        """Labels that have architecture parameters."""
        return [k.replace("::", ".") for k in self.alpha]

    def choice(self, label: str) -> Choice:
        return self.space.choices[label]

    # -- path sampling ----------------------------------------------------------------------------
    def set_arch(self, arch: Mapping[str, Any]) -> None:
        """Use ``arch`` (complete or partial, validated) for every path-sampling op."""
        self.arch = self.space.validate(arch)
        for leaf in self._value_choices:
            leaf.current = self.arch.get(leaf.label)

    def value(self, label: str) -> Any:
        return self.arch[label]

    # -- differentiable ---------------------------------------------------------------------------
    def resample_noise(self) -> None:
        """New Gumbel noise for every label (once per step with ``gumbel=True``)."""
        self._noise = {}
        if self.gumbel:
            for key, alpha in self.alpha.items():
                uniform = torch.rand_like(alpha).clamp_(1e-9, 1 - 1e-9)
                self._noise[key] = -torch.log(-torch.log(uniform))

    def weights(self, label: str) -> torch.Tensor:
        """Mixing weights from ``label``'s architecture parameters (they sum to 1)."""
        key = _key(label)
        alpha = self.alpha[key]
        noise = self._noise.get(key)
        if noise is not None:
            alpha = alpha + noise.to(alpha.device)
        return torch.softmax(alpha / self.temperature, dim=-1)

    def pin(self, arch: Mapping[str, Any] | None) -> None:
        """Make differentiable ops mix with exact one-hot weights on ``arch`` (None: use alpha again).

        With the weights pinned, a differentiable supernet computes what the path-sampling
        supernet computes on ``arch``; tests use this to check the two agree.
        """
        if arch is None:
            self.pinned = None
            return
        self.set_arch(arch)
        self.pinned = self.arch

    # -- export -----------------------------------------------------------------------------------
    def argmax_arch(self) -> dict[str, Any]:
        """The most likely value of every label with parameters; the current value elsewhere."""
        arch = dict(self.arch)
        for key, alpha in self.alpha.items():
            label = key.replace("::", ".")
            if label in self.space.choices:
                arch[label] = self.space.choices[label].options[int(alpha.detach().argmax())]
        return arch
