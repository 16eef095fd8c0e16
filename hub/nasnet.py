"""The NDS family of cell spaces: NASNet, ENAS, AmoebaNet, PNAS and DARTS.

One network (``NDS``) of three stages of normal cells separated by two reduction cells,
as in the DARTS code (and the NDS paper's unified form); the spaces differ in their
operator lists, nodes per cell and output rule. All normal cells share the label
``normal`` and all reduction cells ``reduce``, so a cell architecture is e.g.
``{"normal/op_2_0": "sep_conv_3x3", "normal/input_2_0": [1], ...}``. ``width`` and
``num_cells`` may be tuples: then they are searchable (labels ``width`` and ``depth``), num_cells
from 4 up as in the reference toolkit (whose spaces search (4, 8, 12, 16, 20)); num_cells may also be a
ValueChoice (its label is the decision's).

With few cells a stage may hand on, as the first input of the next reduction cell, the stage's own
input instead of a cell's output (DARTS's ``reduction_prev``): a searchable num_cells then gives that
cell one preprocessing per shape (``PreprocessByDepth``), and a frozen architecture is exactly the
network built with its num_cells. Path sampling runs the current depth's preprocessing; the
differentiable and binary-gate families, which add the stage's outputs at several depths, apply each
depth's preprocessing to its own output before adding them (the stage and the next cell's first
preprocessing act as one mixed op), so the shapes agree and one depth's weights alone compute that
depth's network. (NNI's NDSStageDifferentiable instead reshapes the output with a transform that
the fixed network does not have.)

A space built to be searched is the DARTS search network (Liu et al. 2019, appendix A.1.1;
quark0/darts cnn/model_search.py): BatchNorm without affine parameters in every candidate and
in the cells' preprocessing, and a BatchNorm after every pooling candidate. The fixed network
(``supernet.freeze``, the published networks) is the evaluation network (cnn/model.py): affine
BatchNorm, bare pools. ``affine`` chooses either form by hand.
"""

from __future__ import annotations

import functools
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

import supernet.nn as nn
from hub.searched import SearchedModelsMixin, register_searched_model
from supernet.context import current_fixed_arch
from supernet.oneshot.binary_gate import BinaryGateRepeat
from supernet.oneshot.choices import DifferentiableRepeat, SwappedMixedOp
from supernet.oneshot.registry import KEEP, register_mixed_op
from supernet.primitives.base import Choice, Condition, Mutable, lookup_fixed
from supernet.primitives.value_choice import ValueChoiceX

__all__ = ["AMOEBA_OPS", "DARTS", "DARTS_OPS", "ENAS", "ENAS_OPS", "NASNET_OPS", "NDS", "OPS", "PNAS", "PNAS_OPS",
           "AmoebaNet", "NASNet"]


# -- operators ------------------------------------------------------------------------------------
class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: Any, c_out: Any, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    def __init__(self, c_in: Any, c_out: Any, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=affine))


