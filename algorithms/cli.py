"""Search, fine-tune, export or inspect a search space from the command line (Hydra).

    supernet-train algorithm=darts space=nasnet               # search (default mode)
    supernet-train mode=finetune space=darts arch=darts-v2    # train a published or exported architecture
    supernet-train mode=export ckpt_path=outputs/search/<run>/checkpoints/last.ckpt
    supernet-train mode=space space=mobilenetv3               # print the space, dump the tuner JSON
    supernet-train -m algorithm=darts,enas,proxyless,spos space=mobilenetv3

``supernet-train`` is the console script that ``pip install`` creates; in the checkout, ``python train.py``
runs the same ``cli()``. The configs are package data (``algorithms/configs``), so an installed CLI finds
them from any folder. The work is in ``algorithms/tasks.py``; this file only wires Hydra to it, and turns
every bad input into one ``error:`` line and exit status 2 (see docs/reliability.md).
"""

from __future__ import annotations

import difflib
import errno
import json
import os
import shlex
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from algorithms.quiet import quiet_vendor_messages

# errors of the disk or the folder rather than of the program: one line, not a traceback
DISK_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "not permitted"}


@hydra.main(version_base="1.3", config_path="pkg://algorithms.configs", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One run; returns the value of ``optimized_metric`` (None when it is not set), which a Hydra sweeper
    such as Optuna optimises."""
    quiet_vendor_messages()  # here, after Hydra has set up logging for the job
    try:
        return train(cfg, HydraConfig.get().runtime.output_dir)
    except Exception as error:  # reported here: past this function, Hydra would log it as a failed job too
        report(error)
        raise


def train(cfg: DictConfig, out: str | os.PathLike) -> float | None:
    """``algorithms.tasks.run`` in ``out``: prints the summary and returns the run's ``optimized_metric``."""
    from algorithms.tasks import UserError, run

    summary = run(cfg, out)
    print(json.dumps(summary, indent=2, default=str))
    name = cfg.get("optimized_metric")
    if name is None:
        return None
    if not isinstance(summary.get(name), (int, float)) or isinstance(summary.get(name), bool):
        metrics = [k for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        raise UserError(f"optimized_metric={name!r} is not a metric of this run; it has: {', '.join(metrics)}")
    return float(summary[name])


def first_line(error: BaseException) -> str:
    """The line of ``error`` that says what went wrong. An error raised in a DataLoader worker arrives
    as "Caught X in DataLoader worker process N. Original Traceback ...": its last line says it."""
    text = str(error).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text.splitlines()[0] if text else type(error).__name__


# keys of the command line that were renamed: the old name gets one line naming the new one
RENAMED = {"ckpt": ("ckpt_path", "one name for the checkpoint to read: export, finetune with inherit_weights=true, "
                                 "resume")}


def config_error(error: Exception) -> str:
    """Hydra's composition errors condensed to one line that lists what is allowed."""
    from hydra.errors import MissingConfigException

    if isinstance(error, MissingConfigException) and error.options is not None and error.missing_cfg_file:
        group, _, name = str(error.missing_cfg_file).rpartition("/")
        return f"unknown {group}={name}; choose one of: {', '.join(error.options)}"
    cause = error.__cause__
    parent = getattr(cause, "parent_node", None)
    if getattr(cause, "full_key", None) in RENAMED:
        old, (new, why) = cause.full_key, RENAMED[cause.full_key]
        # Hydra's message ends "To append to your config use +ckpt=<the value given>"
        given = next((a.split("=", 1)[1] for a in str(error).split() if a.startswith(f"+{old}=")), "...")
        return f"{old}= is now {new}= ({why}): {new}={given}"
    if getattr(cause, "full_key", None) and hasattr(parent, "keys"):
        keys = sorted(str(k) for k in parent.keys() if k != "hydra")
        close = difflib.get_close_matches(str(cause.key), keys, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return (f"unknown key {cause.full_key}; {hint}known keys there: {', '.join(keys)} "
                f"(a new key is added with +{cause.full_key}=...)")
    return first_line(error)


def resume_command(checkpoint: str) -> str:
    """This command line with ``ckpt_path=`` the checkpoint and no run folder of its own."""
    kept = [a for a in sys.argv[1:] if not a.lstrip("+").startswith(("hydra.run.dir=", "ckpt_path="))]
    program = ["python", "train.py"] if os.path.basename(sys.argv[0]) == "train.py" else ["supernet-train"]
    return shlex.join([*program, *kept, f"ckpt_path={checkpoint}"])


def describe(error: Exception) -> str | None:
    """The one ``error:`` line for a bad input or a fault of the disk; None for a bug (a traceback)."""
    from hydra.errors import HydraException, InstantiationException, OverrideParseException

    if isinstance(error, InstantiationException):
        cause = error.__cause__ or error
        return f"{type(cause).__name__}: {first_line(cause)}"
    if isinstance(error, OverrideParseException):
        return f"cannot parse the command line: {first_line(error)}"
    if isinstance(error, HydraException):
        return config_error(error)
    from algorithms.run_folder import RunFolderError  # imported here: a config error is reported without torch
    from algorithms.tasks import UserError
    from datamodules.imagefolder import DataError

    if isinstance(error, (UserError, RunFolderError, DataError, FileNotFoundError, NotADirectoryError)):
        return first_line(error)
    if isinstance(error, OSError) and error.errno in DISK_ERRORS:
        return DISK_ERRORS[error.errno] + (f": {error.filename!r}" if error.filename else "")
    return None


def cli() -> None:
    """``main`` with Hydra's errors and ours as one line each (HYDRA_FULL_ERROR=1 shows tracebacks)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # the user asked for tracebacks
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises, so that describe() sees the exception itself
    try:
        main()
    except KeyboardInterrupt:  # outside a search's training, where there is nothing to resume
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        report(error)
        raise


def report(error: Exception) -> None:
    """Exit with one line for a bad input (status 2) or Ctrl-C (130, with the resume command); return
    for anything else, which the caller re-raises (a bug: the traceback helps)."""
    tasks = sys.modules.get("algorithms.tasks")  # not imported (nor needed) for a config error
    if tasks is not None and isinstance(error, tasks.Interrupted):
        print(f"interrupted: {error}", file=sys.stderr)
        if error.checkpoint:
            print(f"resume with: {resume_command(error.checkpoint)}", file=sys.stderr)
        sys.exit(130)
    line = describe(error)
    if line is not None:
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
