"""What an architecture costs, in multiply-adds (MACs) and parameters.

One convention: a cost is a count of multiply-adds, the unit the papers quote as "FLOPs"
(SPOS's 330M budget, ProxylessNAS's 320M mobile network). ``count_macs`` measures it with
``torch.utils.flop_counter``, which counts a multiply-add as two FLOPs.

``CostModel`` measures a converted supernet on one input: the cost of a reference
architecture, and how each label's value changes it. The expected cost under the
architecture distribution is then differentiable in the architecture parameters
(ProxylessNAS's resource term); whole architectures' MACs and parameters serve SPOS's
budget. A user latency table can stand in for the MACs: ``{label: {value: ms}}``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from supernet.oneshot import ArchState

__all__ = ["CostModel", "count_macs"]


def count_macs(net: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of one forward pass of ``net`` on ``example`` (what papers call FLOPs)."""
    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(example)
    net.train(was_training)
    return int(counter.get_total_flops()) // 2  # the counter gives 2 FLOPs per multiply-add


class CostModel:
    """Cost of a path-sampling or binary-gate supernet's architectures, additive over labels given the
    labels that switch them on (a Repeat's depth, a LayerChoice holding the label).

    For a label ``l`` whose occurrences are conditioned on labels ``C(l)`` (empty for most), and
    ``c`` a setting of ``C(l)``::

        delta_l(v | c) = cost(ref + c + {l: v}) - cost(ref + c)      (0 where c switches l off)
        cost(arch)     = cost(ref) + sum_l delta_l(arch[l] | arch[C(l)])
        E[cost]        = cost(ref) + sum_l sum_c prod_{m in C(l)} p_m(c_m) * sum_v p_l(v) delta_l(v | c)

    ``ref`` is the reference architecture (every depth at its maximum); a label used in one place
    is measured at ``ref`` only (its change does not depend on ``c``). The model is exact when
    labels add their costs independently once the switching labels are fixed: the layers of block
    ``k`` of a Repeat count with weight ``P(depth > k)``, and past the sampled depth cost nothing.
    This is the authors' expected latency/FLOPs (``super_proxyless.py``: ``sum_block sum_i p_i
    cost_i`` with the ``Zero`` op costing 0) where a searched depth replaces their per-block Zero op.
    """

    def __init__(self, supernet: nn.Module, state: ArchState, example: torch.Tensor,
                 latency_table: Mapping[str, Mapping[Any, float]] | None = None) -> None:
        self.state = state
        space = state.space
        reference = space.default_arch()
        for label, choice in space.choices.items():
            if choice.kind == "repeat":
                reference[label] = max(choice.options)
        self.reference = reference
        self.given: dict[str, list[str]] = {}  # label -> the labels whose values switch it on
        self.delta: dict[str, dict[tuple, dict[Any, float]]] = {}  # label -> setting of given -> value -> change
        if latency_table is not None:
            unknown = [label for label in latency_table if label not in space.choices]
            if unknown:
                raise ValueError(f"latency table label {unknown[0]!r} is not in the space; labels: "
                                 f"{list(space.choices)}")
        saved = dict(state.arch), state.arch_gradients
        state.arch_gradients = False
        measured: dict[tuple, float] = {}

        def measure(arch: dict[str, Any]) -> float:
            key = tuple((label, _key(value)) for label, value in sorted(arch.items()))
            if key not in measured:
                state.set_arch(arch)
                measured[key] = float(count_macs(supernet, example))
            return measured[key]

        try:
            self.base = 0.0 if latency_table is not None else measure(reference)
            for label, choice in space.choices.items():
                if latency_table is not None and label not in latency_table:
                    continue
                given = list(dict.fromkeys(c.label for occ in space.occurrences[label] for c in occ.conditions
                                           if c.label != label))
                values = state.alpha_values(label) if choice.kind == "input_choice" else choice.options

                def change(at: dict[str, Any], label: str = label, values: list[Any] = values) -> dict[Any, float]:
                    if latency_table is not None:
                        return {_key(v): float(t) for v, t in latency_table[label].items()}
                    start = measure(at)
                    return {_key(v): measure({**at, label: v}) - start for v in values}

                # a label used once changes the cost alike wherever it is switched on: measure it at the
                # reference only; a label shared by several blocks changes as many blocks as the depth runs
                once = change(reference) if len(space.occurrences[label]) == 1 and \
                    space.is_active(label, reference) else None
                rows: dict[tuple, dict[Any, float]] = {}
                for setting in itertools.product(*(space.choices[g].options for g in given)):
                    at = {**reference, **dict(zip(given, setting))}
                    if space.is_active(label, at):
                        rows[_key(setting)] = once if once is not None else change(at)
                self.given[label], self.delta[label] = given, rows
        finally:
            state.set_arch(saved[0])
            state.arch_gradients = saved[1]

    def cost(self, arch: Mapping[str, Any]) -> float:
        """The modelled cost of ``arch`` (multiply-adds, or the latency table's unit)."""
        total = self.base
        for label, rows in self.delta.items():
            row = rows.get(_key(tuple(arch[g] for g in self.given[label])), {})
            total += row.get(_key(arch[label]), 0.0)
        return total

    def expected(self, probs: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Expected cost (formula in the class docstring), differentiable in the probabilities.

        ``probs``: ``{label: probabilities over state.alpha_values(label)}``; by default the
        softmax of each label's architecture parameters. A label without probabilities stays at
        its reference value.
        """
        if probs is None:
            probs = {label: torch.softmax(self.state.alpha_of(label), -1) for label in self.state.labels()
                     if label in self.delta}
        total: torch.Tensor | float = self.base
        for label, rows in self.delta.items():
            if label not in probs:
                continue
            p = probs[label]
            values = self.state.alpha_values(label)
            for setting, row in rows.items():
                weight = self._probability(self.given[label], setting, probs)
                costs = torch.tensor([row.get(_key(v), 0.0) for v in values], device=p.device, dtype=p.dtype)
                total = total + weight * (p * costs).sum()
        return total if isinstance(total, torch.Tensor) else torch.tensor(total)

    def _probability(self, labels: list[str], setting: tuple,
                     probs: Mapping[str, torch.Tensor]) -> torch.Tensor | float:
        """``prod_m p_m(setting_m)``: labels are independent under the architecture distribution."""
        weight: torch.Tensor | float = 1.0
        for label, value in zip(labels, setting):
            values = [_key(v) for v in self.state.alpha_values(label)] if label in probs else []
            if _key(value) in values:
                weight = weight * probs[label][values.index(_key(value))]
            elif _key(value) != _key(self.reference[label]):
                return 0.0
        return weight

    def cheapest(self) -> dict[str, Any]:
        """The value of each label with the lowest cost at the reference (ties: the first)."""
        arch = {}
        for label, rows in self.delta.items():
            row = rows.get(_key(tuple(self.reference[g] for g in self.given[label])), {})
            arch[label] = min(self.state.alpha_values(label), key=lambda v: row.get(_key(v), 0.0))
        return arch


def _key(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    return value
