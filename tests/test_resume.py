"""A resumed run is the same run: stopped at an epoch end and resumed from its checkpoint, a search
(or a fine-tuning) on a real, shuffling data module ends with every tensor of an uninterrupted run."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

import supernet
from algorithms import ALGORITHMS
from algorithms.finetune import FixedNetModule
from datamodules import EmbeddedDataModule
from tests.fakes import TinyConvSpace

OPTIONS = {"darts": {}, "enas": {"export_samples": 2, "export_batches": 1},
           "proxyless": {}, "spos": {"population": 3, "generations": 1, "topk": 2, "bn_calibration_batches": 1,
                                     "eval_batches": 1}}
OPTIONS["spos_flops_bins"] = {**OPTIONS["spos"], "flops_bins": 3}


class _StopAfterFirstEpoch(pl.Callback):
    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = True


def _trainer(path, callbacks=()) -> pl.Trainer:
    return pl.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", deterministic=True, default_root_dir=path, limit_val_batches=1,
                      callbacks=[pl.callbacks.ModelCheckpoint(dirpath=path, filename="last"), *callbacks])


def _tensors(value, prefix=""):
    """Every tensor of a checkpoint, by its path (model, optimizers, schedulers, generators)."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{prefix}/{i}")


def _run_both(make_module, make_data, tmp_path):
    torch.manual_seed(0)
    straight = make_module()
    trainer = _trainer(tmp_path / "straight")
    trainer.fit(straight, datamodule=make_data())
    trainer.save_checkpoint(tmp_path / "straight.ckpt")

    torch.manual_seed(0)
    first = make_module()
    interrupted = _trainer(tmp_path / "run", [_StopAfterFirstEpoch()])
    interrupted.fit(first, datamodule=make_data())
    assert interrupted.current_epoch == 1
    torch.manual_seed(123)  # a fresh process starts from another random state
    resumed = make_module()
    trainer = _trainer(tmp_path / "run")
    trainer.fit(resumed, datamodule=make_data(), ckpt_path=tmp_path / "run" / "last.ckpt")
    trainer.save_checkpoint(tmp_path / "resumed.ckpt")

    load = lambda name: torch.load(tmp_path / name, map_location="cpu", weights_only=False)  # noqa: E731
    expected = dict(_tensors({k: v for k, v in load("straight.ckpt").items() if k != "callbacks"}))
    got = dict(_tensors({k: v for k, v in load("resumed.ckpt").items() if k != "callbacks"}))
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), f"{key} differs after resuming"
    return straight, resumed


@pytest.mark.parametrize("name", list(OPTIONS))
def test_resumed_search_on_shuffled_embedded_data_ends_bit_identical(name, tmp_path):
    torch.set_num_threads(1)
    make_data = lambda: EmbeddedDataModule(num_train=96, num_test=16, batch_size=16, search=True)  # noqa: E731
    cls = ALGORITHMS[name.split("_")[0]]
    straight, resumed = _run_both(lambda: cls(TinyConvSpace(), **OPTIONS[name]), make_data, tmp_path)
    assert resumed.export() == straight.export()


def test_resumed_finetuning_on_shuffled_embedded_data_ends_bit_identical(tmp_path):
    torch.set_num_threads(1)
    space = TinyConvSpace()
    arch = supernet.sample(space, seed=0)
    make_data = lambda: EmbeddedDataModule(num_train=96, num_test=16, batch_size=16)  # noqa: E731
    _run_both(lambda: FixedNetModule(supernet.freeze(TinyConvSpace(), arch)), make_data, tmp_path)
