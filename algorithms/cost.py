"""What an architecture costs: FLOPs (``torch.utils.flop_counter``) and parameters.

``CostModel`` measures a converted supernet on one input: the cost of the reference
architecture, and how each label's value changes it. The expected cost under the
architecture distribution is then differentiable in the architecture parameters
(ProxylessNAS's resource term); ``flops``/``params`` of a whole architecture serve SPOS's
budget. A user latency table can stand in for the FLOPs: ``{label: {value: ms}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from supernet.oneshot import ArchState

__all__ = ["CostModel", "count_flops"]


def count_flops(net: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``net`` on ``example`` (multiply-adds count as two)."""
    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(example)
    net.train(was_training)
    return int(counter.get_total_flops())


class CostModel:
    """Additive FLOPs model of a path-sampling or binary-gate supernet around a reference architecture.

    ``cost(arch) ~= base + sum_label delta[label][arch[label]]``, measured exactly for the
    reference and one label changed at a time (the reference takes every depth at its
    maximum, so the choices inside every block are measured).
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
        self.delta: dict[str, dict[Any, float]] = {}
        saved = dict(state.arch), state.arch_gradients
        state.arch_gradients = False
        try:
            if latency_table is not None:
                self.base = 0.0
                for label, table in latency_table.items():
                    if label not in space.choices:
                        raise ValueError(f"latency table label {label!r} is not in the space; labels: "
                                         f"{list(space.choices)}")
                    self.delta[label] = {_key(v): float(t) for v, t in table.items()}
            else:
                state.set_arch(reference)
                self.base = float(count_flops(supernet, example))
                for label, choice in space.choices.items():
                    values = state.alpha_values(label) if choice.kind == "input_choice" else choice.options
                    row = {}
                    for value in values:
                        if value == reference[label]:
                            row[_key(value)] = 0.0
                            continue
                        state.set_arch({**reference, label: value})
                        row[_key(value)] = count_flops(supernet, example) - self.base
                    self.delta[label] = row
        finally:
            state.set_arch(saved[0])
            state.arch_gradients = saved[1]

    def cost(self, arch: Mapping[str, Any]) -> float:
        """The modelled cost of ``arch``."""
        return self.base + sum(row.get(_key(arch[label]), 0.0) for label, row in self.delta.items())

    def expected(self) -> torch.Tensor:
        """Expected cost under the softmax of the architecture parameters (differentiable)."""
        total: torch.Tensor | float = self.base
        for label, row in self.delta.items():
            key = label.replace(".", "::")
            if key not in self.state.alpha:
                continue
            probs = torch.softmax(self.state.alpha[key], -1)
            values = self.state.alpha_values(label)
            costs = torch.tensor([row.get(_key(v), 0.0) for v in values], device=probs.device)
            total = total + (probs * costs).sum()
        return total if isinstance(total, torch.Tensor) else torch.tensor(total)

    def cheapest(self) -> dict[str, Any]:
        """The value of each label with the lowest cost (ties: the first)."""
        arch = {}
        for label, row in self.delta.items():
            values = self.state.alpha_values(label)
            arch[label] = min(values, key=lambda v: row.get(_key(v), 0.0))
        return arch


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
