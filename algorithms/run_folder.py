"""Run folders: a run never writes into a folder that holds another run, and two runs never share one.

``RunFolderGuard`` is a Hydra callback (registered in ``algorithms/configs/config.yaml`` under ``hydra.callbacks``),
so the check sees the folder however it was given (``hydra.run.dir=``, ``++hydra.run.dir=``, an
experiment file, a sweep) and runs before Hydra writes anything there (``on_run_start`` comes before
Hydra creates the folder and writes ``.hydra/``; a sweep's folder is checked in ``on_multirun_start``).

The lock is the file ``run.lock``, created with ``O_CREAT | O_EXCL`` (atomic: of two runs that try at
once, exactly one succeeds) and holding the owner's host, pid and start time. It is removed when the
run ends, also on an error or Ctrl-C (``atexit``); a run killed with SIGKILL or a crashed machine leaves
it behind (a stale lock): the folder then counts as taken and the error line names the file to delete
once that run is known to be gone.
"""

from __future__ import annotations

import atexit
import functools
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["LOCK", "RUN_FILES", "RunFolderError", "RunFolderGuard", "check_free", "lock", "unlock"]

LOCK = "run.lock"
# what a run writes into its folder: any of them means the folder holds a run
RUN_FILES = ("arch.json", "checkpoints", "finetune", LOCK, ".hydra", "logs", "tensorboard", "search_space.json",
             "multirun.yaml", "wandb", "mlruns")  # the last two: the optional loggers' folders (configs/logger/)


class RunFolderError(Exception):
    """The run folder is taken, locked or not writable: reported as one line, exit status 2."""


def check_free(folder: Path, ignore: tuple[str, ...] = ()) -> None:
    """Raise ``RunFolderError`` if ``folder`` holds another run (or a lock)."""
    lock_file = folder / LOCK
    if lock_file.exists() and LOCK not in ignore:
        raise _locked(folder, lock_file)
    taken = [name for name in RUN_FILES if name not in ignore and (folder / name).exists()]
    if taken:
        raise RunFolderError(f"the run folder {str(folder)!r} already holds a run ({taken[0]}); choose another "
                             "hydra.run.dir so nothing is overwritten")


def lock(folder: Path) -> Path:
    """Create ``folder`` and take its lock (exclusive create); ``RunFolderError`` if it is taken or unwritable."""
    lock_file = folder / LOCK
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise _locked(folder, lock_file) from None
    except OSError as error:
        raise RunFolderError(f"cannot write the run folder {str(folder)!r}: {error.strerror or error}; choose a "
                             "writable hydra.run.dir") from None
    with os.fdopen(descriptor, "w") as file:
        file.write(f"host={socket.gethostname()} pid={os.getpid()} started={time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    atexit.register(unlock, lock_file)
    return lock_file


def unlock(lock_file: Path) -> None:
    """Remove a lock this process took (no error if it is gone already)."""
    try:
        if _read(lock_file).split(" ")[:2] == [f"host={socket.gethostname()}", f"pid={os.getpid()}"]:
            lock_file.unlink()
    except OSError:
        pass


def _locked(folder: Path, lock_file: Path) -> RunFolderError:
    return RunFolderError(f"the run folder {str(folder)!r} is locked by another run ({_read(lock_file)}); choose "
                          f"another hydra.run.dir, or delete {str(lock_file)!r} if that run is no longer running")


def _read(lock_file: Path) -> str:
    try:
        return lock_file.read_text().strip() or "lock file empty"
    except OSError:
        return "lock file unreadable"


def _launched_by_lightning() -> bool:
    """A DDP process of rank > 0, which Lightning starts as ``train.py <same args> hydra.run.dir=<the
    parent's folder>`` (``_hydra_subprocess_cmd``): it works in its parent's folder, under its lock."""
    return os.environ.get("LOCAL_RANK", "0") not in ("", "0")


def _refuse(hook: Callable[..., None]) -> Callable[..., None]:
    """Hydra turns an exception raised in a callback into a warning and goes on, so a refusal ends the
    process itself: one ``error:`` line, exit status 2 (as train.py does for every bad input)."""
    @functools.wraps(hook)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            hook(*args, **kwargs)
        except RunFolderError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
    return guarded


class RunFolderGuard(Callback):
    """Hydra callback: refuse a taken run folder before anything is written, lock it for the run."""

    def __init__(self) -> None:
        self.locks: dict[Path, Path] = {}

    @_refuse
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _launched_by_lightning():
            return
        folder = Path(os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir"))))
        check_free(folder)
        self.locks[folder] = lock(folder)

    @_refuse
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        check_free(folder)
        if folder.is_dir() and any(child.is_dir() and (child / ".hydra").exists() for child in folder.iterdir()):
            raise RunFolderError(f"the sweep folder {str(folder)!r} already holds runs; choose another "
                                 "hydra.sweep.dir so nothing is overwritten")

    @_refuse
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.runtime.output_dir))
        if folder in self.locks or _launched_by_lightning():  # a single run: locked in on_run_start
            return
        check_free(folder, ignore=(".hydra",))  # a sweep's job: Hydra has written .hydra/ for it just now
        self.locks[folder] = lock(folder)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.runtime.output_dir))
        if folder in self.locks:
            unlock(self.locks.pop(folder))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        for lock_file in self.locks.values():
            unlock(lock_file)
        self.locks.clear()
