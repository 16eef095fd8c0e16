"""InputChoice: pick some of several input tensors and reduce them."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from supernet.context import auto_label
from supernet.primitives.base import Choice, FixableMeta, Mutable, lookup_fixed
from supernet.primitives.value_choice import _check_prior

__all__ = ["ChosenInputs", "InputChoice", "REDUCTIONS", "reduce_inputs"]

REDUCTIONS = ("sum", "mean", "concat", "none")


def reduce_inputs(tensors: list[Any], reduction: str) -> Any:
    """Reduce the chosen tensors: sum, mean, concat (dim 1) or none (the list); None if empty."""
    if not tensors:
        return None
    if reduction == "none":
        return tensors
    if len(tensors) == 1:
        return tensors[0]
    if reduction == "concat":
        return torch.cat(tensors, dim=1)
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total / len(tensors) if reduction == "mean" else total


def _validate(n_candidates: Any, n_chosen: Any, reduction: Any, label: str) -> None:
    if not isinstance(n_candidates, int) or isinstance(n_candidates, bool) or n_candidates < 1:
        raise ValueError(f"InputChoice {label!r}: n_candidates must be a positive int, got {n_candidates!r}")
    if n_chosen is not None and (not isinstance(n_chosen, int) or not 1 <= n_chosen <= n_candidates):
        raise ValueError(f"InputChoice {label!r}: n_chosen must be None or an int in 1..{n_candidates} "
                         f"(n_candidates), got {n_chosen!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"InputChoice {label!r}: reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")


def input_options(n_candidates: int, n_chosen: int | None) -> list[list[int]]:
    """Every allowed chosen-index list, default (the first ``n_chosen`` inputs, or all) first."""
    sizes = [n_chosen] if n_chosen is not None else list(range(n_candidates, -1, -1))
    return [list(c) for k in sizes for c in itertools.combinations(range(n_candidates), k)]


class InputChoice(Mutable, nn.Module, metaclass=FixableMeta):
    """Choose ``n_chosen`` of ``n_candidates`` input tensors (any subset if None) and reduce them.

    The architecture value is the sorted list of chosen indices. Returns None when
    nothing is chosen. The space (unsearched) uses the first ``n_chosen`` inputs, or all.
    """

    def __init__(self, n_candidates: int, n_chosen: int | None = 1, reduction: str = "sum", *,
                 prior: Sequence[float] | None = None, label: str | None = None) -> None:
        super().__init__()
        self.label = auto_label("input_choice", label)
        _validate(n_candidates, n_chosen, reduction, self.label)
        self.n_candidates = n_candidates
        self.n_chosen = n_chosen
        self.reduction = reduction
        self.prior = _check_prior(prior, n_candidates, f"InputChoice {self.label!r}")

    @classmethod
    def create_fixed(cls, fixed: Mapping[str, Any], n_candidates: int, n_chosen: int | None = 1,
                     reduction: str = "sum", *, prior: Any = None, label: str | None = None) -> ChosenInputs:
        label = auto_label("input_choice", label)
        _validate(n_candidates, n_chosen, reduction, label)
        return ChosenInputs(lookup_fixed(fixed, label, input_options(n_candidates, n_chosen)), reduction)

    def forward(self, candidate_inputs: list[Any]) -> Any:
        _check_count(candidate_inputs, self.n_candidates, self.label)
        chosen = range(self.n_candidates if self.n_chosen is None else self.n_chosen)
        return reduce_inputs([candidate_inputs[i] for i in chosen], self.reduction)

    def decisions(self) -> list[Choice]:
        return [Choice(self.label, "input_choice", input_options(self.n_candidates, self.n_chosen), self.prior,
                       n_candidates=self.n_candidates, n_chosen=self.n_chosen)]

    def freeze(self, arch: Mapping[str, Any]) -> ChosenInputs:
        return ChosenInputs(lookup_fixed(arch, self.label, input_options(self.n_candidates, self.n_chosen)),
                            self.reduction)

    def extra_repr(self) -> str:
        return (f"n_candidates={self.n_candidates}, n_chosen={self.n_chosen}, reduction={self.reduction!r}, "
                f"label={self.label!r}")


def _check_count(inputs: Sequence[Any], expected: int, label: str) -> None:
    if len(inputs) != expected:
        raise ValueError(f"InputChoice {label!r} expects a list of {expected} inputs, got {len(inputs)}")


class ChosenInputs(nn.Module):
    """The fixed form of an InputChoice: select ``chosen`` inputs and reduce them."""

    def __init__(self, chosen: int | list[int], reduction: str) -> None:
        super().__init__()
        self.chosen = [chosen] if isinstance(chosen, int) else list(chosen)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, candidate_inputs: list[Any]) -> Any:
        return reduce_inputs([candidate_inputs[i] for i in self.chosen], self.reduction)

    def extra_repr(self) -> str:
        return f"chosen={self.chosen}, reduction={self.reduction!r}"
