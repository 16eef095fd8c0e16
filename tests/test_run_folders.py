"""Issue 15, item 5 and Ctrl-C: a run never writes into a folder that holds another run, however the
folder is given; a lock file stops two runs sharing one; default folders differ for runs started in the
same second; SIGINT leaves a checkpoint and the command that resumes it. Through a ``train.py`` subprocess
on the tiny space and random images of tests/configs."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from algorithms.run_folder import LOCK, RunFolderError, lock, unlock

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--config-dir", str(ROOT / "tests" / "configs"), "space=tiny", "data=random", "trainer=cpu",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "data.num_train=64"]


def train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder`` with its modification time and content."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*")
            if p.is_file()}


def prior_run(folder: Path) -> Path:
    """A folder as a finished run leaves it (its Hydra config and a checkpoint)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 123  # the earlier run's\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"the earlier run's checkpoint")
    return folder


@pytest.mark.parametrize("given", ["++hydra.run.dir"])  # hydra.run.dir=: tests/test_cli.py
def test_a_folder_holding_another_run_is_refused_before_anything_is_written(given, tmp_path):
    folder = prior_run(tmp_path / "run")
    before = snapshot(folder)
    done = train(*TINY, "mode=space", f"{given}={folder}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert error_lines(done) == [f"error: the run folder '{folder}' already holds a run (checkpoints); choose "
                                 "another hydra.run.dir so nothing is overwritten"]
    assert snapshot(folder) == before  # not even Hydra's .hydra/config.yaml was rewritten


def test_a_sweep_folder_holding_another_sweep_is_refused_before_anything_is_written(tmp_path):
    sweep = tmp_path / "sweep"
    prior_run(sweep / "0_seed=0")
    before = snapshot(sweep)
    done = train("-m", *TINY, "mode=space", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert error_lines(done) == [f"error: the sweep folder '{sweep}' already holds runs; choose another "
                                 "hydra.sweep.dir so nothing is overwritten"]
    assert snapshot(sweep) == before


def test_a_locked_run_folder_is_refused_and_the_error_names_the_lock_to_delete(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK).write_text("host=elsewhere pid=4242 started=2026-01-01 00:00:00\n")
    done = train(*TINY, "mode=space", f"hydra.run.dir={folder}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert error_lines(done) == [
        f"error: the run folder '{folder}' is locked by another run (host=elsewhere pid=4242 started=2026-01-01 "
        f"00:00:00); choose another hydra.run.dir, or delete '{folder / LOCK}' if that run is no longer running"]
    assert sorted(p.name for p in folder.iterdir()) == [LOCK]


def test_the_lock_is_exclusive_and_released(tmp_path):
    folder = tmp_path / "run"
    taken = lock(folder)
    assert taken.read_text().startswith(f"host={os.uname().nodename} pid={os.getpid()} ")
    with pytest.raises(RunFolderError, match="is locked by another run"):
        lock(folder)  # O_EXCL: the second taker fails, whoever it is
    unlock(taken)
    assert not taken.exists()
    unlock(lock(folder))  # free again


def test_a_run_removes_its_lock_when_it_ends(tmp_path):
    done = train(*TINY, "mode=space", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "search_space.json").exists() and not (tmp_path / "run" / LOCK).exists()


def test_default_run_folders_of_two_runs_started_in_the_same_second_differ():
    def default_dirs() -> tuple[str, str]:
        with initialize_config_dir(config_dir=str(ROOT / "algorithms" / "configs"), version_base="1.3"):
            cfg = compose("config", return_hydra_config=True)
        return OmegaConf.select(cfg, "hydra.run.dir"), OmegaConf.select(cfg, "hydra.sweep.dir")

    for _ in range(3):  # two configs composed within one second (the old names had seconds only)
        start = time.time()
        first, second = default_dirs(), default_dirs()
        if int(time.time()) == int(start):
            break
    assert first[0] != second[0] and first[1] != second[1], (first, second)
    assert first[0].startswith("outputs/search/") and first[1].startswith("multirun/search/")


class SigintAtEpochStart(pl.Callback):
    """Sends this process SIGINT when ``epoch`` starts, as Ctrl-C in the terminal would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            # a process started in the background by a non-interactive shell inherits SIGINT ignored (so Python
            # never installs its handler); a terminal's Ctrl-C reaches a foreground run with the default one
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("epoch", [pytest.param(0, marks=pytest.mark.slow), 1])  # 0: before any checkpoint
def test_ctrl_c_leaves_a_checkpoint_and_prints_the_command_that_resumes_it(epoch, tmp_path):
    search = ["algorithm=darts", "trainer.max_epochs=2"]
    stop = f"+trainer.callbacks=[{{_target_:tests.test_run_folders.SigintAtEpochStart,epoch:{epoch}}}]"
    done = train(*TINY, *search, stop, f"hydra.run.dir={tmp_path / 'stopped'}")
    checkpoint = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith(("interrupted:", "resume with:"))]
    assert lines[0].startswith(f"interrupted: the search stopped in epoch {epoch} (step ")
    assert str(checkpoint) in lines[0] and checkpoint.is_file()
    assert not (tmp_path / "stopped" / "arch.json").exists() and not (tmp_path / "stopped" / LOCK).exists()
    command = shlex.split(lines[1].removeprefix("resume with: "))
    assert command[:2] == ["python", "train.py"] and command[-1] == f"ckpt_path={checkpoint}"
    again = [arg for arg in command[2:] if arg != stop]  # as a user would: no Ctrl-C this time
    resumed = train(*again, f"hydra.run.dir={tmp_path / 'resumed'}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (tmp_path / "resumed" / "arch.json").exists()


@pytest.mark.parametrize("logger_folder", ["wandb", "mlruns"])
def test_a_folder_holding_only_an_optional_loggers_run_is_taken(logger_folder, tmp_path):
    """A run logged only by wandb or mlflow (logger=wandb / logger=mlflow) still holds the folder."""
    from algorithms.run_folder import check_free

    (tmp_path / logger_folder).mkdir()
    with pytest.raises(RunFolderError, match=logger_folder):
        check_free(tmp_path)
