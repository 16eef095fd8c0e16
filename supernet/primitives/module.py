"""``supernet.nn.Module``: torch's Module that remembers how it was built.

A space written as ``class Net(supernet.nn.Module)`` records its constructor arguments,
so ``supernet.freeze`` can rebuild it with the chosen values; building the outermost
such module also starts automatic labels afresh, so two builds give the same labels.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from supernet.context import building_stack, fresh_label_namespace, model_parameter_scope

__all__ = ["Module", "init_arguments"]


class Module(torch.nn.Module):
    """``torch.nn.Module`` that records its constructor arguments (see the module docstring)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_arguments", False):
            return

        @functools.wraps(init)
        def recording_init(self: torch.nn.Module, *args: Any, **kwargs: Any) -> None:
            stack = building_stack()
            if any(s is self for s in stack):  # a subclass's super().__init__(...) call
                init(self, *args, **kwargs)
                return
            stack.append(self)
            try:
                if len(stack) == 1:
                    with fresh_label_namespace(), model_parameter_scope() as parameters:
                        init(self, *args, **kwargs)
                    object.__setattr__(self, "_supernet_model_parameters", list(parameters))
                else:
                    init(self, *args, **kwargs)
            finally:
                stack.pop()
            object.__setattr__(self, "_supernet_init_arguments", (args, kwargs))

        recording_init._records_arguments = True  # type: ignore[attr-defined]
        cls.__init__ = recording_init  # type: ignore[method-assign]


def init_arguments(module: torch.nn.Module) -> tuple[tuple, dict] | None:
    """The recorded ``(args, kwargs)`` of a ``supernet.nn.Module``, or None."""
    return module.__dict__.get("_supernet_init_arguments")
