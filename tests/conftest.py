"""Shared helpers for the tests."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn as torch_nn

from supernet.primitives.base import Mutable


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    random.seed(0)


def assert_plain(module: torch_nn.Module) -> None:
    """No choice module and no class of the search-space language is left in ``module``."""
    for name, m in module.named_modules():
        assert not isinstance(m, Mutable), f"{name or '<root>'} is still a choice: {type(m).__name__}"
        assert not type(m).__module__.startswith("supernet.primitives.") or type(m).__name__.startswith(
            ("Fixed", "Chosen", "_Unary", "_Binary", "_Callable")), f"{name}: {type(m)}"
