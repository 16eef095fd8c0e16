"""Mixed ops of Cell: one operator per (node, input, candidate) edge, as in DARTS.

A frozen cell applies, for every operator slot, the chosen candidate to the chosen
input. The supernet therefore keeps one instance of each candidate on every edge
``j -> i`` (built with the real input index, so e.g. stride-2 ops stay on the
predecessors of a reduction cell). Path sampling runs the edges of the current
architecture; the differentiable cell mixes every edge with its own weights (labels
``{cell}/edge_{i}_{j}``, with an implicit zero operator, as in the paper) and exports
the paper's rule: the best non-zero operator per edge, the strongest edges per node.
Loose-end cells concatenate all nodes in the supernet, as one-shot methods do.

The differentiable cell does less than a plain DARTS supernet and computes the same: the
zero operator is a weight with no output; the candidates of an edge whose first layer is
a ReLU (DARTS's separable and dilated convolutions) share one ReLU of the edge's input;
each node's weighted sum over all its edges is one fused op (``_WeightedSum``) that keeps
each candidate output once, for the weights' gradient. ``set_checkpointing`` recomputes
each cell's activations in backward instead of keeping them (less memory, more time).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.checkpoint import checkpoint

from supernet.oneshot.choices import SwappedMixedOp, weighted_sum
from supernet.oneshot.state import ArchState
from supernet.primitives.base import Choice, lookup_fixed
from supernet.primitives.cell import Cell, FixedCell
from supernet.primitives.input_choice import input_options
from supernet.primitives.layer_choice import _chosen_name

__all__ = ["DifferentiableCell", "PathSamplingCell", "set_checkpointing"]


def _after_leading_relu(op: nn.Module) -> list[nn.Module] | None:
    """The layers that follow the first one when ``op`` is a plain ``nn.Sequential`` (or a chain of
    them, e.g. DARTS's SepConv and DilConv) starting with an out-of-place ``nn.ReLU`` without hooks;
    else None. Running them on ``relu(x)`` computes ``op(x)``."""
    if type(op).forward is not nn.Sequential.forward or len(op) == 0 or _has_hooks(op):
        return None
    first, rest = op[0], list(op)[1:]
    if type(first) is nn.ReLU:
        return None if first.inplace or _has_hooks(first) else rest
    inner = _after_leading_relu(first)
    return None if inner is None else inner + rest


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)


class _WeightedSum(torch.autograd.Function):
    """``sum_i weights[i] * outputs[i]`` accumulated in one buffer; it keeps each output once (for
    the weights' gradient ``<grad, outputs[i]>``) and no product or partial sum."""

    @staticmethod
    def forward(ctx: Any, weights: torch.Tensor, *outputs: torch.Tensor) -> torch.Tensor:
        total = outputs[0] * weights[0]
        for weight, output in zip(weights[1:], outputs[1:]):
            total.addcmul_(output, weight)
        ctx.save_for_backward(weights, *outputs)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weights, *outputs = ctx.saved_tensors
        grad_weights = None
        if ctx.needs_input_grad[0]:
            flat = grad.reshape(-1).float()
            grad_weights = torch.stack([torch.dot(flat, o.reshape(-1).float()) for o in outputs]).to(weights.dtype)
        grad_outputs = [grad * w if needed else None for w, needed in zip(weights, ctx.needs_input_grad[1:])]
        return (grad_weights, *grad_outputs)


@contextlib.contextmanager
def _batchnorm_stats_kept(module: nn.Module) -> Iterator[None]:
    """Restore BatchNorm running statistics afterwards: a checkpoint's recomputation must not count
    the batch a second time."""
    buffers = [b for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for b in m.buffers()]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)


def set_checkpointing(model: nn.Module, enabled: bool = True) -> int:
    """Make every differentiable cell in ``model`` keep only its inputs and recompute its activations
    in backward (``torch.utils.checkpoint``; same outputs and gradients, less memory, one more
    forward per cell). Returns how many cells were set."""
    cells = [m for m in model.modules() if isinstance(m, DifferentiableCell)]
    if not cells:
        raise ValueError("set_checkpointing: the model has no differentiable cell (convert a space with cells "
                         "to the 'differentiable' family first)")
    for cell in cells:
        cell.checkpointing = enabled
    return len(cells)


class _EdgeCell(SwappedMixedOp, Cell):
    edges: nn.ModuleList

    def setup(self, state: ArchState) -> None:
        self.edges = nn.ModuleList()
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            self.edges.append(nn.ModuleList(
                nn.ModuleDict({name: self._edge_op(name, node, j) for name in self.op_names}) for j in range(node)))
        # the per-slot LayerChoices / InputChoices are replaced by the edges; the cell declares their decisions
        self._decisions = [c for node_ops in self.ops for choice in node_ops for c in choice.decisions()] + [
            c for node_inputs in self.inputs for choice in node_inputs for c in choice.decisions()]
        del self.ops, self.inputs

    def decisions(self) -> list[Choice]:
        return self._decisions

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {k: v for k, v in state.items() if not k.endswith("_cache")}

    def _edge_op(self, name: str, node: int, input_index: int) -> nn.Module:
        return self.op_factory(name, node, 0, input_index)

    def _chosen(self, arch: dict[str, Any], node: int, slot: int) -> tuple[str, int]:
        """(operator name, input index) of a slot under ``arch`` (remembered for the last arch seen)."""
        cached = self.__dict__.get("_chosen_cache")
        if cached is None or cached[0] is not arch:
            cached = (arch, {})
            self.__dict__["_chosen_cache"] = cached
        key = (node, slot)
        if key not in cached[1]:
            name = _chosen_name(arch, f"{self.label}/op_{node}_{slot}", self.op_names)
            (index,) = lookup_fixed(arch, f"{self.label}/input_{node}_{slot}", input_options(node, 1))
            cached[1][key] = (name, index)
        return cached[1][key]

    def forward(self, *inputs: Any) -> Any:
        from supernet.primitives.cell import _predecessor_list

        predecessors = _predecessor_list(inputs, self.num_predecessors)
        states = list(self.preprocessor(predecessors)) if self.preprocessor is not None else list(predecessors)
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            states.append(self.node_output(node, states))
        output = self.merge(states)
        if self.postprocessor is not None:
            return self.postprocessor(output, predecessors)
        return output

    def node_output(self, node: int, states: list[Any]) -> Any:
        raise NotImplementedError

    def decided_arch(self) -> dict[str, Any] | None:
        """The architecture this cell computes exactly (sampled or pinned), or None when mixing."""
        return self._state.arch

    def merge(self, states: list[Any]) -> Any:
        """Concatenate the output nodes. A loose-end cell with a decided architecture puts its
        loose ends first and zero-pads to the width of all nodes, so the layers after it keep
        their shape and a frozen cell (loose ends only) computes the same with sliced weights."""
        nodes = states[self.num_predecessors:]
        arch = self.decided_arch()
        if self.merge_op != "loose_end" or arch is None:
            return torch.cat(nodes, dim=self.concat_dim)
        used = {self._chosen(arch, node, k)[1] for node in range(self.num_predecessors,
                self.num_predecessors + self.num_nodes) for k in range(self.num_ops_per_node)}
        loose = [s for i, s in enumerate(nodes, self.num_predecessors) if i not in used]
        output = torch.cat(loose, dim=self.concat_dim)
        width = sum(s.shape[self.concat_dim] for s in nodes)
        missing = width - output.shape[self.concat_dim]
        if missing:
            shape = list(output.shape)
            shape[self.concat_dim] = missing
            output = torch.cat([output, output.new_zeros(shape)], dim=self.concat_dim)
        return output

    def freeze(self, arch: dict[str, Any]) -> FixedCell:
        ops, inputs = [], []
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            chosen = [self._chosen(arch, node, k) for k in range(self.num_ops_per_node)]
            ops.append([copy.deepcopy(self.edges[node - self.num_predecessors][j][name]) for name, j in chosen])
            inputs.append([j for _, j in chosen])
        return FixedCell(ops, inputs, self.num_predecessors, self.merge_op, self.preprocessor,
                         self.postprocessor, self.concat_dim)


class PathSamplingCell(_EdgeCell):
    """Runs, for every operator slot, the chosen candidate on the chosen input's edge."""

    def node_output(self, node: int, states: list[Any]) -> Any:
        total = None
        for k in range(self.num_ops_per_node):
            name, j = self._chosen(self._state.arch, node, k)
            out = self.edges[node - self.num_predecessors][j][name](states[j])
            total = out if total is None else total + out
        return total


class DifferentiableCell(_EdgeCell):
    """Every edge is a softmax-weighted sum of its candidates and a zero operator (DARTS)."""

    def setup(self, state: ArchState) -> None:
        super().setup(state)
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            for j in range(node):
                state.add_alpha(self._edge_label(node, j), len(self.op_names) + 1)  # last: zero

    def _edge_label(self, node: int, j: int) -> str:
        return f"{self.label}/edge_{node}_{j}"

    checkpointing = False

    def decided_arch(self) -> dict[str, Any] | None:
        return self._state.pinned

    def forward(self, *inputs: Any) -> Any:
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(super().forward, *inputs, use_reentrant=False,
                              context_fn=lambda: (contextlib.nullcontext(), _batchnorm_stats_kept(self)))
        return super().forward(*inputs)

    def edge_weights(self, node: int) -> tuple[list[torch.Tensor], bool]:
        state = self._state
        if state.pinned is None:
            return [state.weights(self._edge_label(node, j)) for j in range(node)], False
        like = state.alpha_of(self._edge_label(node, 0))
        weights = [torch.zeros_like(like) for _ in range(node)]
        for k in range(self.num_ops_per_node):
            name, j = self._chosen(state.pinned, node, k)
            weights[j][self.op_names.index(name)] += 1.0
        return weights, True

    def node_output(self, node: int, states: list[Any]) -> Any:
        weights, exact = self.edge_weights(node)
        edges = self.edges[node - self.num_predecessors]
        if exact:  # pinned one-hot weights: only the chosen candidates run
            return self._pinned_node_output(node, states, weights, edges)
        outputs = []
        for j in range(node):
            relu = None
            for name in self.op_names:
                op = edges[j][name]
                rest = _after_leading_relu(op)
                if rest is None:
                    outputs.append(op(states[j]))
                    continue
                if relu is None:
                    relu = F.relu(states[j])
                out = relu
                for layer in rest:
                    out = layer(out)
                outputs.append(out)
        count = len(self.op_names)  # the zero operator (last weight) has no output
        mixing = torch.cat([w[:count] for w in weights])
        first = outputs[0]
        if all(isinstance(o, torch.Tensor) and o.shape == first.shape and o.dtype == first.dtype for o in outputs):
            return _WeightedSum.apply(mixing, *outputs)
        return weighted_sum(mixing, outputs.__getitem__, len(outputs), False)  # tuples, broadcasting, mixed dtypes

    def _pinned_node_output(self, node: int, states: list[Any], weights: list[torch.Tensor], edges: Any) -> Any:
        total = None
        for j in range(node):
            ops = [edges[j][name] for name in self.op_names]
            out = weighted_sum(weights[j], lambda i, ops=ops, j=j: ops[i](states[j]), len(ops), True)
            if out is not None:
                total = out if total is None else total + out
        if total is None:  # every edge pinned to nothing: cannot happen for a valid arch
            raise RuntimeError(f"cell {self.label!r}: node {node} has no input")
        return total

    def export_arch(self) -> dict[str, Any]:
        arch: dict[str, Any] = {}
        for node in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
            best = []
            for j in range(node):
                w = torch.softmax(self._state.alpha_of(self._edge_label(node, j)).detach(), -1)[:-1]
                op = int(w.argmax())
                best.append((-float(w[op]), j, self.op_names[op]))
            best.sort()
            for k in range(self.num_ops_per_node):
                _, j, name = best[k % len(best)]
                arch[f"{self.label}/op_{node}_{k}"] = name
                arch[f"{self.label}/input_{node}_{k}"] = [j]
        return arch
