"""Issue 15: nothing executed from a file, divergence caught, the exported result is the search's, bad input
is one line, API guards. Runs go through ``algorithms.tasks.run`` on the tiny space and random images of
tests/configs; exit codes and the one-line promise through a ``train.py`` subprocess."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

import supernet
from algorithms.base import DivergenceError
from algorithms.tasks import UserError, run
from supernet.oneshot import convert
from tests.fakes import TinyConvSpace

ROOT = Path(__file__).resolve().parent.parent
TINY = ["space=tiny", "data=random", "trainer=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "finetune.epochs=1", "data.num_train=64",
        f"hydra.searchpath=[file://{ROOT / 'tests' / 'configs'}]"]
# the evolution at its smallest: the test is about what is saved, not about the search
SMALL = {"spos": ["algorithm.population=4", "algorithm.generations=1", "algorithm.topk=2",
                  "algorithm.bn_calibration_batches=1", "algorithm.eval_batches=1"],
         "enas": ["algorithm.controller_aggregate=1"]}


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "algorithms" / "configs"), version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


def train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cli = [a for a in TINY if not a.startswith("hydra.searchpath")]
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "--config-dir", str(ROOT / "tests" / "configs"),
                           *cli, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def darts_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("darts") / "run"
    run(config("algorithm=darts"), out)
    return out


# -- 1. no code runs from a file ---------------------------------------------------------------------------
class _RunsCode:
    """Unpickling this creates ``path`` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _malicious_checkpoint(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code_ran"
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    checkpoint["payload"] = _RunsCode(marker)
    path = tmp_path / "malicious.ckpt"
    torch.save(checkpoint, path)
    return path, marker


@pytest.mark.parametrize("mode", ["export", "finetune_inherit", "resume"])
def test_a_checkpoint_that_would_run_code_is_refused_with_one_error_line(mode, darts_run, tmp_path):
    path, marker = _malicious_checkpoint(tmp_path, darts_run / "checkpoints" / "last.ckpt")
    args = {"export": ["mode=export", f"ckpt_path={path}"],
            "finetune_inherit": ["mode=finetune", f"arch={darts_run / 'arch.json'}", "inherit_weights=true",
                                 f"ckpt_path={path}"],
            "resume": ["algorithm=darts", "trainer.max_epochs=2", f"ckpt_path={path}"]}[mode]
    done = train(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(error_lines(done)) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "not plain data" in error_lines(done)[0]
    assert not marker.exists(), "unpickling the checkpoint ran its payload"


def test_text_truncated_and_foreign_checkpoints_are_one_clear_error(darts_run, tmp_path):
    text = tmp_path / "text.ckpt"
    text.write_text("not a checkpoint\n")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((darts_run / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"model": torch.zeros(3)}, foreign)
    for path, message in [(text, "is not a PyTorch checkpoint"), (truncated, "is not a PyTorch checkpoint"),
                          (foreign, "holds no state_dict")]:
        with pytest.raises(UserError, match=message):
            run(config("mode=export", f"ckpt_path={path}"), tmp_path / path.stem)


def test_resuming_from_a_checkpoint_of_another_algorithm_is_one_clear_error(darts_run, tmp_path):
    last = darts_run / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match=r"ckpt_path=.* was written with algorithm._target_='algorithms.DartsModule'"
                                        r".*, but the command line gives algorithm._target_='algorithms.EnasModule'"):
        run(config("algorithm=enas", f"ckpt_path={last}"), tmp_path)
    # a checkpoint that does not record its configuration (written before checkpoints did): the weights tell
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    del checkpoint["config"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    with pytest.raises(UserError, match=r"ckpt_path=.* was not written by this algorithm and space: Error"):
        run(config("algorithm=enas", f"ckpt_path={tmp_path / 'old.ckpt'}"), tmp_path)


# -- 4. the exported result is the search's result; our checkpoints are plain data ------------------------------
@pytest.mark.parametrize("algorithm", ["darts", "enas", "proxyless", "spos"])
def test_export_from_the_checkpoint_gives_the_search_arch(algorithm, tmp_path):
    summary = run(config(f"algorithm={algorithm}", *SMALL.get(algorithm, [])), tmp_path / "search")
    checkpoint = torch.load(summary["checkpoint"], map_location="cpu", weights_only=True)  # plain data only
    assert "state_dict" in checkpoint
    run(config(f"algorithm={algorithm}", *SMALL.get(algorithm, []), "mode=export",
               f"ckpt_path={summary['checkpoint']}"),
        tmp_path / "export")
    searched = json.loads((tmp_path / "search" / "arch.json").read_text())
    assert json.loads((tmp_path / "export" / "arch.json").read_text()) == searched
    if algorithm in ("enas", "spos"):  # the final search's result is in the checkpoint, whatever export does
        assert checkpoint["best_arch"] == searched


def test_the_checkpoint_named_in_the_summary_exists_under_debug_fdr(tmp_path):
    summary = run(config("algorithm=spos", "debug=fdr", *SMALL["spos"]), tmp_path)
    assert Path(summary["checkpoint"]).is_file()
    checkpoint = torch.load(summary["checkpoint"], map_location="cpu", weights_only=True)
    assert checkpoint["best_arch"] == json.loads((tmp_path / "arch.json").read_text())


# -- 3. divergence caught, hopeless hyperparameters refused -----------------------------------------------------
def test_a_diverging_search_stops_with_the_tensor_epoch_and_step_and_exports_nothing(tmp_path):
    with pytest.raises(UserError) as caught:
        run(config("algorithm=darts", "algorithm.learning_rate=1e10", "trainer.max_epochs=5"), tmp_path)
    message = str(caught.value)
    found = re.fullmatch(r"(loss|weight \S+|architecture parameter \S+) became (NaN|inf) at epoch (\d+), step (\d+)",
                         message)
    assert found, message
    # 64 images, two halves of 32, batches of 32: one training step per epoch, counted over the run
    assert int(found[4]) == int(found[3]) and 0 < int(found[3]) < 5
    assert not (tmp_path / "arch.json").exists()


def test_a_diverging_search_through_train_py_is_one_error_line_and_exit_2(tmp_path):
    done = train("algorithm=darts", "algorithm.learning_rate=1e10", "trainer.max_epochs=5",
                 f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert re.fullmatch(r"error: loss became NaN at epoch 2, step 2", error_lines(done)[0]), error_lines(done)
    assert len(error_lines(done)) == 1 and not (tmp_path / "run" / "arch.json").exists()


def test_a_non_finite_architecture_parameter_is_named(tmp_path):
    from algorithms import DartsModule

    module = DartsModule(TinyConvSpace())
    name, alpha = next((n, p) for n, p in module.named_parameters() if not n.startswith("supernet."))
    with torch.no_grad():
        alpha.view(-1)[0] = math.inf
    with pytest.raises(DivergenceError, match=rf"^architecture parameter {name} became inf at epoch 0, step 0$"):
        module.check_finite()


@pytest.mark.parametrize(("overrides", "message"), [
    (["algorithm=darts", "algorithm.weight_decay=nan"], "weight_decay must be a number, got nan"),
    (["algorithm=darts", "algorithm.gradient_clip=nan"], "gradient_clip must be a number, got nan"),
    (["algorithm=darts", "algorithm.warmup_epochs=nan"], "warmup_epochs must be a whole number, got nan"),
    (["algorithm=darts", "algorithm.arch_betas=[1.0,0.999]"], r"arch_betas must be in \[0, 1\), got \[1.0, 0.999\]"),
    (["algorithm=proxyless", "algorithm.arch_betas=[-0.1,0.999]"], r"arch_betas must be in \[0, 1\)"),
    (["algorithm=enas", "algorithm.export_samples=2.5"], "export_samples must be a whole number, got 2.5"),
    (["algorithm=spos", "algorithm.population=12.5"], "population must be a whole number, got 12.5"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0: a search needs at least one epoch"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs must be a whole number, got 'abc'"),
    (["seed=abc"], "seed must be a whole number, got 'abc'"),
])
def test_hyperparameters_that_cannot_work_are_refused_before_training(overrides, message, tmp_path):
    with pytest.raises(UserError, match=message):
        run(config(*overrides), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_wrong_types_on_the_command_line_are_one_error_line_and_exit_2(tmp_path):
    for i, arg in enumerate(["seed=abc", "trainer.max_epochs=abc"]):
        done = train(arg, f"hydra.run.dir={tmp_path / str(i)}")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert error_lines(done) == [f"error: {arg.split('=')[0]} must be a whole number, got 'abc'"]


# -- 6. unreadable arch files -----------------------------------------------------------------------------
def test_a_non_utf8_or_non_dict_arch_file_is_one_clear_error(tmp_path):
    binary = tmp_path / "arch.bin"
    binary.write_bytes(b"\xff\xfe{\x00")
    with pytest.raises(UserError, match="arch=.*arch.bin' is not a UTF-8 text file"):
        run(config("mode=finetune", f"arch={binary}"), tmp_path / "a")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(UserError, match="does not fit the space TinyConvSpace: an architecture is a dict"):
        run(config("mode=finetune", f"arch={listed}"), tmp_path / "b")


# -- 7. API guards ----------------------------------------------------------------------------------------
def test_freeze_with_inherited_weights_refuses_a_space_too_narrow_for_the_arch():
    space = TinyConvSpace()  # unconverted: built at the first width, 8
    arch = supernet.search_space(space).validate({"width": 12, "kernel": 3, "depth": 1, "block0": "pool"})
    with pytest.raises(ValueError, match=r"stem.0.weight holds \(8, 3, 3, 3\) but the architecture needs "
                                         r"\(12, 3, 3, 3\).*convert.*supernet"):
        supernet.freeze(space, arch, inherit_weights=True)
    supernet.freeze(space, dict(arch, width=8), inherit_weights=True)  # what the space holds is fine


def test_convert_refuses_a_model_that_is_already_a_supernet():
    model, _ = convert(TinyConvSpace(), "differentiable")
    with pytest.raises(TypeError, match="already a supernet"):
        convert(model, "path_sampling")


def test_search_space_of_none_is_a_clear_error():
    with pytest.raises(TypeError, match="search_space needs the model .* got NoneType"):
        supernet.search_space(None)


def test_numpy_integers_in_an_arch_work_as_ints():
    space = TinyConvSpace()
    arch = {"width": np.int64(12), "kernel": np.int32(3), "depth": np.int64(1), "block0": "conv"}
    checked = supernet.search_space(space).validate(arch)
    assert checked["width"] == 12 and type(checked["width"]) is int
    net = supernet.freeze(space, arch)
    assert net.stem[0].weight.shape == (12, 3, 3, 3)


# -- 2. a resume with other settings --------------------------------------------------------------------------
def test_resuming_with_other_algorithm_settings_names_the_keys_and_max_epochs_may_grow(darts_run, tmp_path):
    last = darts_run / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match=r"^ckpt_path=.* was written with algorithm.learning_rate=0\.025, "
                                        r"algorithm.warmup_epochs=0, but the command line gives "
                                        r"algorithm.learning_rate=0\.1, algorithm.warmup_epochs=1: drop it"):
        run(config("algorithm=darts", "algorithm.learning_rate=0.1", "algorithm.warmup_epochs=1",
                   f"ckpt_path={last}"), tmp_path / "changed")
    summary = run(config("algorithm=darts", "trainer.max_epochs=2", f"ckpt_path={last}"), tmp_path / "longer")
    epochs = [torch.load(p, map_location="cpu", weights_only=True)["epoch"] for p in (last, summary["checkpoint"])]
    assert epochs == [1, 2]  # epochs finished: the resumed search went on for one more


# -- 6. every bad input through train.py: one line, exit 2 ------------------------------------------------------
def test_an_unknown_group_option_is_one_line_that_lists_the_options(tmp_path):
    done = train("algorithm=dartz", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        "error: unknown algorithm=dartz; choose one of: darts, darts2, enas, gdas, gumbel, proxyless, spos"]
    assert not (tmp_path / "run").exists()


def test_a_misspelt_key_is_one_line_that_suggests_the_key_and_lists_the_keys(tmp_path):
    done = train("trainer.max_epoch=3", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown key trainer.max_epoch; did you mean max_epochs? "
                                                   "known keys there: _target_, accelerator, ")
    assert lines[0].endswith("(a new key is added with +trainer.max_epoch=...)")


@pytest.mark.parametrize(("value", "message"), [
    (12.0, r"'width' takes whole numbers \(8, 12\), got 12\.0"),
    ({"_idx": 5, "_value": 12}, r"'width': _idx 5 is out of range: the decision has 2 options \(indices 0 to 1\)"),
    ({"_idx": 1.0, "_value": 12}, r"'width': _idx 1\.0 is out of range"),
    ({"_idx": 0, "_value": 12}, r"'width': _idx 0 is 8, but _value is 12"),
])
def test_a_float_for_a_whole_number_decision_or_a_bad_tuner_index_is_one_clear_error(value, message, tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"width": value, "kernel": 3, "depth": 1, "block0": "conv"}))
    with pytest.raises(UserError, match=rf"arch='.*arch.json' does not fit the space TinyConvSpace: {message}"):
        run(config("mode=finetune", f"arch={path}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _image_folder(root: Path, classes: int, broken: str | None = None) -> Path:
    from PIL import Image

    for part in ("train", "val"):
        for c in range(classes):
            folder = root / part / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (40, 40), (60 * c, 10 * i, 0)).save(folder / f"{i}.png")
    if broken:
        (root / broken).write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    return root


def _on_image_folder(root: Path, num_classes: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cli = [a for a in TINY if not a.startswith(("hydra.searchpath", "data=", "data.num_train"))]
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "--config-dir", str(ROOT / "tests" / "configs"),
                           *cli, "data=imagefolder", f"data.root={root}", f"data.num_classes={num_classes}",
                           "data.image_size=32", "data.batch_size=4", "data.input_shape=[3,32,32]", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def test_an_image_folder_with_another_class_count_names_both_numbers(tmp_path):
    root = _image_folder(tmp_path / "images", classes=2)
    done = _on_image_folder(root, 3, "data.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert error_lines(done) == [f"error: '{root / 'train'}' has 2 class folders but data.num_classes=3; "
                                 "set data.num_classes=2 or fix the folder"]


def test_a_corrupt_image_is_one_line_that_names_the_file(tmp_path):
    root = _image_folder(tmp_path / "images", classes=2, broken="train/class1/broken.png")
    # one loader worker: the error crosses a process boundary, as it does in a real run
    done = _on_image_folder(root, 2, "data.num_workers=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(error_lines(done)) == 1, done.stderr[-2000:]
    assert error_lines(done)[0].startswith(f"error: cannot read the image '{root / 'train' / 'class1' / 'broken.png'}'"
                                           ": cannot identify image file")


def test_a_run_folder_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    for folder, reason in [(tmp_path / "file" / "run", "Not a directory"), (Path("/proc/self/run"), None)]:
        done = train("mode=space", f"hydra.run.dir={folder}")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.stderr.strip().splitlines() == error_lines(done), done.stderr[-2000:]
        assert error_lines(done)[0].startswith(f"error: cannot write the run folder '{folder}': {reason or ''}")


class FullDisk(pl.Callback):
    """Writes its epoch note to /dev/full, where every write fails with ENOSPC (as on a full disk)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with open("/dev/full", "w") as note:
            note.write(f"epoch {trainer.current_epoch}\n")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_line(tmp_path):
    done = train("algorithm=darts", "+trainer.callbacks=[{_target_:tests.test_reliability.FullDisk}]",
                 f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert error_lines(done) == ["error: no space left on the device"]
