"""Cell: the DAG of nodes used by NASNet-style spaces (DARTS, ENAS, AmoebaNet, PNAS, ...).

Each of ``num_nodes`` nodes sums ``num_ops_per_node`` operators; each operator is a
LayerChoice over ``op_candidates`` applied to one input, chosen by an InputChoice from
the predecessors and earlier nodes. Labels follow the node index counted with the
predecessors first: ``{label}/op_{i}_{k}`` and ``{label}/input_{i}_{k}``.
"""

from __future__ import annotations

import copy
import inspect
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from supernet.context import auto_label, label_namespace
from supernet.primitives.base import FixableMeta, Mutable, cell_repr, lookup_fixed, span
from supernet.primitives.input_choice import InputChoice, input_options
from supernet.primitives.layer_choice import LayerChoice, _chosen_name

__all__ = ["Cell", "FixedCell", "OpFactory"]

OpFactory = Callable[[int, int, "int | None"], OrderedDict]
MERGE_OPS = ("all", "loose_end")


def _call_with_indices(fn: Callable[..., Any], node_index: int, op_index: int, input_index: int | None) -> Any:
    """Call ``fn`` with as many of (node_index, op_index, input_index) as it takes."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        params = []
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return fn(node_index, op_index, input_index)
    return fn(*(node_index, op_index, input_index)[: len(params)])


def _named(candidates: Any, label: str) -> OrderedDict:
    if isinstance(candidates, Mapping):
        return OrderedDict((str(k), v) for k, v in candidates.items())
    if isinstance(candidates, (list, tuple)):
        return OrderedDict((str(i), c) for i, c in enumerate(candidates))
    raise TypeError(f"Cell {label!r}: op_candidates must be a list, a dict or a factory, "
                    f"got {type(candidates).__name__}")


def make_op_factory(op_candidates: Any, label: str) -> tuple[list[str], Callable[..., nn.Module]]:
    """Candidate names and ``build(name, node_index, op_index, input_index) -> module``."""
    whole_factory = callable(op_candidates) and not isinstance(op_candidates, nn.Module)
    named = _named(_call_with_indices(op_candidates, 0, 0, None) if whole_factory else op_candidates, label)
    if not named:
        raise ValueError(f"Cell {label!r}: op_candidates must not be empty")
    return list(named), _BuildOp(op_candidates, named, whole_factory, label)


class _BuildOp:
    """A cell's ``build(name, node_index, op_index, input_index) -> module`` (an object, not a closure, so that
    a cell that keeps it pickles whenever its candidates do)."""

    def __init__(self, op_candidates: Any, named: OrderedDict, whole_factory: bool, label: str) -> None:
        self.op_candidates, self.named, self.whole_factory, self.label = op_candidates, named, whole_factory, label

    def __call__(self, name: str, node_index: int, op_index: int, input_index: int | None) -> nn.Module:
        with label_namespace(f"{self.label}/op_{node_index}_{op_index}/{name}"):
            if self.whole_factory:
                candidates = _named(_call_with_indices(self.op_candidates, node_index, op_index, input_index),
                                    self.label)
                op = candidates[name]
            else:
                op = self.named[name]
            if isinstance(op, nn.Module):
                return copy.deepcopy(op)
            module = _call_with_indices(op, node_index, op_index, input_index)
        if not isinstance(module, nn.Module):
            raise TypeError(f"Cell {self.label!r}: op candidate {name!r} built a {type(module).__name__}, "
                            "not a module")
        return module


def _validate(num_nodes: int, num_ops_per_node: int, num_predecessors: int, merge_op: str, label: str) -> None:
    for name, value in [("num_nodes", num_nodes), ("num_ops_per_node", num_ops_per_node),
                        ("num_predecessors", num_predecessors)]:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Cell {label!r}: {name} must be a positive int, got {value!r}")
    if merge_op not in MERGE_OPS:
        raise ValueError(f"Cell {label!r}: merge_op must be one of {list(MERGE_OPS)}, got {merge_op!r}")


def _as_module(fn: Any) -> Any:
    return fn if fn is None or isinstance(fn, nn.Module) else _Callable(fn)


class _Callable(nn.Module):
    """Holds a plain callable (a pre/post-processor that is not a module)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def _predecessor_list(inputs: tuple[Any, ...], num_predecessors: int) -> list[Any]:
    if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
        inputs = tuple(inputs[0])
    if len(inputs) != num_predecessors:
        raise ValueError(f"the cell expects {num_predecessors} input tensors, got {len(inputs)}")
    return list(inputs)


