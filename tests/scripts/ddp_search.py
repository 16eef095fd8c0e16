"""Run a small search with Lightning DDP on 2 CPU processes; each rank writes what it exported.

Usage: python tests/scripts/ddp_search.py ALGORITHM OUT_DIR
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


def main() -> None:
    variant, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, 6, 6, generator=g), torch.randint(0, 10, (64,), generator=g)
    search = CombinedLoader({"train": DataLoader(TensorDataset(x[:32], y[:32]), batch_size=4),
                             "val": DataLoader(TensorDataset(x[32:], y[32:]), batch_size=4)}, "max_size_cycle")
    module = ALGORITHMS[variant.split("_")[0]](CellSpace(), **SMALL[variant])
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, train_dataloaders=search)
    rank = trainer.global_rank
    alpha = {k: v.detach().tolist() for k, v in module.arch.alpha.items()}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"arch": module.export(), "alpha": alpha, "sampled": module.arch.arch}, f, default=str)


if __name__ == "__main__":
    main()
