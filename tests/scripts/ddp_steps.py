"""Train a tiny search with Lightning DDP on 2 CPU processes (gloo, one thread each); every rank records,
after each training step, the architecture it ran and its architecture parameters.

Usage: python tests/scripts/ddp_steps.py ALGORITHM OUT_DIR       (Lightning starts the second process)
       torchrun --nproc_per_node 2 tests/scripts/ddp_steps.py ALGORITHM OUT_DIR   (torchrun starts both)
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from algorithms import ALGORITHMS  # noqa: E402
from tests.test_algorithms import SMALL  # noqa: E402
from tests.test_primitives import CellSpace  # noqa: E402

warnings.filterwarnings("ignore")


class RecordSteps(pl.Callback):
    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.wrapped = ""

    def on_train_start(self, trainer, module):
        self.wrapped = type(trainer.strategy.model).__name__  # what trains: the module inside torch's DDP

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.steps.append({"arch": dict(module.arch.arch), "data": float(batch["train"][0].sum()),
                           "alpha": {k: v.detach().tolist() for k, v in module.arch.alpha.items()}})


def main() -> None:
    torch.set_num_threads(1)
    algorithm, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, 6, 6, generator=g), torch.randint(0, 10, (32,), generator=g)
    # each rank reads its own half of the batches (Lightning's distributed sampler): the ranks see different data
    search = CombinedLoader({"train": DataLoader(TensorDataset(x[:16], y[:16]), batch_size=2),
                             "val": DataLoader(TensorDataset(x[16:], y[16:]), batch_size=2)}, "max_size_cycle")
    module = ALGORITHMS[algorithm](CellSpace(), **SMALL[algorithm])
    record = RecordSteps()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[record])
    trainer.fit(module, train_dataloaders=search)
    strategy = trainer.strategy
    with open(os.path.join(out, f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump({"strategy": type(strategy).__name__, "backend": torch.distributed.get_backend(),
                   "world_size": trainer.world_size, "wrapped": record.wrapped,
                   "launched_by_torchrun": "TORCHELASTIC_RUN_ID" in os.environ, "steps": record.steps,
                   "export": module.export()},
                  f, default=str)


if __name__ == "__main__":
    main()