class _CellForward(nn.Module):
    """The forward pass shared by the space's Cell and the frozen FixedCell."""

    num_predecessors: int
    concat_dim: int
    output_node_indices: list[int]
    preprocessor: nn.Module | None
    postprocessor: nn.Module | None

    def _op(self, node: int, slot: int) -> nn.Module:
        raise NotImplementedError

    def _input(self, node: int, slot: int, states: list[Any]) -> Any:
        raise NotImplementedError

    def forward(self, *inputs: Any) -> Any:
        predecessors = _predecessor_list(inputs, self.num_predecessors)
        states = list(self.preprocessor(predecessors)) if self.preprocessor is not None else list(predecessors)
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            total = None
            for slot in range(self.num_ops_per_node):
                out = self._op(node, slot)(self._input(node, slot, states))
                total = out if total is None else total + out
            states.append(total)
        output = torch.cat([states[i] for i in self.output_node_indices], dim=self.concat_dim)
        if self.postprocessor is not None:
            return self.postprocessor(output, predecessors)
        return output


class Cell(Mutable, _CellForward, metaclass=FixableMeta):
    """A NAS cell (see the module docstring); arguments as in the reference API.

    ``op_candidates``: a list or dict of modules (copied for each operator) or of factories
    ``(node_index, op_index, input_index) -> module`` (fewer parameters are fine; the
    input index is None in the space and the chosen input once frozen), or one factory
    returning such a list/dict. ``merge_op='loose_end'`` concatenates only the nodes no
    operator uses; the space itself uses all nodes.
    """

    def __init__(self, op_candidates: Any, num_nodes: int, num_ops_per_node: int = 1, num_predecessors: int = 1,
                 merge_op: str = "all", preprocessor: Callable | None = None,
                 postprocessor: Callable | None = None, concat_dim: int = 1, *, label: str | None = None) -> None:
        super().__init__()
        self.label = auto_label("cell", label)
        _validate(num_nodes, num_ops_per_node, num_predecessors, merge_op, self.label)
        self.num_nodes, self.num_ops_per_node, self.num_predecessors = num_nodes, num_ops_per_node, num_predecessors
        self.merge_op, self.concat_dim = merge_op, concat_dim
        self.op_names, self.op_factory = make_op_factory(op_candidates, self.label)
        self.ops = nn.ModuleList()
        self.inputs = nn.ModuleList()
        for node in range(num_predecessors, num_predecessors + num_nodes):
            self.ops.append(nn.ModuleList([
                LayerChoice(OrderedDict((name, self.op_factory(name, node, k, None)) for name in self.op_names),
                            label=f"{self.label}/op_{node}_{k}")
                for k in range(num_ops_per_node)]))
            self.inputs.append(nn.ModuleList([
                InputChoice(node, 1, label=f"{self.label}/input_{node}_{k}") for k in range(num_ops_per_node)]))
        self.preprocessor = _as_module(preprocessor)
        self.postprocessor = _as_module(postprocessor)
        self.output_node_indices = list(range(num_predecessors, num_predecessors + num_nodes))

    @classmethod
    def create_fixed(cls, fixed: Mapping[str, Any], op_candidates: Any, num_nodes: int, num_ops_per_node: int = 1,
                     num_predecessors: int = 1, merge_op: str = "all", preprocessor: Callable | None = None,
                     postprocessor: Callable | None = None, concat_dim: int = 1, *,
                     label: str | None = None) -> FixedCell:
        label = auto_label("cell", label)
        _validate(num_nodes, num_ops_per_node, num_predecessors, merge_op, label)
        names, build = make_op_factory(op_candidates, label)
        ops, inputs = [], []
        for node in range(num_predecessors, num_predecessors + num_nodes):
            node_ops, node_inputs = [], []
            for k in range(num_ops_per_node):
                name = _chosen_name(fixed, f"{label}/op_{node}_{k}", names)
                (index,) = lookup_fixed(fixed, f"{label}/input_{node}_{k}", input_options(node, 1))
                node_ops.append(build(name, node, k, index))
                node_inputs.append(index)
            ops.append(node_ops)
            inputs.append(node_inputs)
        return FixedCell(ops, inputs, num_predecessors, merge_op, _as_module(preprocessor),
                         _as_module(postprocessor), concat_dim)

    def _op(self, node: int, slot: int) -> nn.Module:
        return self.ops[node - self.num_predecessors][slot]

    def _input(self, node: int, slot: int, states: list[Any]) -> Any:
        return self.inputs[node - self.num_predecessors][slot](states)

    def freeze(self, arch: Mapping[str, Any]) -> FixedCell:
        ops, inputs = [], []
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            node_ops, node_inputs = [], []
            for k in range(self.num_ops_per_node):
                choice = self._op(node, k)
                name = _chosen_name(arch, choice.label, choice.names)
                (index,) = lookup_fixed(arch, f"{self.label}/input_{node}_{k}", input_options(node, 1))
                # rebuild with the real input index (a factory may depend on it), keeping trained weights
                op = self.op_factory(name, node, k, index)
                _copy_matching(choice[name], op)
                node_ops.append(op)
                node_inputs.append(index)
            ops.append(node_ops)
            inputs.append(node_inputs)
        return FixedCell(ops, inputs, self.num_predecessors, self.merge_op, self.preprocessor,
                         self.postprocessor, self.concat_dim)

    def extra_repr(self) -> str:
        return (f"num_nodes={self.num_nodes}, num_ops_per_node={self.num_ops_per_node}, "
                f"num_predecessors={self.num_predecessors}, merge_op={self.merge_op!r}, label={self.label!r}")

    def __repr__(self) -> str:
        """The operator and input decisions in two lines, not one LayerChoice per edge; the pre- and
        postprocessor in full."""
        slots = [(node, k) for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes)
                 for k in range(self.num_ops_per_node)]
        extra = [self.extra_repr(),
                 f"ops: {span([f'{self.label}/op_{n}_{k}' for n, k in slots])}, each one of {self.op_names}",
                 f"inputs: {span([f'{self.label}/input_{n}_{k}' for n, k in slots])}"]
        return cell_repr(self, extra)