class SepConv(nn.Sequential):
    def __init__(self, c_in: Any, c_out: Any, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, affine))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convolutions (DARTS)."""

    def __init__(self, c_in: Any, c_out: Any, affine: bool = True) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Conv1xKKx1(nn.Sequential):
    """A 1xk then kx1 convolution (NASNet's conv_7x1_1x7)."""

    def __init__(self, c: Any, k: int, stride: int, affine: bool = True) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c, c, (1, k), stride=(1, stride), padding=(0, k // 2), bias=False),
                         nn.Conv2d(c, c, (k, 1), stride=(stride, 1), padding=(k // 2, 0), bias=False),
                         nn.BatchNorm2d(c, affine=affine))


class Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0) if self.stride == 1 else x[:, :, :: self.stride, :: self.stride].mul(0.0)


class DropPath(nn.Module):
    """Drop the whole output of an operator for some samples (FractalNet's drop-path)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob <= 0:
            return x
        keep = 1.0 - self.drop_prob
        mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x / keep * mask


def _pool(kind: str, k: int) -> Callable[[Any, int, bool], nn.Module]:
    def build(c: Any, stride: int, affine: bool) -> nn.Module:
        if kind == "avg":
            return nn.AvgPool2d(k, stride, k // 2, count_include_pad=False)
        return nn.MaxPool2d(k, stride, k // 2)
    return build


OPS: dict[str, Callable[[Any, int, bool], nn.Module]] = {
    "none": lambda c, stride, affine: Zero(stride),
    "avg_pool_2x2": lambda c, stride, affine: nn.AvgPool2d(2, stride, 0, count_include_pad=False),
    "avg_pool_3x3": _pool("avg", 3),
    "avg_pool_5x5": _pool("avg", 5),
    "max_pool_2x2": lambda c, stride, affine: nn.MaxPool2d(2, stride, 0),
    "max_pool_3x3": _pool("max", 3),
    "max_pool_5x5": _pool("max", 5),
    "max_pool_7x7": _pool("max", 7),
    "skip_connect": lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "conv_1x1": lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine),
    "conv_3x3": lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, c, 7, stride, 3, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
    "dil_sep_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "conv_3x1_1x3": lambda c, stride, affine: Conv1xKKx1(c, 3, stride, affine),
    "conv_7x1_1x7": lambda c, stride, affine: Conv1xKKx1(c, 7, stride, affine),
}

NASNET_OPS = ["skip_connect", "conv_3x1_1x3", "conv_7x1_1x7", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
              "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5",
              "sep_conv_7x7"]
ENAS_OPS = ["skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"]
AMOEBA_OPS = ["skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3", "max_pool_3x3",
              "dil_sep_conv_3x3", "conv_7x1_1x7"]
PNAS_OPS = ["sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "conv_7x1_1x7", "skip_connect", "avg_pool_3x3",
            "max_pool_3x3", "dil_conv_3x3"]
DARTS_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5"]


# -- cells -------------------------------------------------------------------------------------------
class CellPreprocessor(nn.Module):
    """Bring the two predecessors to the cell's width (and resolution, after a reduction)."""

    def __init__(self, c_pp: Any, c_p: Any, c: Any, reduction_prev: bool, affine: bool = True,
                 pre0: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.pre0 = pre0 if pre0 is not None else _pre0(c_pp, c, reduction_prev, affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine)

    def forward(self, cells: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.pre0(cells[0]), self.pre1(cells[1])]


def _pre0(c_pp: Any, c: Any, reduction_prev: bool, affine: bool) -> nn.Module:
    """The first input's preprocessing: halve its resolution too if a reduction came between (DARTS)."""
    return FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)


class PreprocessByDepth(Mutable, torch.nn.Module):
    """A reduction cell's first-input preprocessing when a searchable num_cells decides what that input is.

    ``variants`` maps what the stage before hands on (``_s0_source``) to its preprocessing, ``sources``
    the same keys to the num_cells values giving it. Frozen, it is the chosen variant: the network built
    with that num_cells. Path sampling runs the variant of the current depth; in the mixing families the
    stage before applies each depth's variant to that depth's output (see the module docstring).
    """

    def __init__(self, variants: Mapping[str, torch.nn.Module], sources: Mapping[str, list[int]],
                 depth: nn.ValueChoice) -> None:
        super().__init__()
        self.variants = nn.ModuleDict(variants)
        self.sources = {key: list(values) for key, values in sources.items()}
        self.depth = depth
        self.label = depth.label

    def variant(self, value: int) -> torch.nn.Module:
        """The preprocessing at num_cells ``value``."""
        return self.variants[next(key for key, values in self.sources.items() if value in values)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.variant(self.depth())(x)

    def decisions(self) -> list[Choice]:
        return [Choice(self.label, "value_choice", list(self.depth.candidates), self.depth.prior)]

    def conditional_children(self) -> Iterator[tuple[str, torch.nn.Module, list[Condition]]]:
        for key, values in self.sources.items():
            # a partial, not a lambda, so that the space pickles
            yield f"variants.{key}", self.variants[key], [
                Condition(self.label, functools.partial(operator.contains, frozenset(values)),
                          f"{self.label} in {values}")]

    def freeze(self, arch: Mapping[str, Any]) -> torch.nn.Module:
        return self.variant(lookup_fixed(arch, self.label, self.depth.candidates))

    def extra_repr(self) -> str:
        return f"sources={self.sources}, label={self.label!r}"


class _Stage(nn.Repeat):
    """A stage whose output goes to a ``PreprocessByDepth`` (its ``handoff``, set once that is built and kept
    out of the module tree, which holds it in the next reduction cell)."""

    def hand_on(self, output: tuple[torch.Tensor, torch.Tensor], value: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair the stage hands on at num_cells ``value``, its first tensor preprocessed for the next cell."""
        return self.__dict__["handoff"].variant(value)(output[0]), output[1]


class _DifferentiableStage(DifferentiableRepeat):
    """Each depth's output is preprocessed for the next cell before the weighted sum."""

    def handed_on(self, output: Any, value: Any) -> Any:
        return _Stage.hand_on(self, output, value)  # type: ignore[arg-type]


class _BinaryGateStage(BinaryGateRepeat):
    """BinaryGateRepeat's forward, with the active and the other sampled depths' outputs preprocessed for
    the next cell before the gate adds them."""

    def forward(self, x: Any) -> Any:
        arch = self._state.arch
        depth = self._depth_of(arch)
        outputs = [x]
        for block in self.blocks[:depth]:
            outputs.append(block(outputs[-1]))

        def compute(value: int) -> Any:
            target = self.depth_choice.evaluate_with({self.label: value})
            out = outputs[min(target, depth)]
            for block in self.blocks[depth:target]:
                out = block(out)
            return _Stage.hand_on(self, out, value)  # type: ignore[arg-type]

        return self._state.gate(self.label, _Stage.hand_on(self, outputs[-1], arch[self.label]), compute)


class _PreprocessedByStage(SwappedMixedOp, PreprocessByDepth):
    """In the mixing families the stage before has applied the preprocessing already: pass its output on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


register_mixed_op(PreprocessByDepth, "path_sampling", KEEP)
register_mixed_op(_Stage, "differentiable", _DifferentiableStage)
register_mixed_op(PreprocessByDepth, "differentiable", _PreprocessedByStage)
register_mixed_op(_Stage, "binary_gate", _BinaryGateStage)
register_mixed_op(PreprocessByDepth, "binary_gate", _PreprocessedByStage)


class CellPostprocessor(nn.Module):
    """Pass (previous output, this output) on to the next cell."""

    def forward(self, this: torch.Tensor, previous: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return previous[-1], this


class _CandidateOp:
    """The factory ``(node_index, op_index, input_index) -> module`` of one cell candidate (an object, not a
    closure, since the cell keeps it and the space must pickle)."""

    def __init__(self, name: str, c: Any, reduction: bool, drop_path: bool, affine: bool) -> None:
        self.name, self.c, self.reduction, self.drop_path, self.affine = name, c, reduction, drop_path, affine

    def __call__(self, node_index: int, op_index: int, input_index: int | None) -> nn.Module:
        # the default input (None in the space) is a predecessor, so reduction ops on it take stride 2
        stride = 2 if self.reduction and (input_index is None or input_index < 2) else 1
        op = OPS[self.name](self.c, stride, self.affine)
        if not self.affine and "pool" in self.name:
            # model_search.py MixedOp: nn.Sequential(pool, BatchNorm2d(C, affine=False))
            op = nn.Sequential(op, nn.BatchNorm2d(self.c, affine=False))
        if self.drop_path and not isinstance(op, torch.nn.Identity):
            return nn.Sequential(op, DropPath())
        return op


def _cell(op_names: list[str], num_nodes: int, merge_op: str, c_pp: Any, c_p: Any, c: Any, reduction: bool,
          reduction_prev: bool, drop_path: bool, affine: bool, pre0: torch.nn.Module | None = None) -> nn.Module:
    ops = OrderedDict((name, _CandidateOp(name, c, reduction, drop_path, affine)) for name in op_names)
    return nn.Cell(ops, num_nodes, num_ops_per_node=2, num_predecessors=2, merge_op=merge_op,
                   preprocessor=CellPreprocessor(c_pp, c_p, c, reduction_prev, affine, pre0),
                   postprocessor=CellPostprocessor(), label="reduce" if reduction else "normal")


class AuxiliaryHead(nn.Module):
    """The auxiliary classifier after the second reduction (CIFAR: 8x8 input; ImageNet: 14x14)."""

    def __init__(self, c: Any, num_labels: int, dataset: str) -> None:
        super().__init__()
        stride = 3 if dataset == "cifar" else 2
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), nn.AvgPool2d(5, stride=stride, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


def _stage_depths(num_cells: int) -> tuple[int, int, int]:
    """Normal cells per stage when ``num_cells`` cells (two of them reductions) are stacked as in DARTS."""
    first, second = num_cells // 3, 2 * num_cells // 3
    return first, second - first - 1, num_cells - second - 1


def _s0_source(stage: int, cells: int) -> str:
    """What a stage of ``cells`` normal cells hands on as the next cell's first input: the output of its
    last-but-one cell ('cell'), or its own first ('input0') or second ('input1') input. After a reduction
    the second input is a cell's output, shaped as the stage's cells' outputs, so it counts as 'cell'."""
    if cells >= 2 or cells == 1 and stage > 0:
        return "cell"
    return "input1" if cells == 1 else "input0"


# -- the network --------------------------------------------------------------------------------------
class NDS(nn.Module, SearchedModelsMixin):
    """The unified NASNet-style space (see the module docstring).

    ``dataset='cifar'`` uses a 3x3 stem for 32x32 images; ``'imagenet'`` the two-stride
    stems of the DARTS ImageNet network (use it at 224x224). ``auxiliary_loss`` adds the
    auxiliary head: in training mode the network returns ``(logits, aux_logits)``.
    ``drop_path_prob`` (also ``set_drop_path_prob``) drops operator outputs in training.

    ``affine``: whether the cells' BatchNorms (candidates and preprocessing) learn a scale and a
    shift. ``False`` also follows every pooling candidate by an affine-free BatchNorm: the
    DARTS search network. ``True``: the evaluation network. ``None`` (default): ``False`` for a
    space built to be searched, ``True`` when it is built fixed (inside ``supernet.fixed_arch``,
    as ``supernet.freeze`` does). The stem and the auxiliary head are always affine, as in
    the authors' search network. A weight-inheriting freeze of an affine-free supernet starts
    its BatchNorms at scale 1 and shift 0 and drops the pools' BatchNorms; build the space
    with ``affine=False`` to freeze exactly what the supernet computes.
    """

    def __init__(self, op_candidates: list[str], merge_op: str = "all", num_nodes_per_cell: int = 4,
                 width: int | tuple[int, ...] = 16, num_cells: int | tuple[int, ...] | nn.ValueChoice = 20,
                 dataset: str = "imagenet", auxiliary_loss: bool = False, drop_path_prob: float = 0.0,
                 num_labels: int | None = None, affine: bool | None = None) -> None:
        super().__init__()
        if affine is None:
            affine = current_fixed_arch() is not None
        unknown = [op for op in op_candidates if op not in OPS]
        if unknown:
            raise ValueError(f"unknown op {unknown[0]!r} in op_candidates; allowed: {sorted(OPS)}")
        if dataset not in ("cifar", "imagenet"):
            raise ValueError(f"dataset must be 'cifar' or 'imagenet', got {dataset!r}")
        depth_choice = None
        if isinstance(num_cells, ValueChoiceX):  # the reference toolkit takes a ValueChoice too
            if not isinstance(num_cells, nn.ValueChoice):
                raise TypeError(f"num_cells must be an int, a list of ints or a ValueChoice of them, got the "
                                f"expression {num_cells!r}")
            fixed = current_fixed_arch()
            if fixed is not None:  # rebuilt by freeze: the recorded choice takes the architecture's value
                num_cells = lookup_fixed(fixed, num_cells.label, num_cells.candidates)
            else:
                depth_choice, num_cells = num_cells, tuple(num_cells.candidates)
        widths = list(width) if isinstance(width, (list, tuple)) else [width]
        depths = list(num_cells) if isinstance(num_cells, (list, tuple)) else [num_cells]
        if any(not isinstance(w, int) or w <= 0 for w in widths):
            raise ValueError(f"width must be a positive int or a tuple of them, got {width!r}")
        if any(not isinstance(d, int) or d < 3 for d in depths):
            raise ValueError(f"num_cells must be an int >= 3 (two are reductions), a tuple or a ValueChoice of "
                             f"them, got {num_cells!r}")
        if len(depths) > 1 and min(depths) < 4:
            # with 3 cells the last stage has no normal cell, and its pair changes shape with the depth
            raise ValueError(f"a searchable num_cells needs every value >= 4 (a normal cell in the last stage), "
                             f"got {num_cells!r}")
        self.num_labels = num_labels if num_labels is not None else (10 if dataset == "cifar" else 1000)
        self.dataset, self.auxiliary_loss, self.drop_path_prob = dataset, auxiliary_loss, drop_path_prob
        c = nn.ValueChoice(widths, label="width") if len(widths) > 1 else widths[0]
        depth: Any = nn.ValueChoice(depths, label="depth") if len(depths) > 1 else depths[0]
        if depth_choice is not None:
            depth = depth_choice

        if dataset == "cifar":
            self.stem = nn.Sequential(nn.Conv2d(3, 3 * c, 3, padding=1, bias=False), nn.BatchNorm2d(3 * c))
            c_pp = c_p = 3 * c
            reduction_prev = False
        else:
            self.stem0 = nn.Sequential(nn.Conv2d(3, c // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(c // 2),
                                       nn.ReLU(inplace=True), nn.Conv2d(c // 2, c, 3, 2, 1, bias=False),
                                       nn.BatchNorm2d(c))
            self.stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c))
            c_pp = c_p = c
            reduction_prev = True

        self.stages = nn.ModuleList()
        self.reductions = nn.ModuleList()
        self.auxiliary_head = None
        c_cur = c
        sources: dict[str, list[int]] = {}  # what the stage before hands on, by num_cells (when it varies)
        after: list[dict[str, Any]] = []  # the channels that stage hands on after 0, 1, 2, ... cells
        for stage in range(3):
            if stage > 0:
                c_cur = c_cur * 2
                pre0 = None
                if len(sources) > 1:  # one preprocessing per shape of the first input, chosen by the depth
                    variants = {}
                    for key, values in sources.items():
                        handed = after[max(_stage_depths(v)[stage - 1] for v in values)]
                        variants[key] = _pre0(handed["c_pp"], c_cur, handed["reduction_prev"], affine)
                    pre0 = PreprocessByDepth(variants, sources, depth)
                    self.stages[stage - 1].__dict__["handoff"] = pre0
                cell = _cell(op_candidates, num_nodes_per_cell, merge_op, c_pp, c_p, c_cur, True, reduction_prev,
                             True, affine, pre0)
                self.reductions.append(cell)
                c_pp, c_p = c_p, len(cell.output_node_indices) * c_cur
                reduction_prev = True
                if stage == 2 and auxiliary_loss:
                    self.auxiliary_head = AuxiliaryHead(c_p, self.num_labels, dataset)
            stage_depth = depth if isinstance(depth, int) else nn.ValueChoice.to_int(depth)
            if not isinstance(stage_depth, int):
                stage_depth = _stage_depth_choice(depth, stage)
            else:
                stage_depth = _stage_depths(stage_depth)[stage]
            channels = {"c_pp": c_pp, "c_p": c_p, "reduction_prev": reduction_prev}
            after = [dict(channels)]  # what the stage hands on after 0, 1, 2, ... cells

            def block(index: int, stage: int = stage, c_cur: Any = c_cur, channels: dict = channels,
                      after: list = after) -> nn.Module:
                cell = _cell(op_candidates, num_nodes_per_cell, merge_op, channels["c_pp"], channels["c_p"], c_cur,
                             False, channels["reduction_prev"], True, affine)
                out = len(cell.output_node_indices) * c_cur
                channels.update(c_pp=channels["c_p"], c_p=out, reduction_prev=False)
                after.append(dict(channels))
                return cell

            sources = {}
            if not isinstance(depth, int) and stage < 2:
                for value in depths:
                    sources.setdefault(_s0_source(stage, _stage_depths(value)[stage]), []).append(value)
            repeat = _Stage if len(sources) > 1 else nn.Repeat  # a PreprocessByDepth takes what it hands on
            self.stages.append(repeat(block, stage_depth, label=f"stage_{stage}"))
            c_pp, c_p, reduction_prev = channels["c_pp"], channels["c_p"], channels["reduction_prev"]
        self.classifier = nn.Linear(c_p, self.num_labels)
        self.set_drop_path_prob(drop_path_prob)

    def set_drop_path_prob(self, drop_prob: float) -> None:
        """Set the drop-path probability of every operator."""
        for module in self.modules():
            if isinstance(module, DropPath):
                module.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> Any:
        if self.dataset == "cifar":
            s0 = s1 = self.stem(x)
        else:
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        aux = None
        for stage, blocks in enumerate(self.stages):
            if stage > 0:
                s0, s1 = self.reductions[stage - 1]([s0, s1])
                if stage == 2 and self.auxiliary_head is not None and self.training:
                    aux = self.auxiliary_head(s1)
            s0, s1 = blocks((s0, s1))
        logits = self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(s1, 1), 1))
        return (logits, aux) if aux is not None else logits


def _stage_depth_choice(depth: Any, stage: int) -> Any:
    first = depth // 3
    second = 2 * depth // 3
    return [first, second - first - 1, depth - second - 1][stage]


class _NamedSpace(NDS):
    """An NDS space fixed to one paper's operators, nodes per cell and output rule."""

    OPS: list[str]
    MERGE_OP: str
    NODES: int

    def __init__(self, width: int | tuple[int, ...] = 16, num_cells: int | tuple[int, ...] | nn.ValueChoice = 20,
                 dataset: str = "cifar", auxiliary_loss: bool = False, drop_path_prob: float = 0.0,
                 num_labels: int | None = None, affine: bool | None = None) -> None:
        super().__init__(self.OPS, self.MERGE_OP, self.NODES, width, num_cells, dataset, auxiliary_loss,
                         drop_path_prob, num_labels, affine)


class NASNet(_NamedSpace):
    """The space of 'Learning Transferable Architectures for Scalable Image Recognition': 13 operators,
    5 nodes per cell, loose-end output. Arguments as NDS."""

    OPS, MERGE_OP, NODES = NASNET_OPS, "loose_end", 5


class ENAS(_NamedSpace):
    """The space of 'Efficient Neural Architecture Search via Parameter Sharing': 5 operators, 5 nodes
    per cell, loose-end output. Arguments as NDS."""

    OPS, MERGE_OP, NODES = ENAS_OPS, "loose_end", 5


class AmoebaNet(_NamedSpace):
    """The space of 'Regularized Evolution for Image Classifier Architecture Search': 8 operators,
    5 nodes per cell, loose-end output. Arguments as NDS."""

    OPS, MERGE_OP, NODES = AMOEBA_OPS, "loose_end", 5


class PNAS(_NamedSpace):
    """The space of 'Progressive Neural Architecture Search': 8 operators, 5 nodes per cell, every node
    in the output. Arguments as NDS."""

    OPS, MERGE_OP, NODES = PNAS_OPS, "all", 5


class DARTS(_NamedSpace):
    """The space of 'DARTS: Differentiable Architecture Search': 7 operators (the zero operator is the
    differentiable cell's own), 4 nodes per cell, every node in the output. Arguments as NDS."""

    OPS, MERGE_OP, NODES = DARTS_OPS, "all", 4


# -- published architectures -----------------------------------------------------------------------------
def _genotype(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> dict[str, Any]:
    arch: dict[str, Any] = {}
    for cell, edges in (("normal", normal), ("reduce", reduce)):
        for i, (op, source) in enumerate(edges):
            node, slot = 2 + i // 2, i % 2
            arch[f"{cell}/op_{node}_{slot}"] = op
            arch[f"{cell}/input_{node}_{slot}"] = [source]
    return arch


DARTS_V1 = _genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 0),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0), ("max_pool_3x3", 0),
            ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)])
DARTS_V2 = _genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1), ("max_pool_3x3", 0),
            ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)])

register_searched_model("darts-v1", DARTS, lambda: DARTS(width=36, num_cells=20, dataset="cifar"), lambda: DARTS_V1,
                        "DARTS (first order) CIFAR-10 cells, C=36, 20 cells",
                        "3.3M params (DARTS paper); 3,169,414 in the authors' code")
register_searched_model("darts-v2", DARTS, lambda: DARTS(width=36, num_cells=20, dataset="cifar"), lambda: DARTS_V2,
                        "DARTS (second order) CIFAR-10 cells, C=36, 20 cells",
                        "3.3M params (DARTS paper); 3,349,342 in the authors' code")
