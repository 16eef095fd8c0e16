"""Construction-time context: automatic labels and the fixed architecture being built.

Labels are given when a primitive is constructed, so deep copies share them. Automatic
labels count per kind inside a namespace; the outermost ``supernet.nn.Module`` under
construction opens a fresh namespace, so building the same space twice gives the same
labels. Factories that primitives call (Repeat blocks, Cell ops) run in a child
namespace, so how many of them run does not shift the labels that come after.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["auto_label", "current_fixed_arch", "fixed_arch", "fresh_label_namespace", "label_namespace",
           "model_parameter_scope", "register_model_parameter"]


class _Namespace:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.counters: dict[str, int] = defaultdict(int)


class _State(threading.local):
    def __init__(self) -> None:
        self.namespaces: list[_Namespace] = [_Namespace()]
        self.fixed: list[Mapping[str, Any]] = []
        self.building: list[object] = []
        self.model_parameters: list[list[Any]] = []


_state = _State()


def auto_label(kind: str, label: str | None = None) -> str:
    """Return ``label`` if given (validated), else the next automatic label of ``kind``."""
    if label is not None:
        if not isinstance(label, str) or not label:
            raise ValueError(f"label must be a non-empty string, got {label!r}")
        return label
    ns = _state.namespaces[-1]
    ns.counters[kind] += 1
    return f"{ns.prefix}{kind}_{ns.counters[kind]}"


@contextlib.contextmanager
def label_namespace(prefix: str) -> Iterator[None]:
    """Automatic labels created inside get ``prefix/`` in front and their own counters."""
    _state.namespaces.append(_Namespace(prefix.rstrip("/") + "/"))
    try:
        yield
    finally:
        _state.namespaces.pop()


@contextlib.contextmanager
def fresh_label_namespace() -> Iterator[None]:
    """A new root namespace: automatic labels start counting from 1 again."""
    saved = _state.namespaces
    _state.namespaces = [_Namespace()]
    try:
        yield
    finally:
        _state.namespaces = saved


@contextlib.contextmanager
def fixed_arch(arch: Mapping[str, Any], space: Any = None) -> Iterator[None]:
    """Build models with ``arch``'s values: every primitive constructed inside returns its fixed form.

    ``supernet.freeze`` uses this to rebuild a space; it can also be used directly::

        with supernet.fixed_arch({"conv": "1", "hidden": 64}):
            net = MySpace()          # a plain network, no choices left

    ``space`` (the SearchSpace ``arch`` belongs to, optional) reads its values as the space
    declares them: a list from JSON for a tuple option becomes that tuple.
    """
    from supernet.space import normalize_arch

    _state.fixed.append(normalize_arch(arch, space))
    try:
        yield
    finally:
        _state.fixed.pop()


def current_fixed_arch() -> Mapping[str, Any] | None:
    """The architecture of the innermost ``fixed_arch`` context, or None outside one."""
    return _state.fixed[-1] if _state.fixed else None


@contextlib.contextmanager
def no_fixed_arch() -> Iterator[None]:
    """Temporarily leave any ``fixed_arch`` context (to build the full space inside one)."""
    saved = _state.fixed
    _state.fixed = []
    try:
        yield
    finally:
        _state.fixed = saved


def building_stack() -> list[object]:
    """Modules whose constructor is running, outermost first (used by ``supernet.nn.Module``)."""
    return _state.building


@contextlib.contextmanager
def model_parameter_scope() -> Iterator[list[Any]]:
    """Collects the ModelParameterChoices created while the outermost space is built."""
    _state.model_parameters.append([])
    try:
        yield _state.model_parameters[-1]
    finally:
        _state.model_parameters.pop()


def register_model_parameter(choice: Any) -> None:
    """Record a ModelParameterChoice's decision on the space being built."""
    if not _state.model_parameters:
        raise RuntimeError(f"ModelParameterChoice {choice.label!r} must be created inside the constructor of a "
                           "supernet.nn.Module subclass (which records it as a decision of the space)")
    _state.model_parameters[-1].append(choice)
