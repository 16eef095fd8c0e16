"""Checkpoints that describe themselves, read as plain data only.

A search checkpoint carries, next to the weights, how to build what it holds, under
``checkpoint["config"]``: ``space`` (class path and arguments), ``algorithm`` (class path and
hyperparameters) and, for a run of the command line, ``data``, each as the plain dict Hydra
instantiates (``{"_target_": "hub.NASNet", "width": 8, ...}``). ``mode=export ckpt_path=...``
and ``OneShotAlgorithm.load_from_checkpoint(path)`` rebuild from it.

A checkpoint is data from elsewhere: it is read with ``torch.load(weights_only=True)`` (no pickled
object, so nothing runs while it is read), and a class it names is built only if it is a class of
this library's packages (``hub``, ``supernet``, ``algorithms``, ``datamodules``), a class the user
registered (:func:`register`), or one the caller trusts (the command line's own configuration).
A name outside these (``os.system``, ``builtins.eval``) is refused before anything is imported.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["TRUSTED_PACKAGES", "CheckpointError", "build", "check_targets", "class_path", "read", "register",
           "space_config"]

TRUSTED_PACKAGES = ("hub", "supernet", "algorithms", "datamodules")
_REGISTERED: dict[str, type] = {}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or used, in one line naming the file."""


def register(cls: type) -> type:
    """Let checkpoints name ``cls`` (a search space of your own); usable as a class decorator.

    Without it, a checkpoint of a search on your space loads with ``load_from_checkpoint(path, space=MySpace())``.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register takes a class, got {cls!r}")
    _REGISTERED[class_path(cls)] = cls
    return cls


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def read(path: Any, where: str, map_location: Any = "cpu") -> dict[str, Any]:
    """The Lightning checkpoint at ``path`` as plain data (``weights_only=True``): tensors, numbers,
    strings, lists and dicts. A file holding any other pickled object (which could run code while it is
    read), a file that is not a PyTorch checkpoint, or one without a ``state_dict`` is refused."""
    if path is None or not Path(str(path)).is_file():
        raise CheckpointError(f"{where}: no such checkpoint file")
    try:
        checkpoint = torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        detail = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), None)
        if detail is None:  # not a pickle of anything: a text file, another format
            raise CheckpointError(f"{where} is not a PyTorch checkpoint (unreadable or truncated)") from None
        raise CheckpointError(f"{where} is refused: it holds pickled objects that are not plain data and could "
                              f"run code when read ({detail}); only tensors and plain values are read") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{where} is not a PyTorch checkpoint (unreadable or truncated): {first}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"{where} holds no state_dict: it is not a checkpoint written by a search")
    return checkpoint


def space_config(space: torch.nn.Module) -> dict[str, Any] | None:
    """How to build ``space`` again, as plain data: ``{"_target_": class path, **arguments}``.

    ``supernet.nn.Module`` records its constructor call (every hub space is one); None for a space that
    did not record it, or whose arguments are not plain data (a module, a function)."""
    from supernet.primitives.module import init_arguments

    recorded = init_arguments(space)
    if recorded is None or not _is_plain(recorded):
        return None
    args, kwargs = recorded
    return {"_target_": class_path(type(space)), **({"_args_": list(args)} if args else {}), **kwargs}


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def check_targets(config: Any, where: str, trusted: Iterable[str] = (), classes: bool = True) -> None:
    """Refuse a configuration from a checkpoint that names a class outside the trusted ones (anywhere in it:
    Hydra instantiates nested ``_target_``s too) or holds an interpolation (``${...}``, which OmegaConf
    would resolve: environment variables, custom resolvers). ``trusted``: class paths the caller's own
    configuration names; ``classes=False`` checks the interpolations only (a config read, not built)."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            if key == "_target_" and classes:
                resolve(value, where, trusted)
            else:
                check_targets(value, where, trusted, classes)
    elif isinstance(config, (list, tuple)):
        for value in config:
            check_targets(value, where, trusted, classes)
    elif isinstance(config, str) and "${" in config:
        raise CheckpointError(f"{where} is refused: its configuration holds the interpolation {config!r}; "
                              "a checkpoint holds resolved values only")


