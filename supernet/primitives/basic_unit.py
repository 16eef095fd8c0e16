"""Basic units: modules whose constructor arguments may be ValueChoices.

``basic_unit(SomeModule)`` gives a class that builds a plain ``SomeModule`` when no
argument holds a choice, and otherwise a *mutable* instance that records its
arguments and runs at the default values. Freezing rebuilds ``SomeModule`` with the
chosen values (carrying over the overlapping slice of the weights).
"""

from __future__ import annotations

import copyreg
import functools
import inspect
import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

from supernet.context import current_fixed_arch
from supernet.primitives.base import Choice, Mutable
from supernet.primitives.value_choice import (
    contains_choice,
    default_nested,
    evaluate_nested,
    leaf_choices,
    plain_value,
)

__all__ = ["BasicUnit", "basic_unit", "copy_overlapping"]


class BasicUnitMeta(type):
    """Builds the plain base class whenever no argument holds a choice (and always in fixed_arch)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        base = cls.base_class  # type: ignore[attr-defined]
        if current_fixed_arch() is not None or not contains_choice((args, kwargs)):
            return base(*plain_value(args), **plain_value(kwargs))
        return super().__call__(*args, **kwargs)


class BasicUnit(Mutable):
    """Mixin of mutable basic units. ``init_arguments`` maps parameter names to (lazy) values."""

    base_class: type[nn.Module]
    init_arguments: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "base_class" not in cls.__dict__ and not getattr(cls, "is_mixed", False):
            base = next(c for c in cls.__mro__ if "base_class" in c.__dict__).base_class
            raise TypeError(f"{cls.__name__} subclasses the basic unit supernet.nn.{base.__name__}; subclass "
                            f"{base.__module__}.{base.__qualname__} instead, and decorate the subclass with "
                            "@supernet.nn.basic_unit if it should take ValueChoice arguments")

    def _record_and_init(self, args: tuple, kwargs: dict) -> None:
        signature = inspect.signature(self.base_class.__init__)
        bound = signature.bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(signature.parameters)))  # self
        defaults = default_nested((args, kwargs))
        self.base_class.__init__(self, *defaults[0], **defaults[1])
        object.__setattr__(self, "init_arguments", arguments)

    @property
    def _signature(self) -> inspect.Signature:
        return _signature_of(self.base_class)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        return {k: v for k, v in state.items() if not k.endswith("_cache")}  # caches are rebuilt on demand

    def evaluated_arguments(self, values: Mapping[str, Any]) -> tuple[tuple, dict]:
        """Positional and keyword arguments for the base class under ``values``."""
        return self.call_arguments(evaluate_nested(self.init_arguments, values))

    def call_arguments(self, arguments: Mapping[str, Any]) -> tuple[tuple, dict]:
        """``(args, kwargs)`` calling the base class with ``arguments`` (parameter name -> value)."""
        bound = inspect.BoundArguments(self._signature, {"self": None, **arguments})
        return bound.args[1:], bound.kwargs

    def decisions(self) -> list[Choice]:
        return [Choice(c.label, "value_choice", list(c.candidates), c.prior)
                for c in leaf_choices(self.init_arguments)]

    def conditional_children(self):  # a basic unit is opaque: its insides are rebuilt from the arguments
        return iter(())

    def freeze(self, arch: Mapping[str, Any]) -> nn.Module:
        args, kwargs = self.evaluated_arguments(arch)
        fixed = self.base_class(*args, **kwargs)
        copy_overlapping(self, fixed)
        return fixed

    def extra_repr(self) -> str:
        choices = ", ".join(f"{k}={v!r}" for k, v in self.init_arguments.items() if contains_choice(v))
        return f"{super().extra_repr()}, choices: {choices}" if choices else super().extra_repr()


@functools.cache
def _signature_of(cls: type) -> inspect.Signature:
    return inspect.signature(cls.__init__)


def slice_to(source: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """The part of ``source`` that a tensor of ``shape`` (no larger in any dimension) inherits.

    Leading dimensions keep their first entries; for tensors of 3+ dimensions (convolution
    kernels) the spatial dimensions keep the centre, so a 3x3 kernel is the centre of a 5x5.
    """
    index = []
    for d, (s, t) in enumerate(zip(source.shape, shape)):
        if t > s:
            raise ValueError(f"cannot take a {tuple(shape)} slice of a {tuple(source.shape)} tensor")
        start = (s - t) // 2 if source.dim() >= 3 and d >= 2 else 0
        index.append(slice(start, start + t))
    return source[tuple(index)]


def copy_overlapping(source: nn.Module, target: nn.Module) -> None:
    """Copy each tensor of ``source`` into ``target``'s tensor of the same name, over the overlap
    (as :func:`slice_to` takes it; a target larger than the source keeps the rest of its values)."""
    source_state = source.state_dict()
    with torch.no_grad():
        for name, dst in target.state_dict(keep_vars=True).items():
            src = source_state.get(name)
            if src is None or isinstance(src, UninitializedTensorMixin):
                continue
            if isinstance(dst, UninitializedTensorMixin):  # a lazy module of the target: take the source's shape
                dst.materialize(src.shape)
            if src.dim() != dst.dim():
                continue
            common = tuple(min(a, b) for a, b in zip(src.shape, dst.shape))
            slice_to(dst, common).copy_(slice_to(src, common))


def basic_unit(cls: type[nn.Module]) -> type[nn.Module]:
    """Let ``cls`` take ValueChoices as constructor arguments (a decorator).

    ``cls(...)`` without choices is the plain ``cls``; with choices it is a mutable unit
    whose every choice is a decision of the space. The unit is treated as a whole: its
    insides are rebuilt from the chosen arguments when the space is frozen. One class is
    made per ``cls`` (a second call returns it), so pickle can rebuild it as ``basic_unit(cls)``.
    """
    if isinstance(cls, BasicUnitMeta):
        return cls
    if cls in _UNITS:
        return _UNITS[cls]
    qualname = cls.__qualname__
    if "<locals>" not in qualname and _lookup(cls.__module__, qualname) is not cls:
        # the decorator form: the module's name ``qualname`` will be the unit, which hides ``cls``;
        # pickle finds plain instances' class by its qualified name, so name it where it is reachable
        cls.__qualname__ = f"{qualname}.base_class"

    def __init__(self: BasicUnit, *args: Any, **kwargs: Any) -> None:
        self._record_and_init(args, kwargs)

    _UNITS[cls] = BasicUnitMeta(cls.__name__, (BasicUnit, cls), {
        "__init__": __init__,
        "base_class": cls,
        "__module__": cls.__module__,
        "__qualname__": qualname,
        "__doc__": cls.__doc__,
    })
    return _UNITS[cls]


_UNITS: dict[type, BasicUnitMeta] = {}  # plain class -> its basic unit


def _lookup(module: str, qualname: str) -> Any:
    """The object named ``module.qualname`` if it exists now (what pickle would find), else None."""
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def _reduce_unit_class(cls: BasicUnitMeta) -> Any:
    """Pickle a basic-unit class: by its name where that name reaches it (a decorated class, a subclass
    written in a module), else as the call ``basic_unit(base_class)``: ``supernet.nn.Conv2d`` shares torch's
    name, which pickle would resolve to torch's own ``Conv2d``."""
    if _lookup(cls.__module__, cls.__qualname__) is not cls and _UNITS.get(cls.__dict__.get("base_class")) is cls:
        return basic_unit, (cls.base_class,)
    return cls.__qualname__


copyreg.pickle(BasicUnitMeta, _reduce_unit_class)
