"""What every data module shares: the two-halves split for NAS search, and the loaders."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Subset

__all__ = ["SearchDataModule"]


class SearchDataModule(pl.LightningDataModule):
    """Subclasses set ``self.train_set`` / ``self.test_set`` (and may set ``self.search_val_set``)
    in ``setup``. With ``search=True`` the training loader yields ``{"train": batch, "val":
    batch}`` from two disjoint halves of the training set (weights learn on one, the
    architecture on the other); validation and test use the test set."""

    num_classes: int = 10

    def __init__(self, batch_size: int = 64, num_workers: int = 0, search: bool = False, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size, self.num_workers, self.search, self.seed = batch_size, num_workers, search, seed
        self.train_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.search_val_set: Dataset | None = None  # the architecture half, if it needs other transforms

    def halves(self) -> tuple[Dataset, Dataset]:
        """Two disjoint halves of the training set, the same for a given seed."""
        assert self.train_set is not None
        order = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(self.seed)).tolist()
        half = len(order) // 2
        val_source = self.search_val_set if self.search_val_set is not None else self.train_set
        return Subset(self.train_set, order[:half]), Subset(val_source, order[half:])

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          generator=generator, drop_last=shuffle and len(dataset) >= 2 * self.batch_size,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> Any:
        if self.search:
            train, val = self.halves()
            return CombinedLoader({"train": self._loader(train, True), "val": self._loader(val, True)},
                                  "max_size_cycle")
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)
