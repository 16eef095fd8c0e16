"""Registry of published (searched) architectures, by name.

A space file registers its published networks with :func:`register_searched_model` (an
architecture of the space, frozen) or :func:`register_published_network` (a network the
authors built outside the space's own macro network);
users load them by name with ``hub.load_searched_model(name)`` or with the space's
``SpaceClass.load_searched_model(name)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "SearchedModel",
    "SearchedModelsMixin",
    "list_searched_models",
    "load_searched_model",
    "register_published_network",
    "register_searched_model",
]


@dataclass(frozen=True)
class SearchedModel:
    """A published architecture: the space it was searched in and how to build its network."""

    name: str
    space: type
    build: Callable[[], nn.Module]
    description: str = ""
    reported: str = ""  # the authors' own figures (parameters, multiply-adds), where they publish them


_REGISTRY: dict[str, SearchedModel] = {}


def register_searched_model(
    name: str,
    space: type,
    build_space: Callable[[], nn.Module],
    arch: Callable[[], dict],
    description: str = "",
    reported: str = "",
) -> None:
    """Register a published architecture ``name`` as ``freeze(build_space(), arch())``;
    ``reported`` quotes the authors' figures for it (shown in the hub table)."""

    def build() -> nn.Module:
        from supernet import freeze

        return freeze(build_space(), arch())

    register_published_network(name, space, build, description, reported)


def register_published_network(name: str, space: type, build: Callable[[], nn.Module], description: str = "",
                               reported: str = "") -> None:
    """Register a published architecture whose authors built it in a network of their own: ``build()``
    returns it as a fixed network of plain torch modules; ``space`` is the space it belongs to."""
    if name in _REGISTRY:
        raise ValueError(f"searched model {name!r} is registered twice")
    _REGISTRY[name] = SearchedModel(name, space, build, description, reported)


def list_searched_models(space: type | None = None) -> list[str]:
    """Names of the published architectures, optionally only those of one space class."""
    return sorted(n for n, m in _REGISTRY.items() if space is None or issubclass(m.space, space))


def load_searched_model(name: str, pretrained: bool = False, weights: str | os.PathLike | None = None,
                        space: type | None = None) -> nn.Module:
    """Build the published architecture ``name`` as a plain fixed network.

    ``weights`` is a local state-dict file (nothing is downloaded); ``pretrained=True``
    requires it. Loading uses ``torch.load(..., weights_only=True)``.
    """
    allowed = list_searched_models(space)
    if name not in allowed:
        where = f" of {space.__name__}" if space is not None else ""
        raise ValueError(f"unknown searched model {name!r}{where}; available: {', '.join(allowed)}")
    if pretrained and weights is None:
        raise ValueError(
            f"pretrained=True for {name!r} needs weights=<path to a local state-dict file>; "
            "no weights are downloaded at run time"
        )
    model = _REGISTRY[name].build()
    if weights is not None:
        _load_weights(model, name, weights)
    return model


def _load_weights(model: nn.Module, name: str, path: str | os.PathLike) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {str(path)!r} for {name!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"missing {len(missing)} keys (e.g. {missing[0]!r})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
        if mismatched:
            k = mismatched[0]
            details.append(
                f"{len(mismatched)} shape mismatches (e.g. {k!r}: file {tuple(state[k].shape)} "
                f"vs model {tuple(expected[k].shape)})"
            )
        raise ValueError(
            f"weights file {str(path)!r} does not match the architecture {name!r}: " + "; ".join(details)
        )
    model.load_state_dict(state)


class SearchedModelsMixin:
    """Gives a space class ``load_searched_model`` and ``list_searched_models`` for its own entries."""

    @classmethod
    def list_searched_models(cls) -> list[str]:
        """Names of the published architectures registered for this space."""
        return list_searched_models(cls)

    @classmethod
    def load_searched_model(cls, name: str, pretrained: bool = False,
                            weights: str | os.PathLike | None = None) -> nn.Module:
        """Build the published architecture ``name`` of this space (see :func:`load_searched_model`)."""
        return load_searched_model(name, pretrained=pretrained, weights=weights, space=cls)
