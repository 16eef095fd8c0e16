"""What every choice primitive shares: the decisions it declares and how it freezes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from supernet.context import current_fixed_arch

__all__ = ["Choice", "Condition", "FixableMeta", "Mutable", "lookup_fixed"]


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


def lookup_fixed(arch: Mapping[str, Any], label: str, options: Sequence[Any]) -> Any:
    """``arch[label]`` checked against ``options``; a clear error names the label otherwise."""
    if label not in arch:
        raise ValueError(f"the architecture has no value for {label!r}; allowed: {list(options)}")
    value = arch[label]
    if not any(value == o for o in options):
        raise ValueError(f"invalid value {value!r} for {label!r}; allowed: {list(options)}")
    return value