def resolve(target: Any, where: str, trusted: Iterable[str] = ()) -> type:
    """The class a checkpoint names, if it may be built (see the module docstring); nothing outside the
    trusted packages is imported."""
    if not isinstance(target, str) or "." not in target:
        raise CheckpointError(f"{where} names the class {target!r}, which is not a class path")
    if target in _REGISTERED:
        return _REGISTERED[target]
    module_name, _, name = target.rpartition(".")
    if target.split(".")[0] not in TRUSTED_PACKAGES and target not in set(trusted):
        raise CheckpointError(
            f"{where} names {target!r}, which is not a class of {', '.join(TRUSTED_PACKAGES)} and was not "
            "registered: nothing is built from it (a class of your own: load with it, MyAlgorithm.load_from_"
            "checkpoint(path), pass it, load_from_checkpoint(path, space=MySpace()), name it on the command line "
            "(space=..., data=...), or register it with algorithms.checkpoints.register)")
    try:
        value = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise CheckpointError(f"{where} names the class {target!r}, which cannot be imported") from None
    if not isinstance(value, type):
        raise CheckpointError(f"{where} names {target!r}, which is not a class: nothing is called from it")
    if value.__module__.split(".")[0] not in TRUSTED_PACKAGES and target not in set(trusted):
        # a class imported into one of our modules (``hub.x.Popen`` after ``from subprocess import Popen``)
        raise CheckpointError(f"{where} names {target!r}, which is defined in {value.__module__}, not in "
                              f"{', '.join(TRUSTED_PACKAGES)}: nothing is built from it")
    return value


def build(config: Mapping[str, Any], kind: type, where: str, trusted: Iterable[str] = (), **kwargs: Any) -> Any:
    """Instantiate a checkpoint's ``config`` after :func:`check_targets`; its class must be a ``kind``."""
    from hydra.utils import instantiate

    if not isinstance(config, Mapping) or "_target_" not in config:
        raise CheckpointError(f"{where} holds no class to build (got {config!r})")
    trusted = list(trusted)
    check_targets(config, where, trusted)
    cls = resolve(config["_target_"], where, trusted)
    if not issubclass(cls, kind):
        raise CheckpointError(f"{where} names {config['_target_']!r}, which is not a {kind.__name__}")
    return instantiate(dict(config), **kwargs, _convert_="all")


def load_module(cls: type, path: Any, space: torch.nn.Module | None = None, map_location: Any = None,
                strict: bool = True, **hyperparameters: Any) -> Any:
    """``cls.load_from_checkpoint``: the algorithm a checkpoint holds, rebuilt from its own configuration.

    The class is the checkpoint's (a subclass of ``cls``: ``OneShotAlgorithm.load_from_checkpoint`` gives a
    ``DartsModule`` for a DARTS checkpoint); the space is built from the recorded configuration unless
    ``space`` is given; ``hyperparameters`` replace the saved ones. Weights, the sampled architecture and the
    search's result are restored; the global random state is left as it was (building draws initial weights,
    and the checkpoint's random state is for resuming a search)."""
    where = f"checkpoint {str(path)!r}"
    checkpoint = read(path, where, map_location)
    config = checkpoint.get("config") if isinstance(checkpoint.get("config"), Mapping) else {}
    target = cls
    recorded = config.get("algorithm", {}).get("_target_") if isinstance(config.get("algorithm"), Mapping) else None
    if recorded is not None:
        target = resolve(recorded, where, trusted=[class_path(cls)])  # the caller's own class is trusted
        if not issubclass(target, cls):
            raise CheckpointError(f"{where} was written by {target.__name__}, not {cls.__name__}: load it with "
                                  f"{target.__name__}.load_from_checkpoint")
    with torch.random.fork_rng(devices=[]):  # building draws initial weights; the checkpoint's random state is
        return _build_module(cls, target, checkpoint, config, where, space, strict, hyperparameters)  # a resume's


def _build_module(cls: type, target: type, checkpoint: dict[str, Any], config: Mapping[str, Any], where: str,
                  space: torch.nn.Module | None, strict: bool, hyperparameters: dict[str, Any]) -> Any:
    if space is None:
        if not isinstance(config.get("space"), Mapping):
            raise CheckpointError(
                f"{where} does not record how to build its space (a space that is not a supernet.nn.Module, or "
                f"built with arguments that are not plain data): pass it, "
                f"{cls.__name__}.load_from_checkpoint(path, space=MySpace(...))")
        space = build(config["space"], torch.nn.Module, where)
    saved = checkpoint.get("hyper_parameters")
    saved = {k: v for k, v in dict(saved if isinstance(saved, Mapping) else {}).items()
             if k not in ("_instantiator", "_class_path")}
    task = saved.get("task")  # held as its plain description; the object is rebuilt
    if isinstance(task, Mapping) and "task" not in hyperparameters:
        if isinstance(config.get("task"), Mapping):  # a run of the command line records how to build it
            from algorithms.task import Task

            saved["task"] = build(config["task"], Task, where)
        else:
            del saved["task"]  # the module's default task for its num_classes; compared below
    module = target(space, **{**saved, **hyperparameters})
    if isinstance(task, Mapping) and "task" not in hyperparameters and module.task.describe() != task:
        raise CheckpointError(f"{where} was written for the task {task}, which it cannot rebuild: pass it, "
                              f"{cls.__name__}.load_from_checkpoint(path, task=...)")
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=strict)
    tensor = next((t for t in checkpoint["state_dict"].values() if isinstance(t, torch.Tensor)), None)
    return module.to(tensor.device) if tensor is not None else module
