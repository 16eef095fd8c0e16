"""Every algorithm on each of the design card's four spaces, a few steps at a tiny CPU config."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

import hub
import supernet
from algorithms import DartsModule, EnasModule, ProxylessModule, SposModule

SIZE = 16
SPACES = {
    "nasnet": lambda: hub.NASNet(width=4, num_cells=3),
    "mobilenetv3": lambda: hub.MobileNetV3Space(num_labels=10, width_multipliers=(0.25, 0.5), depth_range=(1, 2)),
    "shufflenet": lambda: hub.ShuffleNetSpace(num_labels=10),
    "autoformer": lambda: hub.AutoformerSpace(search_embed_dim=(16, 32), search_num_heads=(1, 2),
                                              search_depth=(1, 2), img_size=SIZE, patch_size=4, num_classes=10),
}
ALGORITHMS = {
    "darts": lambda space: DartsModule(space),
    "darts_second_order": lambda space: DartsModule(space, order=2),
    "darts_gumbel": lambda space: DartsModule(space, gumbel=True),
    "enas": lambda space: EnasModule(space, export_samples=2, export_batches=1),
    "proxyless": lambda space: ProxylessModule(space),
    "spos": lambda space: SposModule(space, population=4, generations=1, topk=2, bn_calibration_batches=1,
                                     eval_batches=1, example_input_shape=(3, SIZE, SIZE)),
}


def _loaders():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, SIZE, SIZE, generator=g), torch.randint(0, 10, (16,), generator=g)
    search = CombinedLoader({"train": DataLoader(TensorDataset(x[:8], y[:8]), batch_size=4),
                             "val": DataLoader(TensorDataset(x[8:], y[8:]), batch_size=4)}, "max_size_cycle")
    return search, DataLoader(TensorDataset(x, y), batch_size=8)


# beyond the card: the DARTS space, NAS-Bench-201 and NAS-Bench-101 with every algorithm
SPACES["darts"] = lambda: hub.DARTS(width=4, num_cells=3)
SPACES["nasbench201"] = lambda: hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1)
SPACES["nasbench101"] = lambda: hub.NasBench101(stem_out_channels=4, num_modules_per_stack=1)
CASES = [(a, s) for s in SPACES for a in ALGORITHMS]


@pytest.mark.parametrize(("algorithm", "space"), CASES)
def test_algorithm_fits_the_space_and_exports_a_network_that_runs(algorithm, space):
    module = ALGORITHMS[algorithm](SPACES[space]())
    search, val = _loaders()
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    trainer.fit(module, train_dataloaders=search, val_dataloaders=val)
    arch = module.export()
    net = supernet.freeze(SPACES[space](), arch).eval()
    assert net(torch.randn(2, 3, SIZE, SIZE)).shape == (2, 10)
