"""Path-sampling NAS-Bench-101 cells: one pool of weights sliced to each sampled cell.

A NAS-Bench-101 cell's channels depend on its graph (the output's channels are split
among the nodes feeding it), so the supernet keeps, for every hidden node, each
candidate operation at the full ``out_features`` width, and every projection at full
width. A sampled cell computes with the leading slices its channels need (the same
slices a weight-inheriting freeze copies), through ``torch.func.functional_call`` on a
template of the operation built at the right width on the meta device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from supernet.oneshot.choices import SwappedMixedOp
from supernet.oneshot.state import ArchState
from supernet.primitives.basic_unit import copy_overlapping, slice_to
from supernet.primitives.nasbench import FixedNasBench101Cell, NasBench101Cell

__all__ = ["PathSamplingNasBench101Cell"]


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
        num_nodes, ops, inputs = self._graph(self._state.arch)
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
                total = t if total is None else total + t
            tensors[node] = self._sliced(self.pool[str(node)][ops[node]], ops[node], c, total)
        hidden = [tensors[i] for i in live[out] if i != 0]
        result = torch.cat(hidden, dim=1) if hidden else None
        if 0 in live[out]:
            projected = self._sliced(self.pool_projections[str(out)], "<projection>", self.out_features, x)
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
