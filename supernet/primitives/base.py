"""What every choice primitive shares: the decisions it declares and how it freezes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from supernet.context import current_fixed_arch

__all__ = ["Choice", "Condition", "FixableMeta", "Mutable", "cell_repr", "labels_below", "layout_repr", "lookup_fixed",
           "span"]


@dataclass
class Choice:
    """One decision of a search space: a label and the values it may take.

    ``kind`` is ``layer_choice`` (values: candidate names), ``input_choice`` (values: sorted
    lists of input indices), ``value_choice``, ``repeat`` (values: depths) or
    ``model_parameter``.
    """

    label: str
    kind: str
    options: list[Any]
    prior: list[float] | None = None
    n_candidates: int | None = None  # input_choice only
    n_chosen: int | None = None  # input_choice only; None means any subset

    @property
    def default(self) -> Any:
        return self.options[0]

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of the allowed options."""
        return any(value == o and _same_kind(value, o) for o in self.options)

    def canonical(self, value: Any) -> Any:
        """The option equal to ``value`` as the space declares it (``12.0`` from a JSON file -> ``12``)."""
        return next((o for o in self.options if value == o and _same_kind(value, o)), value)

    def same_decision(self, other: Choice) -> bool:
        """Whether two declarations of one label describe the same decision."""
        family = {"repeat": "value_choice", "model_parameter": "value_choice"}
        return family.get(self.kind, self.kind) == family.get(other.kind, other.kind) and \
            len(self.options) == len(other.options) and all(a == b for a, b in zip(self.options, other.options))


def _same_kind(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    return isinstance(a, type(b)) or isinstance(b, type(a))


@dataclass
class Condition:
    """A part of a space is active only when ``label``'s value satisfies ``holds``."""

    label: str
    holds: Callable[[Any], bool] = field(repr=False)
    description: str = ""


class FixableMeta(type):
    """Metaclass of primitives: inside ``fixed_arch`` the constructor builds the fixed form."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        fixed = current_fixed_arch()
        if fixed is not None and hasattr(cls, "create_fixed"):
            return cls.create_fixed(fixed, *args, **kwargs)
        return super().__call__(*args, **kwargs)


class Mutable:
    """Mixin of modules that hold choices. The walker in ``supernet.space`` reads these hooks."""

    label: str

    def decisions(self) -> list[Choice]:
        """The decisions this module itself declares (not those of its children)."""
        return []

    def conditional_children(self) -> Iterator[tuple[str, nn.Module, list[Condition]]]:
        """Child modules with the conditions under which each is part of the network."""
        for name, child in self.named_children():  # type: ignore[attr-defined]
            yield name, child, []

    def decision_conditions(self) -> Mapping[str, Condition]:
        """Conditions under which some of this module's own decisions matter (none by default)."""
        return {}

    def freeze(self, arch: Mapping[str, Any]) -> nn.Module:
        """This module's fixed form under ``arch`` (children may still hold choices)."""
        raise NotImplementedError

    def check(self, arch: Mapping[str, Any]) -> None:
        """Raise ValueError if ``arch`` breaks a constraint of this module (e.g. max edges)."""

    def count(self) -> int | None:
        """The number of distinct settings of this module's own labels, if constraints tie them."""
        return None


def as_declared(value: Any, options: Sequence[Any]) -> Any:
    """The tuple or list option that ``value`` equals element by element (at any depth), else ``value``.

    JSON (arch.json, the tuner format) and ``fixed_arch`` read a tuple as a list, so ``[3, 5]`` stands for
    the option ``(3, 5)``; candidates that differ only so are refused as duplicates, so the match is unique.
    """
    if isinstance(value, (list, tuple)):
        return next((o for o in options if same_sequence(value, o)), value)
    return value


def same_sequence(a: Any, b: Any) -> bool:
    """Equal as JSON would write them: lists and tuples alike, numbers as ``Choice.contains`` compares them."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_sequence(x, y) or x == y and _same_kind(x, y) for x, y in zip(a, b))
    return False


def lookup_fixed(arch: Mapping[str, Any], label: str, options: Sequence[Any]) -> Any:
    """``arch[label]`` checked against ``options``; a clear error names the label otherwise."""
    if label not in arch:
        raise ValueError(f"the architecture has no value for {label!r}; allowed: {list(options)}")
    value = as_declared(arch[label], list(options))  # fixed_arch reads tuples as lists, as JSON does
    if not any(value == o for o in options):
        raise ValueError(f"invalid value {arch[label]!r} for {label!r}; allowed: {list(options)}")
    return value


# -- printing: a space's repr names its decisions without printing every candidate's layers -------------
def layout_repr(module: nn.Module, extra: Sequence[str], children: Sequence[tuple[str, str]]) -> str:
    """torch's ``Module.__repr__`` layout, for the given extra lines and ``(name, repr)`` children."""
    from torch.nn.modules.module import _addindent

    lines = [*extra, *(f"({name}): {_addindent(text, 2)}" for name, text in children)]
    if len(extra) == 1 and not children:
        return f"{module._get_name()}({extra[0]})"
    return f"{module._get_name()}(" + ("\n  " + "\n  ".join(lines) + "\n" if lines else "") + ")"


def cell_repr(module: nn.Module, extra: Sequence[str]) -> str:
    """A cell's repr: ``extra`` lines, each container of per-edge modules (nested ModuleLists/Dicts) in one
    line that counts its modules by class, the other children (pre-, postprocessors) in full."""
    children = []
    for name, child in module.named_children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            counts = Counter(type(m).__name__ for m in _leaves(child))
            child_repr = f"{child._get_name()}({', '.join(f'{n} x {kind}' for kind, n in counts.items())})"
        else:
            child_repr = repr(child)
        children.append((name, child_repr))
    return layout_repr(module, extra, children)


def _leaves(container: nn.Module) -> Iterator[nn.Module]:
    for child in container.children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            yield from _leaves(child)
        else:
            yield child


def labels_below(module: nn.Module) -> list[str]:
    """The labels of the decisions held in ``module`` and its submodules, each once, in order."""
    labels: dict[str, None] = {}
    for m in module.modules():
        if isinstance(m, Mutable):
            labels.update((c.label, None) for c in m.decisions())
    return list(labels)


def span(labels: Sequence[str], most: int = 12) -> str:
    """``'a', 'b'`` for a few labels; ``'a', 'b', ..., 'z' (n labels)`` past ``most``."""
    if len(labels) <= most:
        return ", ".join(repr(label) for label in labels)
    return ", ".join(repr(label) for label in labels[: most - 1]) + f", ..., {labels[-1]!r} ({len(labels)} labels)"
