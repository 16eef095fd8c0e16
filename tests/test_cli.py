"""``train.py`` end to end on a tiny space and random images (tests/configs), and its bad-input errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--config-dir", str(ROOT / "tests" / "configs"), "space=tiny", "data=random", "trainer=cpu",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "finetune.epochs=1"]


def train(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("search") / "run"
    done = train(*TINY, "algorithm=darts", "finetune_after=true", f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr[-2000:]
    return run


def test_search_writes_the_run_outputs(searched):
    arch = json.loads((searched / "arch.json").read_text())
    assert set(arch) == {"width", "kernel", "depth", "block0", "block1"}
    for name in ["checkpoints/last.ckpt", ".hydra/config.yaml", "logs/search/metrics.csv", "arch_weights.png",
                 "choices.png", "finetune/results.json"]:
        assert (searched / name).exists(), name
    assert list((searched / "tensorboard" / "search").glob("events.out.tfevents.*"))
    results = json.loads((searched / "finetune" / "results.json").read_text())
    assert results["params"] > 0 and results["flops"] > 0 and 0 <= results["test_accuracy"] <= 1


def test_finetune_export_and_space_modes(searched, tmp_path):
    done = train(*TINY, "mode=finetune", f"arch={searched / 'arch.json'}", f"hydra.run.dir={tmp_path / 'ft'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"test_accuracy"' in done.stdout
    done = train(*TINY, "mode=finetune", f"arch={searched / 'arch.json'}", "inherit_weights=true",
                 f"ckpt_path={searched / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp_path / 'inherit'}")
    assert done.returncode == 0, done.stderr[-2000:]
    done = train(*TINY, "mode=export", f"ckpt_path={searched / 'checkpoints' / 'last.ckpt'}",
                 f"hydra.run.dir={tmp_path / 'export'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "export" / "arch.json").read_text()) == json.loads(
        (searched / "arch.json").read_text())
    done = train(*TINY, "mode=space", f"hydra.run.dir={tmp_path / 'space'}")
    assert done.returncode == 0 and "architectures" in done.stdout
    assert json.loads((tmp_path / "space" / "search_space.json").read_text())["width"]["_type"] == "choice"


def test_a_killed_search_resumes_from_its_last_checkpoint_and_finishes(tmp_path):
    three_epochs = [*TINY, "algorithm=darts", "trainer.max_epochs=3"]
    killed = train(*three_epochs, "+trainer.callbacks=[{_target_:tests.fakes.KillAtEpochStart,epoch:2}]",
                   f"hydra.run.dir={tmp_path / 'killed'}")
    assert killed.returncode == 137 and not (tmp_path / "killed" / "arch.json").exists()
    done = train(*three_epochs, f"ckpt_path={tmp_path / 'killed' / 'checkpoints' / 'last.ckpt'}",
                 f"hydra.run.dir={tmp_path / 'resumed'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "resumed" / "arch.json").exists()
    with open(tmp_path / "resumed" / "logs" / "search" / "metrics.csv") as f:
        epochs = {row["epoch"] for row in csv.DictReader(f)}
    assert epochs == {"2"}, "the resumed run trains only the epoch the killed one did not finish"


@pytest.mark.parametrize(("args", "message"), [
    (["algorithm=nope"], "error: unknown algorithm=nope; choose one of: darts, darts2,"),
    (["space=nope"], "error: unknown space=nope; choose one of: amoebanet, autoformer,"),
    (["mode=finetune", "arch=/no/such/arch.json"], "arch='/no/such/arch.json': no such file"),
    (["mode=bogus"], "unknown mode='bogus'"),
    (["algorithm.learning_rate=-1"], "learning_rate must be a positive number, got -1"),
])
def test_bad_input_is_one_clear_error_and_a_non_zero_exit(args, message, tmp_path):
    done = train(*TINY, *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.slow
def test_finetune_of_a_published_architecture_by_name(tmp_path):
    args = [a for a in TINY if a != "space=tiny"]
    done = train(*args, "mode=finetune", "space=darts", "arch=darts-v2", "+trainer.fast_dev_run=1",
                 f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"params": 3349342' in done.stdout


def test_unreadable_dataset_path_is_one_clear_error(tmp_path):
    args = [a for a in TINY if a != "data=random"]
    done = train(*args, "data=imagefolder", "data.root=/no/such/dataset", "data.num_classes=10",
                 f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2
    assert "error: cannot read '/no/such/dataset/train'" in done.stderr
    assert "Traceback" not in done.stderr


def test_arch_of_another_space_is_rejected(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"normal/op_2_0": "sep_conv_3x3"}))
    done = train(*TINY, "mode=finetune", f"arch={other}", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2
    assert "does not fit the space TinyConvSpace: unknown label 'normal/op_2_0'" in done.stderr


def test_an_existing_run_folder_is_not_overwritten(searched):
    before = (searched / "arch.json").read_text()
    done = train(*TINY, f"hydra.run.dir={searched}")
    assert done.returncode == 2 and "already holds a run (arch.json)" in done.stderr
    assert (searched / "arch.json").read_text() == before
