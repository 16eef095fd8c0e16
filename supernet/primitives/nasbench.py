"""The cells of NAS-Bench-101 and NAS-Bench-201."""

from __future__ import annotations

import functools
import operator
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch import nn

from supernet.context import auto_label, label_namespace
from supernet.primitives.base import Choice, Condition, FixableMeta, Mutable, cell_repr, lookup_fixed, span
from supernet.primitives.input_choice import input_options
from supernet.primitives.layer_choice import LayerChoice, _chosen_name

__all__ = ["FixedNasBench101Cell", "NasBench101Cell", "NasBench201Cell"]


def _named_factories(op_candidates: Any, what: str) -> OrderedDict:
    if isinstance(op_candidates, Mapping):
        named = OrderedDict((str(k), v) for k, v in op_candidates.items())
    elif isinstance(op_candidates, (list, tuple)):
        named = OrderedDict((str(i), v) for i, v in enumerate(op_candidates))
    else:
        raise TypeError(f"{what}: op_candidates must be a list or dict of factories, "
                        f"got {type(op_candidates).__name__}")
    if not named:
        raise ValueError(f"{what}: op_candidates must not be empty")
    for name, factory in named.items():
        if not callable(factory) or isinstance(factory, nn.Module):
            raise TypeError(f"{what}: op candidate {name!r} must be a factory returning a module")
    return named


# ---------------------------------------------------------------------------------------------
# NAS-Bench-201
# ---------------------------------------------------------------------------------------------
class _DenseCellForward(nn.Module):
    layers: nn.ModuleList

    def forward(self, x: Any) -> Any:
        tensors = [x]
        for node_ops in self.layers:
            total = None
            for j, op in enumerate(node_ops):
                out = op(tensors[j])
                total = out if total is None else total + out
            tensors.append(total)
        return tensors[-1]


class FixedNasBench201Cell(_DenseCellForward):
    """A frozen NAS-Bench-201 cell: one fixed operation per edge."""

    def __init__(self, layers: Sequence[Sequence[nn.Module]]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleList(ops) for ops in layers)


class NasBench201Cell(Mutable, _DenseCellForward, metaclass=FixableMeta):
    """A densely connected DAG of ``num_tensors`` nodes; each edge j -> i picks one operation.

    ``op_candidates`` are factories ``(in_features, out_features) -> module``. The edge
    labels are ``{label}/{j}_{i}``; the space has ``len(ops) ** (N (N - 1) / 2)`` cells.
    """

    def __init__(self, op_candidates: Any, in_features: int, out_features: int, num_tensors: int = 4,
                 label: str | None = None) -> None:
        super().__init__()
        self.label = auto_label("nasbench201_cell", label)
        factories = _named_factories(op_candidates, f"NasBench201Cell {self.label!r}")
        _check_tensors(num_tensors, self.label)
        self.layers = nn.ModuleList()
        for i in range(1, num_tensors):
            node_ops = nn.ModuleList()
            for j in range(i):
                features = in_features if j == 0 else out_features
                with label_namespace(f"{self.label}/{j}_{i}"):
                    ops = OrderedDict((n, f(features, out_features)) for n, f in factories.items())
                node_ops.append(LayerChoice(ops, label=f"{self.label}/{j}_{i}"))
            self.layers.append(node_ops)

    @classmethod
    def create_fixed(cls, fixed: Mapping[str, Any], op_candidates: Any, in_features: int, out_features: int,
                     num_tensors: int = 4, label: str | None = None) -> FixedNasBench201Cell:
        label = auto_label("nasbench201_cell", label)
        factories = _named_factories(op_candidates, f"NasBench201Cell {label!r}")
        _check_tensors(num_tensors, label)
        layers = []
        for i in range(1, num_tensors):
            node_ops = []
            for j in range(i):
                name = _chosen_name(fixed, f"{label}/{j}_{i}", list(factories))
                with label_namespace(f"{label}/{j}_{i}"):
                    node_ops.append(factories[name](in_features if j == 0 else out_features, out_features))
            layers.append(node_ops)
        return FixedNasBench201Cell(layers)

    def freeze(self, arch: Mapping[str, Any]) -> FixedNasBench201Cell:
        return FixedNasBench201Cell([[choice.freeze(arch) for choice in node_ops] for node_ops in self.layers])

    def extra_repr(self) -> str:
        return f"label={self.label!r}"

    def __repr__(self) -> str:
        """The edge decisions in one line, not one LayerChoice per edge."""
        choices = [c for node_ops in self.layers for c in node_ops]
        ops = repr(choices[0]).split("candidates=", 1)[1][:-1]
        return cell_repr(self, [self.extra_repr(), f"ops: {span([c.label for c in choices])}, each one of {ops}"])


