"""The published NASNet-family networks, built as their authors built them.

``hub/nasnet.py`` places every cell in one unified, DARTS-style network; that is the network
DARTS published, but NASNet-A, AmoebaNet-A, PNASNet-5 and ENAS were published in their authors'
own networks, and their parameter counts are those networks'. Two code bases cover them:

* ``SlimCellNetwork``: the NASNet network of TF-slim, which the AmoebaNet and PNASNet releases
  share. A cell projects its input with a 1x1 convolution, matches the state before it by a
  factorized reduction or a 1x1 convolution, applies each operation with stride 2 to the cell's
  inputs in a reduction cell, and concatenates the states its specification marks unused.
  PNASNet has no reduction cell: its one cell runs with stride 2 where the others reduce.
* ``ENASMicroNetwork``: the final network of ENAS's micro search, whose cells also
  concatenate their unused inputs and whose reduction cells are the normal cell's code with
  stride 2.

Cells are written in the authors' notation (``CellSpec``, ``ENAS_CIFAR_ARC``). The published
networks register as ``nasnet-a``, ``amoebanet-a``, ``pnas`` and ``enas`` (CIFAR-10) and
``nasnet-a-mobile``, ``nasnet-a-large`` and ``pnasnet-5-large`` (ImageNet, whose released
checkpoints pin the parameter count exactly). Counts leave out the auxiliary head, as the papers'
do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hub.nasnet import ENAS, PNAS, AmoebaNet, DropPath, NASNet
from hub.searched import register_published_network

__all__ = ["AMOEBANET_A_NORMAL", "AMOEBANET_A_REDUCTION", "ENAS_CIFAR_ARC", "NASNET_A_NORMAL",
           "NASNET_A_REDUCTION", "PNASNET_5", "CellSpec", "ENASMicroNetwork", "SlimCellNetwork"]


@dataclass(frozen=True)
class CellSpec:
    """A cell in TF-slim's notation: five combinations of two operations each. ``inputs[i]`` is the
    hidden state ``operations[i]`` reads (0: the cell's input, 1: the state before it, 2-6: the
    combinations); ``used`` marks the seven states left out of the concatenated output."""

    operations: tuple[str, ...]
    inputs: tuple[int, ...]
    used: tuple[int, ...]


NASNET_A_NORMAL = CellSpec(
    ("separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2", "avg_pool_3x3", "none",
     "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2", "none"),
    (0, 1, 1, 1, 0, 1, 1, 1, 0, 0), (1, 0, 0, 0, 0, 0, 0))
NASNET_A_REDUCTION = CellSpec(
    ("separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2", "avg_pool_3x3", "separable_5x5_2",
     "none", "avg_pool_3x3", "separable_3x3_2", "max_pool_3x3"),
    (0, 1, 0, 1, 0, 1, 3, 2, 2, 0), (1, 1, 1, 0, 0, 0, 0))
AMOEBANET_A_NORMAL = CellSpec(
    ("avg_pool_3x3", "max_pool_3x3", "separable_3x3_2", "none", "none", "avg_pool_3x3", "separable_3x3_2",
     "separable_5x5_2", "avg_pool_3x3", "separable_3x3_2"),
    (0, 0, 1, 1, 0, 1, 0, 2, 5, 0), (1, 0, 1, 0, 0, 1, 0))
AMOEBANET_A_REDUCTION = CellSpec(
    ("separable_3x3_2", "avg_pool_3x3", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3", "max_pool_3x3",
     "separable_3x3_2", "1x7_7x1", "avg_pool_3x3", "separable_7x7_2"),
    (1, 0, 0, 2, 1, 0, 4, 0, 1, 0), (1, 1, 0, 0, 0, 0, 0))
PNASNET_5 = CellSpec(
    ("separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3", "separable_5x5_2", "separable_3x3_2",
     "separable_3x3_2", "max_pool_3x3", "separable_3x3_2", "none"),
    (1, 1, 0, 0, 0, 0, 4, 0, 1, 0), (1, 1, 0, 0, 0, 0, 0))

SLIM_OPERATIONS = ("separable_KxK_N", "avg_pool_KxK", "max_pool_KxK", "none", "1x7_7x1")


# -- operations ------------------------------------------------------------------------------------
def _bn_conv(c_in: int, c_out: int, kernel: int | tuple[int, int] = 1, stride: int | tuple[int, int] = 1,
             relu: bool = True) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2) if isinstance(kernel, tuple) else kernel // 2
    layers = [nn.ReLU()] if relu else []
    return nn.Sequential(*layers, nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out))


class FactorizedReduction(nn.Module):
    """Halve the resolution without dropping pixels: two stride-2 1x1 convolutions, the second on the
    input shifted by one pixel (zero-padded at the bottom and right), concatenated; at stride 1 a
    1x1 convolution."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"a factorized reduction needs an even number of output channels, got {c_out}")
        self.stride = stride
        if stride == 1:
            self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        else:
            self.path1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
            self.path2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.bn(self.conv(x))
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.path1(x[:, :, ::2, ::2]), self.path2(shifted[:, :, ::2, ::2])], dim=1))