def _copy_matching(source: nn.Module, target: nn.Module) -> None:
    state = target.state_dict()
    matching = {k: v for k, v in source.state_dict().items() if k in state and state[k].shape == v.shape}
    if len(matching) == len(state):
        target.load_state_dict(matching)
    elif matching:
        target.load_state_dict(matching, strict=False)


class FixedCell(_CellForward):
    """A frozen cell: fixed operators and input indices, no choices left."""

    def __init__(self, ops: Sequence[Sequence[nn.Module]], input_indices: Sequence[Sequence[int]],
                 num_predecessors: int, merge_op: str = "all", preprocessor: nn.Module | None = None,
                 postprocessor: nn.Module | None = None, concat_dim: int = 1) -> None:
        super().__init__()
        self.num_predecessors = num_predecessors
        self.num_nodes = len(ops)
        self.num_ops_per_node = len(ops[0]) if ops else 0
        self.ops = nn.ModuleList(nn.ModuleList(node_ops) for node_ops in ops)
        self.input_indices = [list(i) for i in input_indices]
        self.merge_op = merge_op
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.concat_dim = concat_dim
        nodes = range(num_predecessors, num_predecessors + self.num_nodes)
        used = {i for node_inputs in self.input_indices for i in node_inputs}
        self.output_node_indices = [n for n in nodes if merge_op == "all" or n not in used]

    def _op(self, node: int, slot: int) -> nn.Module:
        return self.ops[node - self.num_predecessors][slot]

    def _input(self, node: int, slot: int, states: list[Any]) -> Any:
        return states[self.input_indices[node - self.num_predecessors][slot]]

    def extra_repr(self) -> str:
        return f"inputs={self.input_indices}, output_node_indices={self.output_node_indices}"