def _check_tensors(num_tensors: int, label: str) -> None:
    if not isinstance(num_tensors, int) or num_tensors < 2:
        raise ValueError(f"NasBench201Cell {label!r}: num_tensors must be an int >= 2, got {num_tensors!r}")


# ---------------------------------------------------------------------------------------------
# NAS-Bench-101
# ---------------------------------------------------------------------------------------------
def _output_channels_split(out_features: int, num_outputs: int) -> list[int]:
    base = out_features // num_outputs
    return [base + (1 if i < out_features % num_outputs else 0) for i in range(num_outputs)]


def prune_graph(num_nodes: int, inputs: Mapping[int, Sequence[int]]) -> tuple[set[int], bool]:
    """Nodes on some path from the input (0) to the output (num_nodes - 1), and whether one exists."""
    forward = {0}
    for node in range(1, num_nodes):
        if any(i in forward for i in inputs[node]):
            forward.add(node)
    backward = {num_nodes - 1}
    for node in range(num_nodes - 1, 0, -1):
        if node in backward:
            backward.update(inputs[node])
    alive = forward & backward
    return alive, (num_nodes - 1) in alive


class FixedNasBench101Cell(nn.Module):
    """A frozen NAS-Bench-101 cell: the pruned DAG with channels split as in the benchmark."""

    def __init__(self, in_features: int, out_features: int,
                 projection: Callable[[int, int], nn.Module], num_nodes: int,
                 node_ops: Mapping[int, str], inputs: Mapping[int, Sequence[int]],
                 op_factories: Mapping[str, Callable[[int], nn.Module]]) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.inputs, channels = self.plan(num_nodes, inputs, out_features)
        out = num_nodes - 1
        self.projections = nn.ModuleDict()
        self.ops = nn.ModuleDict()
        for node in sorted(self.inputs):
            if node == out:
                continue
            if 0 in self.inputs[node]:
                self.projections[str(node)] = projection(in_features, channels[node])
            self.ops[str(node)] = op_factories[node_ops[node]](channels[node])
        if 0 in self.inputs[out]:
            self.projections[str(out)] = projection(in_features, out_features)
        self.channels = channels

    @staticmethod
    def plan(num_nodes: int, inputs: Mapping[int, Sequence[int]], out_features: int
             ) -> tuple[dict[int, list[int]], dict[int, int]]:
        """The pruned inputs of every live node and the channels of every hidden node.

        The nodes feeding the output split its channels; every other hidden node gets the
        largest width among the nodes it feeds (inputs wider than a node are truncated).
        """
        alive, _ = prune_graph(num_nodes, inputs)
        out = num_nodes - 1
        live = {n: [i for i in inputs[n] if i in alive] for n in range(1, num_nodes) if n in alive}
        feeding_output = [n for n in live[out] if n != 0]
        channels = dict(zip(feeding_output, _output_channels_split(out_features, max(len(feeding_output), 1))))
        for node in range(out - 1, 0, -1):
            if node in alive and node not in channels:
                consumers = [c for c in live if node in live[c] and c != out]
                channels[node] = max((channels[c] for c in consumers), default=out_features)
        return live, channels

    def forward(self, x: Any) -> Any:
        import torch

        out = self.num_nodes - 1
        tensors: dict[int, Any] = {0: x}
        for node in sorted(self.inputs):
            if node == out:
                continue
            total = None
            for i in self.inputs[node]:
                t = self.projections[str(node)](x) if i == 0 else tensors[i][:, : self.channels[node]]
                total = t if total is None else total + t
            tensors[node] = self.ops[str(node)](total)
        hidden = [tensors[i] for i in self.inputs[out] if i != 0]
        result = torch.cat(hidden, dim=1) if hidden else None
        if 0 in self.inputs[out]:
            projected = self.projections[str(out)](x)
            result = projected if result is None else result + projected
        return result


