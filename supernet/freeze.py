"""Freezing: turn a space (or a supernet) and an architecture into a plain fixed network."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from supernet.context import fixed_arch, no_fixed_arch
from supernet.primitives.base import Mutable
from supernet.primitives.basic_unit import BasicUnit, copy_overlapping
from supernet.primitives.module import init_arguments
from supernet.primitives.value_choice import ValueChoiceX, callable_value
from supernet.space import SearchSpace, search_space

__all__ = ["freeze", "freeze_in_place"]


def freeze(model: nn.Module, arch: Mapping[str, Any], inherit_weights: bool = False) -> nn.Module:
    """A fixed network of plain torch modules for ``arch`` (an arch dict or seed 004 parameters).

    A space whose class derives from ``supernet.nn.Module`` is rebuilt with the chosen
    values (as its constructor would build it, fresh weights); other models are frozen
    on a copy, choice by choice, with their parameters re-initialised. With
    ``inherit_weights=True`` the fixed network starts from ``model``'s weights, sliced to
    the chosen sizes. The model itself is never changed.
    """
    space = search_space(model)
    arch = space.validate(arch)
    if init_arguments(model) is not None:
        fixed = rebuild(model, arch, space)
        if inherit_weights:
            _check_holds(model, arch)
            donor = freeze_in_place(_copy_structure(model), arch)
            _inherit(fixed, donor)
    else:
        if inherit_weights:
            _check_holds(model, arch)
        fixed = freeze_in_place(copy.deepcopy(model), arch)
        if not inherit_weights:
            _reset_parameters(fixed)
    fixed.train(model.training)
    return fixed


def _copy_structure(model: nn.Module) -> nn.Module:
    """A copy of the module tree that shares the tensors (enough to read the frozen weights from)."""
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    for module in model.modules():  # the architecture state of a supernet is read, not changed
        state = module.__dict__.get("_state")
        if state is not None:
            memo[id(state)] = state
    return copy.deepcopy(model, memo)


def rebuild(model: nn.Module, arch: Mapping[str, Any], space: SearchSpace | None = None) -> nn.Module:
    """Build ``model``'s class again from its recorded arguments, inside ``fixed_arch(arch, space)``."""
    recorded = init_arguments(model)
    if recorded is None:
        raise TypeError(f"{type(model).__name__} does not record its constructor arguments; "
                        "derive it from supernet.nn.Module to rebuild it")
    args, kwargs = copy.deepcopy(recorded)
    with no_fixed_arch(), fixed_arch(arch, space):
        fixed = type(model)(*args, **kwargs)
        for mutator in model.__dict__.get("_supernet_mutators", []):
            mutator._mutate_recorded(fixed)
    return fixed


def freeze_in_place(module: nn.Module, arch: Mapping[str, Any]) -> nn.Module:
    """Replace every choice in ``module`` by its fixed form under ``arch``, keeping weights."""
    while isinstance(module, Mutable):
        module = module.freeze(arch)
    for name, child in list(module.named_children()):
        if child is None:
            continue
        fixed = freeze_in_place(child, arch)
        if fixed is not child:
            setattr(module, name, fixed)
    for name, value in list(vars(module).items()):
        if isinstance(value, ValueChoiceX):
            object.__setattr__(module, name, callable_value(value.evaluate_with(arch)))
    for attribute in ("_supernet_init_arguments", "_supernet_model_parameters", "_supernet_mutators"):
        module.__dict__.pop(attribute, None)
    return module


def _inherit(fixed: nn.Module, donor: nn.Module) -> None:
    missing = sorted(set(fixed.state_dict()) - set(donor.state_dict()) - _identity_affine(fixed, donor))
    if missing:
        raise ValueError(f"cannot inherit weights: the rebuilt network has {len(missing)} tensors the supernet "
                         f"does not (e.g. {missing[0]!r})")
    copy_overlapping(donor, fixed)


def _check_holds(model: nn.Module, arch: Mapping[str, Any]) -> None:
    """Refuse to inherit from a unit that holds a tensor smaller than ``arch`` needs: its frozen form
    would copy the overlap and leave the rest freshly initialised without a word. That is a space
    built at its first values (not converted); a supernet holds the largest values."""
    for path, unit in model.named_modules():
        if not isinstance(unit, BasicUnit) or getattr(unit, "is_mixed", False):
            continue
        held = unit.state_dict()
        for name, tensor in unit.freeze(arch).state_dict().items():
            source = held.get(name)
            if source is not None and source.dim() == tensor.dim() and any(
                    s < t for s, t in zip(source.shape, tensor.shape)):
                raise ValueError(f"cannot inherit weights: {path}.{name} holds {tuple(source.shape)} but the "
                                 f"architecture needs {tuple(tensor.shape)}; the model is a space, not a supernet "
                                 "holding the largest values: convert it (supernet.oneshot.convert) and train it, "
                                 "or pass the search's supernet (algorithm.supernet)")


def _reset_parameters(module: nn.Module) -> None:
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()


def _identity_affine(fixed: nn.Module, donor: nn.Module) -> set[str]:
    """The scale and shift of the fixed net's affine BatchNorms whose supernet BatchNorm has none
    (a DARTS or SPOS search supernet): they keep their initial 1 and 0, which compute the same."""
    donors = dict(donor.named_modules())
    names: set[str] = set()
    for path, module in fixed.named_modules():
        other = donors.get(path)
        if isinstance(module, _BatchNorm) and module.affine and isinstance(other, _BatchNorm) and not other.affine:
            names |= {f"{path}.weight", f"{path}.bias"}
    return names
