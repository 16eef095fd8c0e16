"""Mutators (seed 003): express a space as a base model plus code that mutates it.

A base model marks places with ``nn.Placeholder(label, **info)``. A ``Mutator`` subclass
implements ``mutate(model)``: it finds placeholders, asks ``self.choice(candidates)`` for
a decision and puts modules in their place. ``Mutator.apply(model)`` returns the
resulting search space, whose choices appear in ``search_space`` and freeze as usual.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import nn

from supernet.context import auto_label, label_namespace

__all__ = ["Mutator", "Placeholder"]


class Placeholder(nn.Module):
    """A spot in a base model that a :class:`Mutator` replaces; ``related_info`` is for the mutator."""

    def __init__(self, label: str, **related_info: Any) -> None:
        super().__init__()
        if not isinstance(label, str) or not label:
            raise ValueError(f"Placeholder needs a non-empty string label, got {label!r}")
        self.label = label
        self.related_info = related_info

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"Placeholder {self.label!r} was not replaced: apply a Mutator to the base model first")

    def extra_repr(self) -> str:
        return f"label={self.label!r}, " + ", ".join(f"{k}={v!r}" for k, v in self.related_info.items())


class Mutator:
    """Base class of user mutators: implement :meth:`mutate` with :meth:`choice`."""

    def __init__(self, label: str | None = None) -> None:
        self.label = label

    def mutate(self, model: nn.Module) -> None:
        """Change ``model`` in place (replace placeholders, insert choices)."""
        raise NotImplementedError("a Mutator subclass implements mutate(model)")

    def choice(self, candidates: Sequence[Any], label: str | None = None) -> Any:
        """A decision among ``candidates``: a LayerChoice for modules, else a ValueChoice.

        Automatic labels are ``{mutator label}/choice_{n}``. When the space is frozen the
        mutator runs again and this returns the chosen module or value.
        """
        from supernet.primitives.layer_choice import LayerChoice
        from supernet.primitives.value_choice import ValueChoice

        candidates = list(candidates)
        if candidates and all(isinstance(c, nn.Module) for c in candidates):
            return LayerChoice(candidates, label=label or auto_label("choice"))
        return ValueChoice(candidates, label=label or auto_label("choice"))

    @staticmethod
    def placeholders(model: nn.Module, label: str | None = None) -> list[tuple[str, Placeholder]]:
        """``(name, placeholder)`` for each placeholder in ``model`` (with ``label``, if given)."""
        return [(name, m) for name, m in model.named_modules()
                if isinstance(m, Placeholder) and (label is None or m.label == label)]

    @staticmethod
    def replace(model: nn.Module, name: str, module: nn.Module) -> None:
        """Put ``module`` at the dotted path ``name`` of ``model``."""
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module)

    def apply(self, model: nn.Module) -> nn.Module:
        """A mutated copy of ``model`` (the original is left as it is)."""
        mutated = copy.deepcopy(model)
        self._mutate_recorded(mutated)
        applied = list(mutated.__dict__.get("_supernet_mutators", [])) + [self]
        object.__setattr__(mutated, "_supernet_mutators", applied)
        return mutated

    def _mutate_recorded(self, model: nn.Module) -> None:
        with label_namespace(self.label or type(self).__name__):
            self.mutate(model)