class NasBench101Cell(Mutable, nn.Module, metaclass=FixableMeta):
    """A NAS-Bench-101 cell: any DAG on at most ``max_num_nodes`` nodes (IN and OUT included)
    with at most ``max_num_edges`` edges; each hidden node applies one of ``op_candidates``.

    ``op_candidates`` are factories ``num_features -> module``; ``projection`` is a factory
    ``(in_features, out_features) -> module`` applied to the cell input. Labels:
    ``{label}/num_nodes``, ``{label}/op{i}`` (hidden nodes) and ``{label}/input{i}`` (the
    nodes feeding node i; the output node is node ``num_nodes - 1``). Graphs whose output
    is not reachable from the input are invalid.
    """

    def __init__(self, op_candidates: Any, in_features: int, out_features: int,
                 projection: Callable[[int, int], nn.Module], max_num_nodes: int = 7, max_num_edges: int = 9,
                 label: str | None = None) -> None:
        super().__init__()
        self.label = auto_label("nasbench101_cell", label)
        self.op_factories = _named_factories(op_candidates, f"NasBench101Cell {self.label!r}")
        _check_101(max_num_nodes, max_num_edges, self.label)
        self.in_features, self.out_features, self.projection = in_features, out_features, projection
        self.max_num_nodes, self.max_num_edges = max_num_nodes, max_num_edges
        default = {c.label: c.default for c in self.decisions()}
        with label_namespace(self.label):
            self.default_cell = self._build(default)

    @classmethod
    def create_fixed(cls, fixed: Mapping[str, Any], op_candidates: Any, in_features: int, out_features: int,
                     projection: Callable[[int, int], nn.Module], max_num_nodes: int = 7, max_num_edges: int = 9,
                     label: str | None = None) -> FixedNasBench101Cell:
        with label_namespace("fixed"):  # a scratch space only to read the decisions and check the arch
            space = cls.__new__(cls)
            nn.Module.__init__(space)
        space.label = auto_label("nasbench101_cell", label)
        space.op_factories = _named_factories(op_candidates, f"NasBench101Cell {space.label!r}")
        _check_101(max_num_nodes, max_num_edges, space.label)
        space.in_features, space.out_features, space.projection = in_features, out_features, projection
        space.max_num_nodes, space.max_num_edges = max_num_nodes, max_num_edges
        arch = {c.label: fixed[c.label] for c in space.decisions() if c.label in fixed}
        space.check(arch)
        with label_namespace(space.label):
            return space._build(arch)

    def _num_nodes_label(self) -> str:
        return f"{self.label}/num_nodes"

    def decisions(self) -> list[Choice]:
        ops = list(self.op_factories)
        choices = [Choice(self._num_nodes_label(), "value_choice", list(range(2, self.max_num_nodes + 1)))]
        choices += [Choice(f"{self.label}/op{i}", "layer_choice", ops) for i in range(1, self.max_num_nodes - 1)]
        choices += [Choice(f"{self.label}/input{i}", "input_choice", _inputs_default_first(i),
                           n_candidates=i, n_chosen=None) for i in range(1, self.max_num_nodes)]
        return choices

    def conditional_children(self) -> Iterator[tuple[str, nn.Module, list[Condition]]]:
        return iter(())  # the default cell holds no choices

    def decision_conditions(self) -> dict[str, Condition]:
        """Which of this cell's labels matter, as conditions on the number of nodes."""
        n = self._num_nodes_label()
        # partial(le, k)(v) is k <= v (a partial, not a lambda, so that a supernet's state pickles)
        conditions = {f"{self.label}/op{i}": Condition(n, functools.partial(operator.le, i + 2),
                                                       f"num_nodes >= {i + 2}")
                      for i in range(1, self.max_num_nodes - 1)}
        conditions.update({f"{self.label}/input{i}": Condition(n, functools.partial(operator.le, i + 1),
                                                               f"num_nodes >= {i + 1}")
                           for i in range(1, self.max_num_nodes)})
        return conditions

    def _graph(self, arch: Mapping[str, Any]) -> tuple[int, dict[int, str], dict[int, list[int]]]:
        num_nodes = lookup_fixed(arch, self._num_nodes_label(), range(2, self.max_num_nodes + 1))
        ops = {i: _chosen_name(arch, f"{self.label}/op{i}", list(self.op_factories)) for i in range(1, num_nodes - 1)}
        inputs = {i: list(lookup_fixed(arch, f"{self.label}/input{i}", input_options(i, None)))
                  for i in range(1, num_nodes)}
        return num_nodes, ops, inputs

    def check(self, arch: Mapping[str, Any]) -> None:
        num_nodes, _, inputs = self._graph(arch)
        edges = sum(len(v) for v in inputs.values())
        if edges > self.max_num_edges:
            raise ValueError(f"NasBench101Cell {self.label!r}: the architecture has {edges} edges, "
                             f"more than max_num_edges={self.max_num_edges}")
        if not prune_graph(num_nodes, inputs)[1]:
            raise ValueError(f"NasBench101Cell {self.label!r}: the output node is not reachable from the input "
                             f"in {inputs}")

    def count(self) -> int:
        return _count_nasbench101(len(self.op_factories), self.max_num_nodes, self.max_num_edges)

    def _build(self, arch: Mapping[str, Any]) -> FixedNasBench101Cell:
        num_nodes, ops, inputs = self._graph(arch)
        return FixedNasBench101Cell(self.in_features, self.out_features, self.projection, num_nodes, ops,
                                    inputs, self.op_factories)

    def forward(self, x: Any) -> Any:
        return self.default_cell(x)

    def freeze(self, arch: Mapping[str, Any]) -> FixedNasBench101Cell:
        self.check(arch)
        with label_namespace(self.label):
            return self._build(arch)

    def extra_repr(self) -> str:
        return (f"ops={list(self.op_factories)}, max_num_nodes={self.max_num_nodes}, "
                f"max_num_edges={self.max_num_edges}, label={self.label!r}")

    def __repr__(self) -> str:
        """Its decisions in one line; the per-node operators (of a one-shot cell) counted, not listed."""
        return cell_repr(self, [self.extra_repr(), f"decisions: {span([c.label for c in self.decisions()])}"])


