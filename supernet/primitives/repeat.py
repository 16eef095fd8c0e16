"""Repeat: stack a block a variable number of times."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch import nn

from supernet.context import auto_label, label_namespace
from supernet.primitives.base import (
    Choice,
    Condition,
    FixableMeta,
    Mutable,
    labels_below,
    layout_repr,
    lookup_fixed,
    span,
)
from supernet.primitives.value_choice import ValueChoice, ValueChoiceX

__all__ = ["Repeat"]

BlockSpec = nn.Module | Callable[[int], nn.Module] | Sequence[nn.Module | Callable[[int], nn.Module]]


def _depth_options(depth: Any, label: str | None) -> tuple[str, str, list[int], ValueChoiceX | None]:
    """(namespace for the blocks' labels, label of the depth decision, allowed depths, depth choice).

    A range becomes a ValueChoice labelled with the Repeat's label (inside ``fixed_arch``
    that is already the chosen depth). Either way the Repeat takes one automatic
    ``repeat`` label, so the labels after it do not depend on the mode.
    """
    own_label = auto_label("repeat", label)
    if isinstance(depth, (tuple, list)) and len(depth) == 2 and all(isinstance(d, int) for d in depth):
        low, high = depth
        if low > high:
            raise ValueError(f"Repeat depth range (min, max) needs min <= max, got {tuple(depth)}")
        if low < 0:
            raise ValueError(f"Repeat {own_label!r}: depths must be non-negative, got {tuple(depth)}")
        depth = low if low == high else ValueChoice(list(range(low, high + 1)), label=own_label)
    if isinstance(depth, ValueChoiceX):
        leaves = depth.inner_choices()
        if len(leaves) != 1:
            raise ValueError(f"Repeat depth must depend on one ValueChoice, got {depth!r}")
        options: list[int] = depth.all_options()
        choice: ValueChoiceX | None = depth
        depth_label = leaves[0].label
    elif isinstance(depth, int) and not isinstance(depth, bool):
        options, choice, depth_label = [int(depth)], None, own_label
    else:
        raise TypeError(f"Repeat depth must be an int, a (min, max) tuple or a ValueChoice, got {depth!r}")
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in options):
        raise ValueError(f"Repeat {depth_label!r}: depths must be non-negative ints, got {options}")
    return own_label, depth_label, options, choice


def _build_blocks(blocks: BlockSpec, count: int, label: str) -> list[nn.Module]:
    if isinstance(blocks, nn.Module):
        return [blocks] + [copy.deepcopy(blocks) for _ in range(count - 1)] if count else []
    if callable(blocks):
        built = []
        for i in range(count):
            with label_namespace(f"{label}/{i}"):
                built.append(blocks(i))
        return built
    if isinstance(blocks, (list, tuple, nn.ModuleList)):
        if len(blocks) < count:
            raise ValueError(f"Repeat {label!r}: {len(blocks)} blocks given but the maximum depth is {count}")
        built = []
        for i, block in enumerate(list(blocks)[:count]):
            if isinstance(block, nn.Module):
                built.append(block)
            else:
                with label_namespace(f"{label}/{i}"):
                    built.append(block(i))
        return built
    raise TypeError(f"Repeat {label!r}: blocks must be a module, a factory or a list, got {type(blocks).__name__}")


class _DepthAbove:
    """``holds(v)``: the depth is above ``index`` when the depth's leaf ``label`` takes ``v`` (an object, not a
    closure, since a supernet's state keeps the conditions and must pickle)."""

    def __init__(self, depth_choice: ValueChoiceX, label: str, index: int) -> None:
        self.depth_choice, self.label, self.index = depth_choice, label, index

    def __call__(self, value: Any) -> bool:
        return self.depth_choice.evaluate_with({self.label: value}) > self.index


class Repeat(Mutable, nn.Module, metaclass=FixableMeta):
    """Repeat ``blocks`` ``depth`` times; depth is an int, a ``(min, max)`` range or a ValueChoice.

    ``blocks`` is a module (deep-copied, so copies share their labels), a list of
    modules, or a factory ``index -> module`` (each call may use its own labels). The
    depth label's value is the number of blocks; frozen, a Repeat is ``nn.Sequential``.
    """

    def __init__(self, blocks: BlockSpec, depth: int | tuple[int, int] | ValueChoiceX, *,
                 label: str | None = None) -> None:
        super().__init__()
        namespace, self.label, self.depth_options, self.depth_choice = _depth_options(depth, label)
        self.blocks = nn.ModuleList(_build_blocks(blocks, max(self.depth_options), namespace))

    @classmethod
    def create_fixed(cls, fixed: Mapping[str, Any], blocks: BlockSpec, depth: Any, *,
                     label: str | None = None) -> nn.Sequential:
        namespace, _, options, _ = _depth_options(depth, label)
        return nn.Sequential(*_build_blocks(blocks, options[0], namespace))

    @property
    def min_depth(self) -> int:
        return min(self.depth_options)

    @property
    def max_depth(self) -> int:
        return max(self.depth_options)

    def _depth_of(self, arch: Mapping[str, Any]) -> int:
        if self.depth_choice is None:
            return self.depth_options[0]
        leaf = self.depth_choice.inner_choices()[0]
        lookup_fixed(arch, leaf.label, leaf.candidates)
        return self.depth_choice.evaluate_with(arch)

    def forward(self, x: Any) -> Any:
        depth = self.depth_choice() if self.depth_choice is not None else self.depth_options[0]
        for block in self.blocks[:depth]:
            x = block(x)
        return x

    def decisions(self) -> list[Choice]:
        if self.depth_choice is None:
            return []
        leaf = self.depth_choice.inner_choices()[0]
        kind = "repeat" if leaf is self.depth_choice else "value_choice"
        return [Choice(leaf.label, kind, list(leaf.candidates), leaf.prior)]

    def conditional_children(self) -> Iterator[tuple[str, nn.Module, list[Condition]]]:
        for i, block in enumerate(self.blocks):
            if self.depth_choice is None or i < self.min_depth:
                yield f"blocks.{i}", block, []
            else:
                leaf = self.depth_choice.inner_choices()[0]
                yield f"blocks.{i}", block, [Condition(leaf.label, _DepthAbove(self.depth_choice, leaf.label, i),
                                                       f"depth > {i}")]

    def freeze(self, arch: Mapping[str, Any]) -> nn.Sequential:
        return nn.Sequential(*self.blocks[: self._depth_of(arch)])

    def extra_repr(self) -> str:
        return f"depth={self.depth_options}, label={self.label!r}"

    def __repr__(self) -> str:
        """The first block in full, each further one in a line with the decisions it holds (as torch
        collapses repeated blocks; ``print(repeat.blocks[i])`` shows one)."""
        runs: list[list] = []  # [first index, last index, text]: equal lines run together, "(1-5): 5 x ..."
        for i, block in enumerate(self.blocks):
            text = repr(block) if i == 0 else _one_line(block)
            if i > 1 and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        blocks = [(str(a), text) if a == b else (f"{a}-{b}", f"{b - a + 1} x {text}") for a, b, text in runs]
        children = [(name, layout_repr(self.blocks, [], blocks) if name == "blocks" else repr(child))
                    for name, child in self._modules.items()]
        return layout_repr(self, [self.extra_repr()], children)


def _one_line(module: nn.Module) -> str:
    text = repr(module)
    if "\n" not in text:
        return text
    labels = labels_below(module)
    return f"{module._get_name()}(...{', decisions ' + span(labels) if labels else ''})"
