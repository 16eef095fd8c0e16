"""The algorithms on small spaces: they fit, export a freezable architecture, and reject bad input."""

from __future__ import annotations

import warnings

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

import supernet
import supernet.nn as nn
from algorithms import ALGORITHMS, DartsModule, ProxylessModule, SposModule
from tests.test_primitives import CellSpace, ValueChoiceSpace

warnings.filterwarnings("ignore", ".*does not have many workers.*")


def _data(n: int = 64):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 4, 6, 6, generator=g), torch.randint(0, 10, (n,), generator=g)
    half = n // 2
    search = CombinedLoader({"train": DataLoader(TensorDataset(x[:half], y[:half]), batch_size=8),
                             "val": DataLoader(TensorDataset(x[half:], y[half:]), batch_size=8)}, "max_size_cycle")
    return search, DataLoader(TensorDataset(x, y), batch_size=16), x


def _fit(module: pl.LightningModule, epochs: int = 1) -> pl.Trainer:
    search, val, _ = _data()
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, train_dataloaders=search, val_dataloaders=val)
    return trainer


SMALL = {
    "darts": {}, "darts_second_order": {"order": 2}, "darts_gumbel": {"gumbel": True},
    "enas": {"export_samples": 3, "export_batches": 2},
    "proxyless": {"resource_weight": 0.5, "example_input_shape": (4, 6, 6)},
    "spos": {"population": 4, "generations": 2, "topk": 2, "bn_calibration_batches": 2, "eval_batches": 2,
             "example_input_shape": (4, 6, 6)},
}


@pytest.mark.parametrize("space_cls", [CellSpace, ValueChoiceSpace])
@pytest.mark.parametrize("variant", list(SMALL))
def test_algorithm_fits_and_exports_an_architecture_that_freezes(variant, space_cls):
    cls = ALGORITHMS[variant.split("_")[0]]
    module = cls(space_cls(), **SMALL[variant])
    trainer = _fit(module)
    assert "train/loss" in trainer.callback_metrics and "val/acc" in trainer.callback_metrics
    arch = module.export()
    assert set(arch) == set(supernet.search_space(space_cls()).labels)
    net = supernet.freeze(space_cls(), arch)
    assert net(torch.randn(2, 4, 6, 6)).shape == (2, 10)
    assert module.export() == arch, "export is deterministic"


def test_darts_updates_architecture_weights():
    module = DartsModule(CellSpace())
    before = {k: v.detach().clone() for k, v in module.arch.alpha.items()}
    _fit(module)
    assert any(not torch.equal(before[k], v) for k, v in module.arch.alpha.items())


def test_proxyless_resource_term_makes_the_cheapest_candidate_win():
    class Space(nn.Module):
        def __init__(self):
            super().__init__()
            self.op = nn.LayerChoice({"big": nn.Conv2d(4, 4, 5, padding=2), "small": nn.Conv2d(4, 4, 1),
                                      "mid": nn.Conv2d(4, 4, 3, padding=1)}, label="op")
            self.head = nn.Linear(4, 10)

        def forward(self, x):
            return self.head(self.op(x).mean((2, 3)))

    module = ProxylessModule(Space(), resource_weight=20.0, resource_form="add#linear", arch_learning_rate=0.05,
                             example_input_shape=(4, 6, 6))
    _fit(module, epochs=3)
    assert module.export() == {"op": "small"}
    assert module.cost_model.cheapest() == {"op": "small"}


def test_spos_keeps_a_topk_table_within_the_budget():
    module = SposModule(ValueChoiceSpace(), **{**SMALL["spos"], "max_flops": 40_000})
    _fit(module)
    assert module.topk and all(row["flops"] <= 40_000 for row in module.topk)
    assert module.export() == module.topk[0]["arch"]


def test_spos_budget_that_no_architecture_meets_is_a_clear_error():
    module = SposModule(ValueChoiceSpace(), **{**SMALL["spos"], "max_flops": 10})
    with pytest.raises(ValueError, match=r"max_flops=10 is below the cheapest architecture of the space \("):
        _fit(module)


@pytest.mark.parametrize("cls", list(ALGORITHMS.values()))
def test_bad_input_names_the_value(cls):
    with pytest.raises(ValueError, match="has no choices"):
        cls(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="learning_rate must be a positive number, got -0.1"):
        cls(ValueChoiceSpace(), learning_rate=-0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'learnig_rate'"):
        cls(ValueChoiceSpace(), learnig_rate=0.1)


def _state_of(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("variant", ["darts", "darts_gumbel", "enas", "proxyless", "spos"])
def test_resuming_from_a_checkpoint_gives_the_same_search_as_an_uninterrupted_run(variant, tmp_path):
    cls = ALGORITHMS[variant.split("_")[0]]
    search, val, _ = _data()

    def trainer(epochs: int) -> pl.Trainer:
        return pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, accelerator="cpu", deterministic=True)

    torch.manual_seed(0)
    straight = cls(CellSpace(), **SMALL[variant])
    trainer(2).fit(straight, train_dataloaders=search, val_dataloaders=val)

    class StopAfterFirstEpoch(pl.Callback):  # the run is killed after its first epoch
        def on_train_epoch_end(self, trainer, module):
            trainer.should_stop = True

    torch.manual_seed(0)
    first = cls(CellSpace(), **SMALL[variant])
    interrupted = pl.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                             accelerator="cpu", deterministic=True, callbacks=[
                                 pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True), StopAfterFirstEpoch()])
    interrupted.fit(first, train_dataloaders=search, val_dataloaders=val)
    assert interrupted.current_epoch == 1
    torch.manual_seed(123)  # a fresh process would start from another state
    resumed = cls(CellSpace(), **SMALL[variant])
    trainer(2).fit(resumed, train_dataloaders=search, val_dataloaders=val, ckpt_path=tmp_path / "last.ckpt")

    expected, got = _state_of(straight), _state_of(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], msg=f"{key} differs after resuming")
    assert resumed.export() == straight.export()