def _inputs_default_first(n: int) -> list[list[int]]:
    # default: only the previous node, so the default cell is a chain
    options = input_options(n, None)
    options.remove([n - 1])
    return [[n - 1], *options]


def _check_101(max_num_nodes: int, max_num_edges: int, label: str) -> None:
    if not isinstance(max_num_nodes, int) or max_num_nodes < 2:
        raise ValueError(f"NasBench101Cell {label!r}: max_num_nodes must be an int >= 2, got {max_num_nodes!r}")
    if not isinstance(max_num_edges, int) or max_num_edges < 1:
        raise ValueError(f"NasBench101Cell {label!r}: max_num_edges must be a positive int, got {max_num_edges!r}")


@functools.cache
def _count_nasbench101(num_ops: int, max_num_nodes: int, max_num_edges: int) -> int:
    """Valid settings of a cell's active labels: DAGs with a path IN -> OUT and few enough edges.

    Dynamic programming over nodes in order; the state is (nodes reachable from IN, edges used).
    """
    total = 0
    for n in range(2, max_num_nodes + 1):
        states: Counter[tuple[int, int]] = Counter({(1, 0): 1})  # node 0 reachable, no edges
        for node in range(1, n):
            following: Counter[tuple[int, int]] = Counter()
            for (reachable, edges), ways in states.items():
                for subset in range(1 << node):
                    used = edges + subset.bit_count()
                    if used > max_num_edges:
                        continue
                    reach = reachable | (1 << node) if subset & reachable else reachable
                    following[(reach, used)] += ways
            states = following
        graphs = sum(ways for (reachable, _), ways in states.items() if reachable >> (n - 1) & 1)
        total += graphs * num_ops ** (n - 2)
    return total
