"""Config groups as in lightning-hydra-template (issue 18, item 4): loggers and callbacks are built from
``logger/`` and ``callbacks/``, optional loggers refuse in one line when their package is missing, ``tags``
are saved with the run, the CLI's ``main`` returns ``optimized_metric`` for a sweeper, and ``debug=fdr`` /
``debug=limit`` work with every data module. Runs go through ``algorithms.tasks.run`` in-process."""

from __future__ import annotations

import csv
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.experimental.callback import Callback

from algorithms.tasks import UserError, run

ROOT = Path(__file__).resolve().parent.parent
TINY = ["space=tiny", "data=random", "trainer=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "finetune.epochs=1", "data.num_train=64",
        f"hydra.searchpath=[file://{ROOT / 'tests' / 'configs'}]"]


def config(*overrides: str, base=TINY):
    with initialize_config_dir(config_dir=str(ROOT / "algorithms" / "configs"), version_base="1.3"):
        return compose("config", overrides=[*base, *overrides])


def _epochs(run_dir: Path) -> set[str]:
    with open(run_dir / "logs" / "search" / "metrics.csv") as f:
        return {row["epoch"] for row in csv.DictReader(f)}


def test_the_default_loggers_and_checkpoint_are_todays(tmp_path):
    cfg = config()
    assert sorted(cfg.logger) == ["csv", "tensorboard"] and sorted(cfg.callbacks) == ["model_checkpoint"]
    run(cfg, tmp_path)
    assert (tmp_path / "logs" / "search" / "metrics.csv").is_file()
    assert list((tmp_path / "tensorboard" / "search").glob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_loggers_come_from_the_config(tmp_path):
    run(config("logger=csv"), tmp_path / "csv")
    assert (tmp_path / "csv" / "logs" / "search" / "metrics.csv").is_file()
    assert not (tmp_path / "csv" / "tensorboard").exists()
    run(config("logger=tensorboard"), tmp_path / "tb")
    assert list((tmp_path / "tb" / "tensorboard" / "search").glob("events.out.tfevents.*"))
    assert not (tmp_path / "tb" / "logs").exists()
    run(config("~logger", "~callbacks"), tmp_path / "none")  # no logger, no per-epoch checkpoint
    assert sorted(p.name for p in (tmp_path / "none").iterdir() if p.is_dir()) == ["checkpoints"]
    assert [p.name for p in (tmp_path / "none" / "checkpoints").iterdir()] == ["last.ckpt"]  # the search's own


NOT_INSTALLED = "needs a package that is not installed"


@pytest.mark.parametrize(("package", "override", "message"), [
    ("wandb", "logger=wandb",
     rf"^logger.wandb \(pytorch_lightning.loggers.WandbLogger\) {NOT_INSTALLED}: Requirement 'wandb>=[0-9.]+' not met"),
    ("mlflow", "logger=mlflow",
     rf"^logger.mlflow \(pytorch_lightning.loggers.MLFlowLogger\) {NOT_INSTALLED}: Requirement 'mlflow>=[0-9.]+'"),
    ("rich", "callbacks=rich_progress_bar",
     rf"^callbacks.rich_progress_bar \(pytorch_lightning.callbacks.RichProgressBar\) {NOT_INSTALLED}: "
     r"`RichProgressBar` requires `rich`"),
])
def test_an_optional_logger_without_its_package_is_refused_in_one_line(package, override, message, tmp_path):
    assert importlib.util.find_spec(package) is None, f"{package} is installed here: this test needs it absent"
    with pytest.raises(UserError, match=message):
        run(config(override), tmp_path)
    assert not (tmp_path / "arch.json").exists()


def test_checkpointing_comes_from_the_config(tmp_path):
    run(config("trainer.max_epochs=2", "callbacks.model_checkpoint.filename='{epoch}'",
               "callbacks.model_checkpoint.save_top_k=-1"), tmp_path)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    # one file per epoch as configured, and last.ckpt: the search's final state, which export and resume read
    assert names == ["epoch=0.ckpt", "epoch=1.ckpt", "last.ckpt"]


def test_early_stopping_stops_a_search_that_does_not_improve(tmp_path):
    """patience 1 and an improvement of 100 in val/loss required: epoch 0 sets the best (from inf), epoch 1
    does not improve on it by 100, so training stops after 2 of 4 epochs (Lightning's EarlyStopping rule)."""
    run(config("trainer.max_epochs=4", "callbacks=[default,early_stopping]",
               "callbacks.early_stopping.monitor=val/loss", "callbacks.early_stopping.mode=min",
               "callbacks.early_stopping.min_delta=100", "callbacks.early_stopping.patience=1"), tmp_path)
    assert _epochs(tmp_path) == {"0", "1"}
    assert (tmp_path / "arch.json").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_tags_are_saved_with_the_run(tmp_path):
    summary = run(config("tags=[baseline,cpu]"), tmp_path)
    assert summary["tags"] == ["baseline", "cpu"]
    hparams = yaml.safe_load((tmp_path / "logs" / "search" / "hparams.yaml").read_text())
    assert hparams["tags"] == ["baseline", "cpu"]
    with pytest.raises(UserError, match=r"tags must be a list of words, got \[1, \[2\]\]"):
        run(config("tags=[1,[2]]"), tmp_path / "bad")


def test_main_returns_the_optimized_metric(tmp_path):
    from algorithms.cli import train

    value = train(config("optimized_metric=val/acc"), tmp_path)
    with open(tmp_path / "logs" / "search" / "metrics.csv") as f:
        logged = [float(row["val/acc"]) for row in csv.DictReader(f) if row["val/acc"]]
    assert isinstance(value, float) and value == pytest.approx(logged[-1], abs=1e-7)
    assert train(config(), tmp_path / "none") is None  # no optimized_metric: nothing to return
    with pytest.raises(UserError, match=r"optimized_metric='val/nope' is not a metric of this run; it has: "
                                        r".*val/acc"):
        train(config("optimized_metric=val/nope"), tmp_path / "bad")


class RecordReturn(Callback):
    """A Hydra callback that writes what each job of a sweep returned (what a sweeper such as Optuna reads)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_job_end(self, config, job_return, **kwargs) -> None:
        with open(self.path, "a") as f:
            f.write(f"{job_return.return_value!r}\n")


@pytest.mark.slow
def test_a_sweep_job_returns_the_optimized_metric(tmp_path):
    """Through ``train.py -m``: the launcher's JobReturn carries main()'s value, the last val/acc logged."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    record = tmp_path / "returned.txt"
    cli = [a for a in TINY if not a.startswith("hydra.searchpath")]
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config-dir", str(ROOT / "tests" / "configs"),
                           "-m", *cli, "optimized_metric=val/acc", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                           f"+hydra.callbacks.record={{_target_:tests.test_config_groups.RecordReturn,path:'{record}'}}"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (metrics,) = (tmp_path / "sweep").rglob("logs/search/metrics.csv")
    # the job's folder is its number, one level down, whatever the override values hold ('/' in val/acc)
    assert metrics.relative_to(tmp_path / "sweep").parts == ("0", "logs", "search", "metrics.csv")
    with open(metrics) as f:
        logged = [float(row["val/acc"]) for row in csv.DictReader(f) if row["val/acc"]]
    assert float(record.read_text()) == pytest.approx(logged[-1], abs=1e-7)


# -- debug=fdr / debug=limit with every data module --------------------------------------------------------
def _cifar_copy(root: Path) -> Path:
    """CIFAR-10's on-disk format (cifar-10-batches-py: pickled dicts of uint8 rows and labels), small."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, count in [*((f"data_batch_{i}", 40) for i in range(1, 6)), ("test_batch", 40)]:
        batch = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, count)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return root


def _image_folder(root: Path) -> Path:
    from PIL import Image

    for part in ("train", "val"):
        for c in range(2):
            (root / part / f"class{c}").mkdir(parents=True)
            for i in range(12):
                Image.new("RGB", (40, 40), (100 * c, 10 * i, 0)).save(root / part / f"class{c}" / f"{i}.png")
    return root


@pytest.mark.parametrize("debug", ["fdr", pytest.param("limit", marks=pytest.mark.slow)])
@pytest.mark.parametrize("data", ["embedded", "cifar10", "imagefolder", "regression"])
def test_debug_configs_work_with_every_data_module(data, debug, tmp_path, monkeypatch):
    base = [a for a in TINY if not a.startswith(("data", "trainer.max_epochs", "space"))]
    extra = {"embedded": ["space=tiny"], "regression": ["task=regression", "space=mlp"],
             "cifar10": ["space=tiny", f"data.root={_cifar_copy(tmp_path / 'cifar')}", "data.download=false",
                         "data.num_workers=0"],
             "imagefolder": ["space=tiny", f"data.root={_image_folder(tmp_path / 'images')}", "data.num_classes=2",
                             "data.image_size=32", "data.input_shape=[3,32,32]", "data.num_workers=0"]}[data]
    if data == "cifar10":  # torchvision checks the real files' md5 sums; these are the test's own
        import torchvision

        monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
    summary = run(config(f"data={data}", *extra, f"debug={debug}", "finetune_after=true", base=base),
                  tmp_path / "run")
    assert (tmp_path / "run" / "arch.json").is_file() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    tested = [v for k, v in summary["finetune"].items() if k.startswith("test_")]
    assert len(tested) == 1 and tested[0] >= 0  # test accuracy, or the regression's test MSE
    if debug == "limit":
        assert _epochs(tmp_path / "run") == {"0", "1"}


def test_num_train_and_num_test_keep_a_seeded_subset_of_cifar10(tmp_path, monkeypatch):
    """data.num_train / num_test (which debug=fdr and debug=limit set for any data module) keep a subset chosen
    by the seed: fewer images on disk than asked for means all of them, and two builds pick the same images."""
    import torchvision

    from algorithms.tasks import build_data

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
    cfg = config("data=cifar10", f"data.root={_cifar_copy(tmp_path / 'cifar')}", "data.download=false",
                 "debug=fdr", base=[a for a in TINY if not a.startswith("data")])
    data = build_data(cfg, search=False)
    data.setup()
    assert len(data.train_set) == 200 and len(data.test_set) == 40  # fewer than 256 / 64 on disk: all of them
    cfg = config("debug=fdr", "data.num_train=30", "data.num_test=10", base=cfg_base_for_cifar(tmp_path))
    subsets = []
    for _ in range(2):
        data = build_data(cfg, search=False)
        data.setup()
        assert len(data.train_set) == 30 and len(data.test_set) == 10
        subsets.append(torch.stack([data.train_eval_set[i][0] for i in range(30)]))
    assert torch.equal(*subsets), "the same seeded subset"


def cfg_base_for_cifar(tmp_path: Path) -> list[str]:
    return [*(a for a in TINY if not a.startswith("data")), "data=cifar10", f"data.root={tmp_path / 'cifar'}",
            "data.download=false"]