class SeparableStack(nn.Sequential):
    """``layers`` times ReLU, depthwise kxk, pointwise 1x1, BatchNorm; the first carries the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, layers: int = 2) -> None:
        modules: list[nn.Module] = []
        for i in range(layers):
            c = c_in if i == 0 else c_out
            modules += [nn.ReLU(), nn.Conv2d(c, c, kernel, stride if i == 0 else 1, kernel // 2, groups=c, bias=False),
                        nn.Conv2d(c, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        super().__init__(*modules)


def _pool(kind: str, kernel: int, stride: int) -> nn.Module:
    if kind == "avg":
        return nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False)
    return nn.MaxPool2d(kernel, stride, kernel // 2)


def slim_operation(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """One operation of a TF-slim cell (names as in the releases, e.g. ``separable_5x5_2``)."""
    parts = name.split("_")
    if parts[0] == "separable" and len(parts) == 3:
        return SeparableStack(c_in, c_out, int(parts[1].split("x")[0]), stride, int(parts[2]))
    if parts[0] in ("avg", "max") and parts[1:2] == ["pool"]:
        pool = _pool(parts[0], int(parts[2].split("x")[0]), stride)
        return pool if c_in == c_out else nn.Sequential(pool, _bn_conv(c_in, c_out, relu=False))
    if name == "none":
        return nn.Identity() if stride == 1 and c_in == c_out else _bn_conv(c_in, c_out, 1, stride)
    if name == "1x7_7x1":  # AmoebaNet's: inside a 1x1 bottleneck to a quarter of the channels
        mid = c_out // 4
        return nn.Sequential(_bn_conv(c_in, mid), nn.ReLU(),
                             nn.Conv2d(mid, mid, (1, 7), (1, stride), (0, 3), bias=False), nn.BatchNorm2d(mid),
                             _bn_conv(mid, mid, (7, 1), (stride, 1)), _bn_conv(mid, c_out))
    raise ValueError(f"unknown TF-slim cell operation {name!r}; allowed: {', '.join(SLIM_OPERATIONS)}")


# -- the TF-slim NASNet network ----------------------------------------------------------------------------
class SlimCell(nn.Module):
    """A cell of TF-slim's NASNet network (see the module docstring).

    ``c_input`` and ``c_prev`` are the channels of the cell's input and of the state before it
    (``None``: there is none, the input stands in for it unprojected); ``prev_is_larger`` says the
    state before has twice the resolution.
    """

    def __init__(self, spec: CellSpec, c_input: int, c_prev: int | None, prev_is_larger: bool, filters: int,
                 stride: int) -> None:
        super().__init__()
        self.used = spec.used
        self.inputs = spec.inputs
        self.project_input = _bn_conv(c_input, filters)
        if c_prev is None:
            self.project_prev, c_state1 = None, c_input
        elif prev_is_larger:
            self.project_prev, c_state1 = nn.Sequential(nn.ReLU(), FactorizedReduction(c_prev, filters)), filters
        elif c_prev != filters:
            self.project_prev, c_state1 = _bn_conv(c_prev, filters), filters
        else:
            self.project_prev, c_state1 = nn.Identity(), filters
        channels = [filters, c_state1] + [filters] * 5
        self.ops = nn.ModuleList()
        for name, source in zip(spec.operations, spec.inputs):
            op = slim_operation(name, channels[source], filters, stride if source < 2 else 1)
            self.ops.append(op if name == "none" else nn.Sequential(op, DropPath()))
        # unused states at another resolution or width are matched to the last combination's
        self.match = nn.ModuleDict({
            str(i): FactorizedReduction(channels[i], filters, stride if i < 2 else 1)
            for i in range(7) if not spec.used[i] and (channels[i] != filters or (stride > 1 and i < 2))})
        self.out_channels = filters * (7 - sum(spec.used))

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        if prev is None:
            prev = x
        elif self.project_prev is not None:
            prev = self.project_prev(prev)
        states = [self.project_input(x), prev]
        for i in range(0, 10, 2):
            states.append(self.ops[i](states[self.inputs[i]]) + self.ops[i + 1](states[self.inputs[i + 1]]))
        return torch.cat([self.match[str(i)](s) if str(i) in self.match else s
                          for i, s in enumerate(states) if not self.used[i]], dim=1)


class AuxiliaryHead(nn.Sequential):
    """The NASNet-family auxiliary classifier: 5x5 average pool with stride 3, 1x1 to 128, a
    convolution over the remaining map to 768, a linear classifier."""

    def __init__(self, c_in: int, size: int, num_labels: int) -> None:
        pooled = (size - 5) // 3 + 1
        super().__init__(nn.ReLU(), nn.AvgPool2d(5, 3), _bn_conv(c_in, 128, relu=False), nn.ReLU(),
                         nn.Conv2d(128, 768, pooled, bias=False), nn.BatchNorm2d(768), nn.ReLU(), nn.Flatten(),
                         nn.Linear(768, num_labels))


def _reduction_indices(num_cells: int) -> list[int]:
    return [int(num_cells * k / 3) for k in (1, 2)]


class SlimCellNetwork(nn.Module):
    """TF-slim's NASNet network around a normal and a reduction cell specification.

    ``num_cells`` counts normal cells; the two reduction cells come before cells ``num_cells/3`` and
    ``2*num_cells/3``. With ``reduction=None`` (PNASNet) ``num_cells`` counts every cell and those
    two run the normal cell with stride 2. ``stem='cifar'`` is a 3x3 convolution of
    ``stem_multiplier * filters`` channels; ``'imagenet'`` a stride-2 3x3 convolution of
    ``32 * stem_multiplier`` channels and two reduction cells at a quarter and half the width.
    ``skip_reduction_layer_input`` makes the cell after a reduction read, as the state before its
    input, the output before the reduction's input (the large ImageNet models). ``image_size``
    sizes the auxiliary head; in training mode with ``auxiliary_head`` the network returns
    ``(logits, aux_logits)``.
    """

    def __init__(self, normal: CellSpec, reduction: CellSpec | None, num_cells: int, filters: int,
                 stem: str = "cifar", stem_multiplier: float = 3.0, num_labels: int = 10,
                 skip_reduction_layer_input: bool = False, auxiliary_head: bool = False, image_size: int = 32,
                 dropout: float = 0.0, drop_path_prob: float = 0.0) -> None:
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        if num_cells < 3 or filters <= 0:
            raise ValueError(f"need num_cells >= 3 and filters > 0, got num_cells={num_cells!r}, filters={filters!r}")
        # (channels, reductions so far) of every recorded output; index 0 stands for "none yet"
        outputs: list[tuple[int, int] | None] = [None]
        self.cells = nn.ModuleList()
        self.prev_index: list[int] = []  # which recorded output each cell reads as the state before its input
        self.auxiliary_after: int | None = None
        self.auxiliary_head = None

        def add(spec: CellSpec, prev_index: int, scaling: float, stride: int) -> None:
            channels, scale = outputs[-1]
            prev = outputs[prev_index]
            cell = SlimCell(spec, channels, None if prev is None else prev[0],
                            prev is not None and prev[1] < scale, int(filters * scaling), stride)
            self.cells.append(cell)
            self.prev_index.append(prev_index)
            outputs.append((cell.out_channels, scale + (stride == 2)))

        if stem == "cifar":
            stem_channels = int(filters * stem_multiplier)
            self.stem = nn.Sequential(nn.Conv2d(3, stem_channels, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(stem_channels))
            outputs.append((stem_channels, 0))
        else:
            stem_channels = int(32 * stem_multiplier)
            self.stem = nn.Sequential(nn.Conv2d(3, stem_channels, 3, 2, bias=False), nn.BatchNorm2d(stem_channels))
            outputs.append((stem_channels, 1))
            for scaling in (0.25, 0.5):
                add(reduction or normal, len(outputs) - 2, scaling, 2)
        self.num_stem_cells = len(self.cells)

        reductions = _reduction_indices(num_cells)
        scaling, prev_index = 1.0, len(outputs) - 2
        for cell_num in range(num_cells):
            is_reduction = cell_num in reductions
            if reduction is None:  # PNASNet: every cell is the normal cell, strided at the reductions
                scaling *= 2 if is_reduction else 1
                if skip_reduction_layer_input or not is_reduction:
                    prev_index = len(outputs) - 2
                add(normal, prev_index, scaling, 2 if is_reduction else 1)
            else:
                if skip_reduction_layer_input:
                    prev_index = len(outputs) - 2
                if is_reduction:
                    scaling *= 2
                    add(reduction, len(outputs) - 2, scaling, 2)
                if not skip_reduction_layer_input:
                    prev_index = len(outputs) - 2
                add(normal, prev_index, scaling, 1)
            if auxiliary_head and cell_num == reductions[1] - 1:
                self.auxiliary_after = len(self.cells) - 1
                size = _resolution(image_size, stem, outputs[-1][1])
                self.auxiliary_head = AuxiliaryHead(outputs[-1][0], size, num_labels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(outputs[-1][0], num_labels)
        self.set_drop_path_prob(drop_path_prob)

    def set_drop_path_prob(self, drop_prob: float) -> None:
        """Set the drop-path probability of every operation."""
        for module in self.modules():
            if isinstance(module, DropPath):
                module.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        outputs: list[torch.Tensor | None] = [None, self.stem(x)]
        aux = None
        for i, (cell, prev_index) in enumerate(zip(self.cells, self.prev_index)):
            outputs.append(cell(outputs[-1], outputs[prev_index]))
            if i == self.auxiliary_after and self.training:
                aux = self.auxiliary_head(outputs[-1])
        features = F.adaptive_avg_pool2d(F.relu(outputs[-1]), 1).flatten(1)
        logits = self.classifier(self.dropout(features))
        return (logits, aux) if aux is not None else logits


def _resolution(image_size: int, stem: str, reductions: int) -> int:
    size = image_size if stem == "cifar" else (image_size - 3) // 2 + 1
    for _ in range(reductions - (stem == "imagenet")):
        size = (size + 1) // 2
    return size


# -- ENAS's micro-search network -------------------------------------------------------------------------------
ENAS_OPERATIONS = ("separable_3x3_2", "separable_5x5_2", "avg_pool_3x3", "max_pool_3x3", "none")

# ENAS's CIFAR-10 cells as its authors released them (the fixed arc of their final-training script), in
# their code's notation: per node (input, operation, input, operation); inputs 0 and 1 are the cell's two
# predecessors (the older first), 2-6 its nodes; operations index ENAS_OPERATIONS.
ENAS_CIFAR_ARC = {
    "normal": [(0, 2, 0, 0), (0, 4, 0, 1), (0, 4, 1, 1), (1, 0, 0, 1), (0, 2, 1, 1)],
    "reduction": [(1, 0, 1, 0), (0, 3, 0, 2), (1, 1, 3, 1), (1, 0, 0, 4), (0, 3, 1, 1)],
}


class ENASCell(nn.Module):
    """A cell of ENAS's final network: both predecessors matched to ``filters`` channels (the older
    by a factorized reduction when it is larger), the newer one projected again, five nodes,
    the unused states concatenated (larger ones reduced)."""

    def __init__(self, nodes: list[tuple[int, int, int, int]], c_older: int, c_newer: int, older_is_larger: bool,
                 filters: int, stride: int) -> None:
        super().__init__()
        if older_is_larger:
            self.match_older = nn.Sequential(nn.ReLU(), FactorizedReduction(c_older, filters))
        else:
            self.match_older = _bn_conv(c_older, filters) if c_older != filters else nn.Identity()
        self.match_newer = _bn_conv(c_newer, filters) if c_newer != filters else nn.Identity()
        self.project = _bn_conv(filters, filters)
        self.sources = [s for node in nodes for s in (node[0], node[2])]
        self.ops = nn.ModuleList()
        for source, op in ((node[k], node[k + 1]) for node in nodes for k in (0, 2)):
            s = stride if source < 2 else 1
            if op in (0, 1):
                built = nn.Sequential(SeparableStack(filters, filters, 3 + 2 * op, s), DropPath())
            elif op in (2, 3):
                built = nn.Sequential(_pool("avg" if op == 2 else "max", 3, s), DropPath())
            elif op == 4:
                built = FactorizedReduction(filters, filters) if s == 2 else nn.Identity()
            else:
                raise ValueError(f"unknown ENAS operation {op!r}; allowed: 0-4 ({', '.join(ENAS_OPERATIONS)})")
            self.ops.append(built)
        self.unused = [i for i in range(len(nodes) + 2) if i not in self.sources]
        self.match = nn.ModuleDict({str(i): FactorizedReduction(filters, filters)
                                    for i in self.unused if i < 2 and stride == 2})
        self.out_channels = filters * len(self.unused)

    def forward(self, older: torch.Tensor, newer: torch.Tensor) -> torch.Tensor:
        states = [self.match_older(older), self.project(self.match_newer(newer))]
        for i in range(0, len(self.ops), 2):
            states.append(self.ops[i](states[self.sources[i]]) + self.ops[i + 1](states[self.sources[i + 1]]))
        return torch.cat([self.match[str(i)](states[i]) if str(i) in self.match else states[i]
                          for i in self.unused], dim=1)


class ENASMicroNetwork(nn.Module):
    """ENAS's final CIFAR network: a 3x3 stem of ``3 * filters`` channels, ``num_layers`` normal cells
    and two reduction cells (after a third and two thirds of them) that double the width, then a
    linear classifier without bias. The defaults are the released final-training script's."""

    def __init__(self, arc: dict[str, list[tuple[int, int, int, int]]], num_layers: int = 15, filters: int = 36,
                 num_labels: int = 10, dropout: float = 0.0, drop_path_prob: float = 0.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * filters, 3, padding=1, bias=False), nn.BatchNorm2d(3 * filters))
        pool_distance = num_layers // 3
        reductions = (pool_distance, 2 * pool_distance + 1)
        states = [(3 * filters, 0), (3 * filters, 0)]  # (channels, reductions) of the two predecessors
        self.cells = nn.ModuleList()
        for layer in range(num_layers + 2):
            stride = 2 if layer in reductions else 1
            filters *= stride
            (c_older, s_older), (c_newer, s_newer) = states
            cell = ENASCell(arc["reduction" if stride == 2 else "normal"], c_older, c_newer, s_older < s_newer,
                            filters, stride)
            self.cells.append(cell)
            states = [states[1], (cell.out_channels, s_newer + (stride == 2))]
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(states[1][0], num_labels, bias=False)
        for module in self.modules():
            if isinstance(module, DropPath):
                module.drop_prob = drop_path_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        older = newer = self.stem(x)
        for cell in self.cells:
            older, newer = newer, cell(older, newer)
        return self.classifier(self.dropout(F.adaptive_avg_pool2d(F.relu(newer), 1).flatten(1)))


