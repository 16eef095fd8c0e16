"""NAS-Bench-101 cells in a supernet: one pool of weights sliced to each cell's graph.

A NAS-Bench-101 cell's channels depend on its graph (the output's channels are split
among the nodes feeding it), so the supernet keeps, for every hidden node, each
candidate operation at the full ``out_features`` width, and every projection at full
width. A sampled cell computes with the leading slices its channels need (the same
slices a weight-inheriting freeze copies), through ``torch.func.functional_call`` on a
template of the operation built at the right width on the meta device.

The differentiable cell mixes every hidden node's operations (softmax weights, DARTS). The
graph itself (number of nodes, inputs of each node) fixes the channel widths, so graphs
cannot be summed: the cell runs the graph its weights currently prefer, and each edge and
the node count pass a straight-through gradient (value 1, gradient of their probability)
to their architecture weights. The binary-gate cell runs the sampled graph; each of its
labels gets the binary-gate gradient from the cell recomputed, without autograd, with that
label at its other sampled value (a value that breaks the cell's constraints contributes
nothing).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from supernet.oneshot.choices import SwappedMixedOp, _onehot, weighted_sum
from supernet.oneshot.state import ArchState
from supernet.primitives.basic_unit import copy_overlapping, slice_to
from supernet.primitives.nasbench import FixedNasBench101Cell, NasBench101Cell, prune_graph

__all__ = ["BinaryGateNasBench101Cell", "DifferentiableNasBench101Cell", "PathSamplingNasBench101Cell"]


class PathSamplingNasBench101Cell(SwappedMixedOp, NasBench101Cell):
    """Runs the sampled cell with sliced shared weights."""

    def setup(self, state: ArchState) -> None:
        del self.default_cell
        hidden = range(1, self.max_num_nodes - 1)
        self.pool = nn.ModuleDict({str(i): nn.ModuleDict({name: factory(self.out_features) for name, factory in
                                                          self.op_factories.items()}) for i in hidden})
        self.pool_projections = nn.ModuleDict({str(i): self.projection(self.in_features, self.out_features)
                                               for i in range(1, self.max_num_nodes)})
        self._templates: dict[tuple[str, int], nn.Module] = {}

    def _template(self, kind: str, channels: int) -> nn.Module:
        key = (kind, channels)
        if key not in self._templates:
            with torch.device("meta"):
                factory = self.op_factories.get(kind)
                self._templates[key] = factory(channels) if factory is not None else \
                    self.projection(self.in_features, channels)
        return self._templates[key]

    def _sliced(self, source: nn.Module, kind: str, channels: int, x: torch.Tensor) -> torch.Tensor:
        template = self._template(kind, channels)
        template.train(self.training)
        tensors = dict(source.named_parameters())
        tensors.update(source.named_buffers())
        shapes = {**dict(template.named_parameters()), **dict(template.named_buffers())}
        return functional_call(template, {k: slice_to(v, shapes[k].shape) for k, v in tensors.items()}, (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self._state.arch, x)

    def _node(self, node: int, op: str, channels: int, x: torch.Tensor) -> torch.Tensor:
        return self._sliced(self.pool[str(node)][op], op, channels, x)

    def _edge(self, node: int, source: int, t: torch.Tensor) -> torch.Tensor:
        return t

    def _run(self, arch: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        num_nodes, ops, inputs = self._graph(arch)
        live, channels = FixedNasBench101Cell.plan(num_nodes, inputs, self.out_features)
        out = num_nodes - 1
        tensors: dict[int, torch.Tensor] = {0: x}
        for node in sorted(live):
            if node == out:
                continue
            c = channels[node]
            total = None
            for i in live[node]:
                t = self._sliced(self.pool_projections[str(node)], "<projection>", c, x) if i == 0 \
                    else tensors[i][:, :c]
                t = self._edge(node, i, t)
                total = t if total is None else total + t
            tensors[node] = self._node(node, ops[node], c, total)
        hidden = [self._edge(out, i, tensors[i]) for i in live[out] if i != 0]
        result = torch.cat(hidden, dim=1) if hidden else None
        if 0 in live[out]:
            projected = self._sliced(self.pool_projections[str(out)], "<projection>", self.out_features, x)
            projected = self._edge(out, 0, projected)
            result = projected if result is None else result + projected
        return result

    def freeze(self, arch: dict[str, Any]) -> FixedNasBench101Cell:
        fixed = NasBench101Cell.freeze(self, arch)
        num_nodes, ops, _ = self._graph(arch)
        for name, module in fixed.projections.items():
            copy_overlapping(self.pool_projections[name], module)
        for name, module in fixed.ops.items():
            copy_overlapping(self.pool[name][ops[int(name)]], module)
        return fixed


def _straight_through(p: torch.Tensor) -> torch.Tensor:
    """1 in value, the gradient of ``p`` in the backward pass."""
    return p / p.detach()


class DifferentiableNasBench101Cell(PathSamplingNasBench101Cell):
    """Softmax-mixed operations on the preferred graph; straight-through gradients for the graph."""

    def setup(self, state: ArchState) -> None:
        super().setup(state)
        state.add_alpha(self._num_nodes_label(), self.max_num_nodes - 1)
        for i in range(1, self.max_num_nodes - 1):
            state.add_alpha(f"{self.label}/op{i}", len(self.op_factories))
        for i in range(1, self.max_num_nodes):
            state.add_alpha(f"{self.label}/input{i}", i)

    def preferred_graph(self) -> dict[str, Any]:
        """The graph the weights prefer: the likeliest node count; per node the inputs whose gate is
        above 1/2 (at least the strongest one); the weakest edges dropped beyond ``max_num_edges``.
        Every node keeps an input, so the output is always reachable."""
        state = self._state
        num_nodes = 2 + int(state.alpha_of(self._num_nodes_label()).detach().argmax())
        arch: dict[str, Any] = {self._num_nodes_label(): num_nodes}
        edges: list[tuple[float, int, int]] = []
        for node in range(1, self.max_num_nodes):
            alpha = state.alpha_of(f"{self.label}/input{node}").detach()
            chosen = [i for i in range(node) if float(alpha[i]) > 0] or [int(alpha.argmax())]
            arch[f"{self.label}/input{node}"] = chosen
            if node < num_nodes:
                edges += [(float(alpha[i]), node, i) for i in chosen]
        for _, node, source in sorted(edges)[: max(0, len(edges) - self.max_num_edges)]:
            inputs = arch[f"{self.label}/input{node}"]
            if len(inputs) > 1:
                inputs.remove(source)
        for i in range(1, self.max_num_nodes - 1):
            alpha = state.alpha_of(f"{self.label}/op{i}").detach()
            arch[f"{self.label}/op{i}"] = list(self.op_factories)[int(alpha.argmax())]
        return arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self._state
        arch = state.pinned if state.pinned is not None else self.preferred_graph()
        result = self._run(arch, x)
        if state.pinned is None:
            num_nodes = arch[self._num_nodes_label()]
            result = result * _straight_through(state.weights(self._num_nodes_label())[num_nodes - 2])
        return result

    def _node(self, node: int, op: str, channels: int, x: torch.Tensor) -> torch.Tensor:
        state = self._state
        names = list(self.op_factories)
        label = f"{self.label}/op{node}"
        if state.pinned is not None:
            weights, exact = _onehot(names, state.pinned[label], state.alpha_of(label)), True
        else:
            weights, exact = state.weights(label), False
        return weighted_sum(weights, lambda i: self._sliced(self.pool[str(node)][names[i]], names[i], channels, x),
                            len(names), exact)

    def _edge(self, node: int, source: int, t: torch.Tensor) -> torch.Tensor:
        state = self._state
        if state.pinned is not None:
            return t
        gate = torch.sigmoid(state.alpha_of(f"{self.label}/input{node}")[source] / state.temperature)
        return t * _straight_through(gate)

    def export_arch(self) -> dict[str, Any]:
        return self.preferred_graph()


class BinaryGateNasBench101Cell(PathSamplingNasBench101Cell):
    """The sampled graph runs; every label of the cell gets the binary-gate gradient (ProxylessNAS)."""

    def setup(self, state: ArchState) -> None:
        super().setup(state)
        for choice in self.decisions():
            state.add_alpha(choice.label, len(state.alpha_values(choice.label)))

    def _valid(self, arch: dict[str, Any]) -> bool:
        num_nodes, _, inputs = self._graph(arch)
        return sum(len(v) for v in inputs.values()) <= self.max_num_edges and prune_graph(num_nodes, inputs)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self._state
        arch = dict(state.arch)
        output = self._run(arch, x)

        def other(label: str, value: Any) -> torch.Tensor:
            changed = {**arch, label: value}
            return self._run(changed, x) if self._valid(changed) else torch.zeros_like(output)

        return state.gates([choice.label for choice in self.decisions()], output, other)

    def export_arch(self) -> dict[str, Any]:
        """The likeliest value of every label; per node the likeliest non-empty input set that leaves
        an edge for each later node within ``max_num_edges``."""
        state = self._state

        def ranked(label: str) -> list[Any]:
            alpha = state.alpha_of(label).detach()
            values = state.alpha_values(label)
            return [values[int(i)] for i in torch.argsort(alpha, descending=True, stable=True)]

        num_nodes = ranked(self._num_nodes_label())[0]
        arch: dict[str, Any] = {self._num_nodes_label(): num_nodes}
        for i in range(1, self.max_num_nodes - 1):
            arch[f"{self.label}/op{i}"] = ranked(f"{self.label}/op{i}")[0]
        edges = 0
        for node in range(1, self.max_num_nodes):
            label = f"{self.label}/input{node}"
            if node >= num_nodes:
                arch[label] = ranked(label)[0]
                continue
            budget = self.max_num_edges - edges - (num_nodes - 1 - node)
            arch[label] = next((v for v in ranked(label) if 0 < len(v) <= budget), [node - 1])
            edges += len(arch[label])
        return arch
