"""LayerChoice: pick one of several candidate modules."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch import nn

from supernet.context import auto_label
from supernet.primitives.base import Choice, Condition, FixableMeta, Mutable, lookup_fixed
from supernet.primitives.value_choice import _check_prior

__all__ = ["LayerChoice"]


def _parse_candidates(candidates: Any, label: str) -> tuple[list[str], list[nn.Module]]:
    if isinstance(candidates, Mapping):
        names, modules = [str(k) for k in candidates], list(candidates.values())
    elif isinstance(candidates, (list, tuple, nn.ModuleList)):
        names, modules = [str(i) for i in range(len(candidates))], list(candidates)
    else:
        raise TypeError(f"LayerChoice {label!r}: candidates must be a list or an OrderedDict of modules, "
                        f"got {type(candidates).__name__}")
    if not modules:
        raise ValueError(f"LayerChoice {label!r}: candidates must not be empty")
    for name, module in zip(names, modules):
        if not isinstance(module, nn.Module):
            raise TypeError(f"LayerChoice {label!r}: candidate {name!r} is a {type(module).__name__}, "
                            "not an nn.Module")
        if "." in name or not name:
            raise ValueError(f"LayerChoice {label!r}: candidate name {name!r} must be non-empty without '.'")
    return names, modules


class LayerChoice(Mutable, nn.Module, metaclass=FixableMeta):
    """Choose one of ``candidates`` (a list, or an OrderedDict of named modules).

    The architecture value is the chosen candidate's name (``'0'``, ``'1'``, ... for a
    list). Called as a module, the space runs its first candidate.
    """

    def __init__(self, candidates: Sequence[nn.Module] | Mapping[str, nn.Module], *,
                 prior: Sequence[float] | None = None, label: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        label = _label(label, kwargs)
        self.label = label
        names, modules = _parse_candidates(candidates, label)
        for name, module in zip(names, modules):
            self.add_module(name, module)
        self.prior = _check_prior(prior, len(names), f"LayerChoice {label!r}")

    @classmethod
    def create_fixed(cls, fixed: Mapping[str, Any], candidates: Any, *, prior: Any = None,
                     label: str | None = None, **kwargs: Any) -> nn.Module:
        label = _label(label, kwargs)
        names, modules = _parse_candidates(candidates, label)
        return modules[names.index(_chosen_name(fixed, label, names))]

    # -- container protocol ----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names of the candidates, in order."""
        return list(self._modules)

    @property
    def choices(self) -> list[nn.Module]:
        """Deprecated: ``list(layer_choice)``."""
        return list(self)

    @property
    def length(self) -> int:
        """Deprecated: ``len(layer_choice)``."""
        return len(self)

    def _name_of(self, key: int | str) -> str:
        if isinstance(key, int) and not isinstance(key, bool):
            if not -len(self) <= key < len(self):
                raise IndexError(f"LayerChoice {self.label!r} has {len(self)} candidates; index {key} is out of range")
            return self.names[key]
        if key not in self._modules:
            raise KeyError(f"LayerChoice {self.label!r} has no candidate {key!r}; candidates: {self.names}")
        return key

    def __getitem__(self, key: int | str) -> nn.Module:
        return self._modules[self._name_of(key)]

    def __setitem__(self, key: int | str, module: nn.Module) -> None:
        self._modules[self._name_of(key)] = module

    def __delitem__(self, key: int | str) -> None:
        name = self._name_of(key)
        if len(self) == 1:
            raise ValueError(f"LayerChoice {self.label!r}: cannot delete its last candidate")
        index = self.names.index(name)
        del self._modules[name]
        if self.prior is not None:
            del self.prior[index]
            total = sum(self.prior)
            self.prior = [p / total for p in self.prior]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self[0](*args, **kwargs)

    # -- Mutable ---------------------------------------------------------------------------------
    def decisions(self) -> list[Choice]:
        return [Choice(self.label, "layer_choice", self.names, self.prior)]

    def conditional_children(self) -> Iterator[tuple[str, nn.Module, list[Condition]]]:
        for name, module in self._modules.items():
            # a partial, not a lambda: a supernet's state keeps the conditions, and it must pickle
            yield name, module, [Condition(self.label, functools.partial(operator.eq, name),
                                           f"{self.label} == {name!r}")]

    def freeze(self, arch: Mapping[str, Any]) -> nn.Module:
        return self[_chosen_name(arch, self.label, self.names)]

    def extra_repr(self) -> str:
        return f"label={self.label!r}"

    def __repr__(self) -> str:
        """One line: the label and each candidate's name and class (``print(choice[name])`` shows one)."""
        candidates = ", ".join(f"{name!r}: {type(m).__name__}" for name, m in self._modules.items())
        return f"{self._get_name()}({self.extra_repr()}, candidates={{{candidates}}})"


def _label(label: str | None, kwargs: dict[str, Any]) -> str:
    if "key" in kwargs:  # the older name of `label`
        label = label or kwargs.pop("key")
    if kwargs:
        raise TypeError(f"LayerChoice got unexpected arguments {sorted(kwargs)}")
    return auto_label("layer_choice", label)


def _chosen_name(arch: Mapping[str, Any], label: str, names: list[str]) -> str:
    value = arch.get(label)
    if isinstance(value, int) and not isinstance(value, bool) and str(value) in names and value not in names:
        return str(value)  # list candidates may be chosen by index
    return lookup_fixed(arch, label, names)