# -- the published networks -----------------------------------------------------------------------------------
_SLIM = [
    ("nasnet-a", NASNet, lambda: SlimCellNetwork(NASNET_A_NORMAL, NASNET_A_REDUCTION, 18, 32),
     "NASNet-A (6 @ 768) CIFAR-10: TF-slim network, 18 normal cells, F=32", "3.3M params"),
    ("nasnet-a-mobile", NASNet,
     lambda: SlimCellNetwork(NASNET_A_NORMAL, NASNET_A_REDUCTION, 12, 44, "imagenet", 1.0, 1000),
     "NASNet-A Mobile (4 @ 1056) ImageNet, 224x224", "5.3M params; 5,289,978 in the released checkpoint"),
    ("nasnet-a-large", NASNet,
     lambda: SlimCellNetwork(NASNET_A_NORMAL, NASNET_A_REDUCTION, 18, 168, "imagenet", 3.0, 1000, True),
     "NASNet-A Large (6 @ 4032) ImageNet, 331x331", "88.9M params (paper); 88,753,150 in the released checkpoint"),
    ("amoebanet-a", AmoebaNet, lambda: SlimCellNetwork(AMOEBANET_A_NORMAL, AMOEBANET_A_REDUCTION, 18, 36),
     "AmoebaNet-A CIFAR-10 (N=6, F=36) in NASNet's TF-slim network", "3.2M params"),
    ("pnas", PNAS, lambda: SlimCellNetwork(PNASNET_5, None, 9, 48, skip_reduction_layer_input=True),
     "PNASNet-5 CIFAR-10 (N=3, F=48): 9 cells, the 4th and 7th strided", "3.2M params"),
    ("pnasnet-5-large", PNAS, lambda: SlimCellNetwork(PNASNET_5, None, 12, 216, "imagenet", 3.0, 1000, True),
     "PNASNet-5 Large (N=4, F=216) ImageNet, 331x331", "86.1M params; 86,057,668 in the released checkpoint"),
]
for _name, _space, _build, _description, _reported in _SLIM:
    register_published_network(_name, _space, _build, _description, _reported)
# The paper replicates the normal cell N = 6 times per stage; the released script trains N = 5
# (num_layers=15, 3,894,372 parameters, as the authors' code counts them).
register_published_network("enas", ENAS, lambda: ENASMicroNetwork(ENAS_CIFAR_ARC, 18, 36),
                           "ENAS micro-search final network, CIFAR-10: 18 normal + 2 reduction cells (N=6), F=36",
                           "4.6M params (paper)")
