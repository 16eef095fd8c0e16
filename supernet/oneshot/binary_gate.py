"""Mixed ops with binary gates (ProxylessNAS): one path runs, architecture weights get a gradient.

The algorithm samples paths with ``state.sample_binary_gates()`` (two per label for an
architecture step, as in the paper). Forward runs only the active path; in architecture
steps (``state.arch_gradients = True``) each other sampled path is evaluated during
backward, without autograd, to give the binary-gate gradient (see ``ArchState.gates``), so
memory stays close to one path's. Cells reuse the edge layout of ``cell.py``; basic units the slices
of ``entangled.py``. An architecture step needs no weight gradient: run it inside
``frozen_weights(supernet)`` so that backward computes only what reaches the gates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn

from supernet.oneshot.cell import _EdgeCell
from supernet.oneshot.choices import SwappedMixedOp
from supernet.oneshot.state import ArchState
from supernet.primitives.input_choice import InputChoice, reduce_inputs
from supernet.primitives.layer_choice import LayerChoice
from supernet.primitives.repeat import Repeat

__all__ = ["BinaryGateCell", "BinaryGateInputChoice", "BinaryGateLayerChoice", "BinaryGateRepeat", "frozen_weights"]


@contextlib.contextmanager
def frozen_weights(module: nn.Module) -> Iterator[None]:
    """``module``'s parameters stop requiring gradients inside the block (and are restored after), so
    a backward computes no weight gradient and stops at the first layer that needs none upstream:
    a binary-gate architecture step's work is the activations' gradient and the gates' products."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class _Argmax:
    _state: ArchState
    label: str

    def export_arch(self) -> dict[str, Any]:
        values = self._state.alpha_values(self.label)
        return {self.label: values[int(self._state.alpha_of(self.label).detach().argmax())]}


class BinaryGateLayerChoice(_Argmax, SwappedMixedOp, LayerChoice):
    """Runs the active candidate; the other sampled candidate only feeds the gate gradient."""

    def setup(self, state: ArchState) -> None:
        state.add_alpha(self.label, len(self))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        active = self._state.arch[self.label]
        output = self[active](*args, **kwargs)
        return self._state.gate(self.label, output, lambda name: self[name](*args, **kwargs))


class BinaryGateInputChoice(_Argmax, SwappedMixedOp, InputChoice):
    """Single-input choices with binary gates over the candidates."""

    @classmethod
    def from_primitive(cls, module: nn.Module, state: ArchState) -> nn.Module:
        from supernet.oneshot.registry import UnsupportedChoice

        if module.n_chosen != 1:  # type: ignore[attr-defined]
            raise UnsupportedChoice(f"InputChoice {module.label!r} with n_chosen={module.n_chosen!r} has no "  # type: ignore[attr-defined]
                                    "binary-gate mixed op (only n_chosen=1)")
        return super().from_primitive(module, state)

    def setup(self, state: ArchState) -> None:
        state.add_alpha(self.label, self.n_candidates)

    def forward(self, candidate_inputs: list[Any]) -> Any:
        def compute(chosen: list[int]) -> Any:
            return reduce_inputs([candidate_inputs[i] for i in chosen], self.reduction)

        return self._state.gate(self.label, compute(self._state.arch[self.label]), compute)


class BinaryGateRepeat(_Argmax, SwappedMixedOp, Repeat):
    """Runs the active depth; other sampled depths feed the gate gradient."""

    def setup(self, state: ArchState) -> None:
        if self.depth_choice is not None:
            state.add_alpha(self.label, len(state.space.choices[self.label].options))

    def forward(self, x: Any) -> Any:
        depth = self._depth_of(self._state.arch)
        outputs = [x]
        for block in self.blocks[:depth]:
            outputs.append(block(outputs[-1]))
        if self.depth_choice is None:
            return outputs[-1]

        def compute(value: int) -> Any:
            target = self.depth_choice.evaluate_with({self.label: value})
            out = outputs[min(target, depth)]
            for block in self.blocks[depth:target]:
                out = block(out)
            return out

        return self._state.gate(self.label, outputs[-1], compute)

    def export_arch(self) -> dict[str, Any]:
        return _Argmax.export_arch(self) if self.depth_choice is not None else {}


class BinaryGateCell(_EdgeCell):
    """Each operator slot runs its active candidate on its active input's edge; the other
    sampled candidate and input feed the gates of the slot's op and input labels."""

    def setup(self, state: ArchState) -> None:
        super().setup(state)
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            for k in range(self.num_ops_per_node):
                state.add_alpha(f"{self.label}/op_{node}_{k}", len(self.op_names))
                state.add_alpha(f"{self.label}/input_{node}_{k}", node)

    def node_output(self, node: int, states: list[Any]) -> Any:
        edges = self.edges[node - self.num_predecessors]
        total = None
        for k in range(self.num_ops_per_node):
            name, j = self._chosen(self._state.arch, node, k)
            op_label, input_label = f"{self.label}/op_{node}_{k}", f"{self.label}/input_{node}_{k}"

            def compute(label: str, value: Any, name: str = name, j: int = j, op_label: str = op_label,
                        inputs: tuple[Any, ...] = tuple(states)) -> Any:  # the list grows; keep what is upstream
                return edges[j][value](inputs[j]) if label == op_label else edges[value[0]][name](inputs[value[0]])

            out = self._state.gates([op_label, input_label], edges[j][name](states[j]), compute)
            total = out if total is None else total + out
        return total

    def export_arch(self) -> dict[str, Any]:
        arch: dict[str, Any] = {}
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            for k in range(self.num_ops_per_node):
                for kind in ("op", "input"):
                    label = f"{self.label}/{kind}_{node}_{k}"
                    values = self._state.alpha_values(label)
                    arch[label] = values[int(self._state.alpha_of(label).detach().argmax())]
        return arch
