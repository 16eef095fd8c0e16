"""Mixed ops of LayerChoice, InputChoice and Repeat, for path sampling and differentiable search.

Each mixed op is a subclass of its primitive: conversion swaps the class of the module
in place, so candidates and weights stay where they were and only ``forward`` changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from supernet.oneshot.state import ArchState, map_tensors
from supernet.primitives.input_choice import InputChoice, reduce_inputs
from supernet.primitives.layer_choice import LayerChoice
from supernet.primitives.repeat import Repeat

__all__ = [
    "DifferentiableInputChoice",
    "DifferentiableLayerChoice",
    "DifferentiableRepeat",
    "PathSamplingInputChoice",
    "PathSamplingLayerChoice",
    "PathSamplingRepeat",
    "SwappedMixedOp",
    "weighted_sum",
]


class SwappedMixedOp:
    """A mixed op made by giving a primitive module a new class (same attributes and children)."""

    is_mixed = True
    _state: ArchState

    @classmethod
    def from_primitive(cls, module: nn.Module, state: ArchState) -> nn.Module:
        module.__class__ = cls
        object.__setattr__(module, "_state", state)
        module.setup(state)  # type: ignore[attr-defined]
        return module

    def setup(self, state: ArchState) -> None:
        """Create architecture parameters etc. (nothing for path sampling)."""


def weighted_sum(weights: torch.Tensor, compute: Any, count: int, exact: bool, what: str = "a mixed op",
                 names: Sequence[str] | None = None) -> Any:
    """``sum_i weights[i] * compute(i)`` (tensors, or tuples of them, summed element by element; a None
    in every term's tuple stays None); with ``exact`` (pinned) weights, zero terms are skipped.
    ``what`` and ``names`` (of the terms) name them when their tuples hold None in different places."""
    total, first = None, None
    for i in range(count):
        if exact and float(weights[i]) == 0.0:
            continue
        term = compute(i)
        if first is None:
            first = (i, _layout(term))
        elif _layout(term) != first[1]:
            name = names or [f"candidate {j}" for j in range(count)]
            raise ValueError(f"{what}: {name[i]} returns {_layout(term)} but {name[first[0]]} returns {first[1]}; "
                             "mixing sums the outputs element by element, so every candidate must return None in "
                             "the same places")
        if not (exact and float(weights[i]) == 1.0):
            term = map_tensors(lambda t, w=weights[i]: t * w, term)
        total = term if total is None else map_tensors(torch.add, total, term)
    return total


def _layout(output: Any) -> str:
    """Where an output holds tensors and Nones: ``(tensor, None)``."""
    if isinstance(output, (tuple, list)):
        inner = ", ".join(_layout(o) for o in output)
        return f"({inner})" if isinstance(output, tuple) else f"[{inner}]"
    return "None" if output is None else "tensor"


def _onehot(options: list[Any], value: Any, like: torch.Tensor) -> torch.Tensor:
    onehot = torch.zeros_like(like)
    onehot[options.index(value)] = 1.0
    return onehot


# -- LayerChoice -------------------------------------------------------------------------------
class PathSamplingLayerChoice(SwappedMixedOp, LayerChoice):
    """Runs only the candidate of the current architecture."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self[self._state.arch[self.label]](*args, **kwargs)


class DifferentiableLayerChoice(SwappedMixedOp, LayerChoice):
    """Runs every candidate; the output is their softmax-weighted sum (DARTS)."""

    def setup(self, state: ArchState) -> None:
        state.add_alpha(self.label, len(self))

    def mixing_weights(self) -> tuple[torch.Tensor, bool]:
        state = self._state
        alpha = state.alpha_of(self.label)
        if state.pinned is not None:
            return _onehot(self.names, state.pinned[self.label], alpha), True
        return state.weights(self.label), False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        weights, exact = self.mixing_weights()
        candidates = list(self)
        return weighted_sum(weights, lambda i: candidates[i](*args, **kwargs), len(candidates), exact,
                            f"LayerChoice {self.label!r}", [f"candidate {name!r}" for name in self.names])

    def export_arch(self) -> dict[str, Any]:
        return {self.label: self.names[int(self._state.alpha_of(self.label).detach().argmax())]}


# -- InputChoice -------------------------------------------------------------------------------
class PathSamplingInputChoice(SwappedMixedOp, InputChoice):
    """Reduces only the inputs of the current architecture."""

    def forward(self, candidate_inputs: list[Any]) -> Any:
        chosen = self._state.arch[self.label]
        return reduce_inputs([candidate_inputs[i] for i in chosen], self.reduction)


class DifferentiableInputChoice(SwappedMixedOp, InputChoice):
    """A weighted sum of all inputs: softmax weights scaled to ``n_chosen`` for ``sum``, or one
    sigmoid gate per input when any subset may be chosen. Exports the strongest inputs."""

    @classmethod
    def from_primitive(cls, module: nn.Module, state: ArchState) -> nn.Module:
        from supernet.oneshot.registry import UnsupportedChoice

        if module.reduction not in ("sum", "mean"):  # type: ignore[attr-defined]
            raise UnsupportedChoice(f"InputChoice {module.label!r} with reduction "  # type: ignore[attr-defined]
                                    f"{module.reduction!r} has no differentiable mixed op (only sum and mean)")
        return super().from_primitive(module, state)

    def setup(self, state: ArchState) -> None:
        state.add_alpha(self.label, self.n_candidates)

    def forward(self, candidate_inputs: list[Any]) -> Any:
        state = self._state
        alpha = state.alpha_of(self.label)
        exact = state.pinned is not None
        if exact:
            weights = torch.zeros_like(alpha)
            weights[list(state.pinned[self.label])] = 1.0
        elif self.n_chosen is None:
            weights = torch.sigmoid(alpha / state.temperature)
        else:
            weights = state.weights(self.label) * self.n_chosen
        if self.reduction == "mean":
            weights = weights / weights.sum().clamp_min(1e-12)
        if exact and not bool(weights.any()):
            return None
        return weighted_sum(weights, lambda i: candidate_inputs[i], self.n_candidates, exact)

    def export_arch(self) -> dict[str, Any]:
        alpha = self._state.alpha_of(self.label).detach()
        if self.n_chosen is None:
            return {self.label: [i for i in range(self.n_candidates) if float(alpha[i]) > 0]}
        order = sorted(range(self.n_candidates), key=lambda i: (-float(alpha[i]), i))
        return {self.label: sorted(order[: self.n_chosen])}


# -- Repeat ------------------------------------------------------------------------------------
class PathSamplingRepeat(SwappedMixedOp, Repeat):
    """Runs the blocks up to the current depth."""

    def forward(self, x: Any) -> Any:
        for block in self.blocks[: self._depth_of(self._state.arch)]:
            x = block(x)
        return x


class DifferentiableRepeat(SwappedMixedOp, Repeat):
    """A weighted sum of the outputs after each allowed depth."""

    def setup(self, state: ArchState) -> None:
        if self.depth_choice is not None:
            state.add_alpha(self.label, len(state.space.choices[self.label].options))

    def forward(self, x: Any) -> Any:
        if self.depth_choice is None:
            return Repeat.forward(self, x)
        state = self._state
        leaf_options = state.space.choices[self.label].options
        if state.pinned is not None:
            weights = _onehot(leaf_options, state.pinned[self.label], state.alpha_of(self.label))
        else:
            weights = state.weights(self.label)
        exact = state.pinned is not None
        outputs = {0: x}
        for i, block in enumerate(self.blocks[: self.max_depth]):
            x = block(x)
            outputs[i + 1] = x
        depths = [self.depth_choice.evaluate_with({self.label: v}) for v in leaf_options]
        return weighted_sum(weights, lambda i: self.handed_on(outputs[depths[i]], leaf_options[i]), len(depths),
                            exact, f"Repeat {self.label!r}", [f"depth {d}" for d in depths])

    def handed_on(self, output: Any, value: Any) -> Any:
        """What the blocks' ``output`` at the depth label's ``value`` hands on to the sum (itself; a space whose
        next module depends on the depth may preprocess it here, e.g. the NDS stages)."""
        return output

    def export_arch(self) -> dict[str, Any]:
        if self.depth_choice is None:
            return {}
        options = self._state.space.choices[self.label].options
        return {self.label: options[int(self._state.alpha_of(self.label).detach().argmax())]}
