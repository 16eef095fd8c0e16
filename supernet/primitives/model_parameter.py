"""ModelParameterChoice: a choice that is a plain value while the model is built."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from supernet.context import auto_label, current_fixed_arch, register_model_parameter
from supernet.primitives.base import Choice, lookup_fixed
from supernet.primitives.value_choice import _check_candidates, _check_prior

__all__ = ["ModelParameterChoice"]


class ModelParameterChoice:
    """Choose a hyper-parameter of the architecture that the constructor uses as a plain value.

    Calling it returns ``default`` (the first candidate unless said otherwise) while the
    space is built and the chosen value inside ``fixed_arch``, so it works in ``if``,
    ``range`` and ``torch.zeros(...)``. Spaces using it are frozen by rebuilding; it must be
    created inside the constructor of a ``supernet.nn.Module`` subclass, which records it.
    One-shot supernets cannot share weights across its values.
    """

    @staticmethod
    def FIRST() -> Callable[[list[Any]], Any]:  # noqa: N802 - the reference API's name
        return lambda candidates: candidates[0]

    @staticmethod
    def LAST() -> Callable[[list[Any]], Any]:  # noqa: N802
        return lambda candidates: candidates[-1]

    def __new__(cls, candidates: Sequence[Any], *, prior: Sequence[float] | None = None,
                default: Any = None, label: str | None = None) -> Any:  # type: ignore[misc]
        label = auto_label("model_parameter", label)
        candidates = _check_candidates(candidates, label)
        prior = _check_prior(prior, len(candidates), f"ModelParameterChoice {label!r}")
        if default is None:
            default = candidates[0]
        elif callable(default):
            default = default(candidates)
        if not any(default == c for c in candidates):
            raise ValueError(f"ModelParameterChoice {label!r}: default {default!r} is not among {candidates}")
        first = next(i for i, c in enumerate(candidates) if c == default)
        order = [first] + [i for i in range(len(candidates)) if i != first]
        register_model_parameter(Choice(label, "model_parameter", [candidates[i] for i in order],
                                        [prior[i] for i in order] if prior else None))
        fixed = current_fixed_arch()
        return lookup_fixed(fixed, label, candidates) if fixed is not None else default
