"""The table that turns a space into a supernet: primitive type x family -> mixed op.

``convert(model, family)`` walks the model and replaces every module that holds a choice
by the mixed op registered for its type (basic units are looked up by the torch class
they wrap). Modules without choices stay as they are. Register your own primitive with
``register_mixed_op(MyPrimitive, "path_sampling", MyPathSamplingOp)``; a mixed op class
provides ``from_primitive(module, state) -> nn.Module``. ``KEEP`` registers a primitive
that works as it is once its children are converted (e.g. a cell made of LayerChoices).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from supernet.oneshot.state import ArchState
from supernet.primitives.base import Mutable
from supernet.primitives.basic_unit import BasicUnit
from supernet.primitives.value_choice import ValueChoiceX, leaf_choices
from supernet.space import search_space

__all__ = ["FAMILIES", "KEEP", "UnsupportedChoice", "convert", "export_arch", "mixed_op_for", "register_mixed_op"]


class UnsupportedChoice(TypeError):
    """Raised by ``from_primitive`` when a mixed op cannot handle this instance of its primitive."""

FAMILIES = ("differentiable", "path_sampling", "binary_gate")
KEEP = "keep"

_TABLE: dict[str, dict[type, Any]] = {family: {} for family in FAMILIES}


def register_mixed_op(primitive: type, family: str, mixed: Any) -> None:
    """Make ``primitive`` searchable in ``family`` with the mixed op class ``mixed`` (or ``KEEP``).

    For a basic unit, ``primitive`` is the torch class it wraps (e.g. ``torch.nn.Conv2d``).
    A later registration for the same primitive and family replaces the earlier one.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {list(FAMILIES)}")
    if mixed is not KEEP and not hasattr(mixed, "from_primitive"):
        raise TypeError(f"{mixed!r} needs a classmethod from_primitive(module, state)")
    _TABLE[family][primitive] = mixed


def _lookup_types(module: nn.Module) -> list[type]:
    if isinstance(module, BasicUnit):  # by the torch class it wraps, then the entry for any basic unit
        return [c for c in module.base_class.__mro__ if c not in (nn.Module, object)] + [BasicUnit]
    return [c for c in type(module).__mro__ if c not in (nn.Module, object)]


def mixed_op_for(module: nn.Module, family: str) -> Any | None:
    """The registered mixed op of ``module``'s type in ``family`` (nearest base class), or None."""
    for cls in _lookup_types(module):
        if cls in _TABLE[family]:
            return _TABLE[family][cls]
    return None


def convert(model: nn.Module, family: str) -> tuple[nn.Module, ArchState]:
    """Turn ``model`` into a supernet of ``family``, in place; returns ``(supernet, state)``.

    Raises one clear error naming the module path and the primitive when a choice has no
    mixed op in ``family``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {list(FAMILIES)}")
    mixed = next(((path, m) for path, m in model.named_modules() if getattr(m, "is_mixed", False)), None)
    if mixed is not None:
        raise TypeError(f"the model is already a supernet ({mixed[0] or '<model>'} is the mixed op "
                        f"{type(mixed[1]).__name__}); convert the space once, or build a fresh space to convert")
    space = search_space(model)
    fixed_only = [c.label for c in space.choices.values() if c.kind == "model_parameter"]
    if fixed_only:
        raise TypeError(f"ModelParameterChoice {fixed_only[0]!r} is a plain value at build time, so a supernet "
                        "cannot share weights across its values; use ValueChoice / Repeat, or search it by "
                        "freezing one network per value")
    state = ArchState(space, family)
    converted = _convert(model, family, state, "")
    for module in converted.modules():
        for value in vars(module).values():
            if isinstance(value, ValueChoiceX):
                state._value_choices.extend(leaf_choices(value))
    state.set_arch(state.arch)
    return converted, state


def _convert(module: nn.Module, family: str, state: ArchState, path: str) -> nn.Module:
    if isinstance(module, Mutable) and not getattr(module, "is_mixed", False):
        mixed = mixed_op_for(module, family)
        if mixed is None:
            kind = type(module).__name__ if not isinstance(module, BasicUnit) else \
                f"{module.base_class.__name__} with ValueChoice arguments"
            raise TypeError(f"{path or '<model>'}: {kind} has no {family} mixed op; register one with "
                            "supernet.oneshot.register_mixed_op")
        if mixed is not KEEP:
            try:
                module = mixed.from_primitive(module, state)
            except UnsupportedChoice as error:
                raise TypeError(f"{path or '<model>'}: {error}") from None
    if isinstance(module, BasicUnit):  # opaque: its insides are built from its arguments
        return module
    for name, child in list(module.named_children()):
        if child is None:
            continue
        new = _convert(child, family, state, f"{path}.{name}" if path else name)
        if new is not child:
            setattr(module, name, new)
    return module


def export_arch(supernet: nn.Module, state: ArchState) -> dict[str, Any]:
    """The architecture a supernet stands for now: the sampled one, updated by every op that
    learns its own decision (e.g. the argmax of a differentiable op's weights)."""
    arch = dict(state.arch)
    for module in supernet.modules():
        export = getattr(module, "export_arch", None)
        if callable(export):
            arch.update(export())
    return state.space.validate(arch)
