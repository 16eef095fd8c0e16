"""What every data module shares: the splits a NAS run needs, and reproducible loaders.

Three disjoint roles, none of them the test set until the very end:

* search (``search=True``): the training set is cut into two fixed halves; the weights
  learn on one, the architecture on the other (DARTS §2.3 / the authors' ``train_search.py``
  with ``train_portion=0.5``). Validation during the search is the architecture half.
* fine-tuning (``search=False``): ``val_fraction`` of the training set is held out to
  validate (and select) on; the network trains on the rest.
* test: the test split, evaluated once, after training (``trainer.test``).

Shuffling is a function of ``(seed, epoch)`` only (``EpochShuffleSampler``, whose epoch
Lightning sets at each epoch start), so a run resumed from a checkpoint sees the same
batches as one that never stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

__all__ = ["EpochShuffleSampler", "SearchDataModule", "check_count", "take"]


def check_count(name: str, value: int | None) -> None:
    """``value`` is a number of images to use: a positive int, or None for all of them."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be a positive int (or null for all the images), got {value!r}")


def take(dataset: Dataset, count: int | None, seed: int) -> Dataset:
    """``count`` items of ``dataset`` chosen by ``seed`` alone, in their order on disk (all of them when
    ``count`` is None or not smaller): a quick check (``debug=fdr``, ``debug=limit``) need not read a whole
    data set, and two datasets of one length (augmented and plain views) give the same items."""
    size = len(dataset)  # type: ignore[arg-type]
    if count is None or count >= size:
        return dataset
    chosen = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:count]
    return Subset(dataset, sorted(chosen.tolist()))


class EpochShuffleSampler(Sampler[int]):
    """A random permutation of ``range(size)`` drawn from ``(seed, epoch)`` alone.

    A DataLoader's own generator carries its state from epoch to epoch, so a resumed run
    (a fresh generator) would replay the first epoch's order; this sampler needs no state.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class SearchDataModule(pl.LightningDataModule):
    """Subclasses set ``self.train_set`` and ``self.test_set`` in ``setup``, and may set
    ``self.train_eval_set``: the training images with evaluation transforms (no augmentation),
    used for the architecture half of a search and the held-out validation split."""

    num_classes: int = 10

    def __init__(self, batch_size: int = 64, num_workers: int = 0, search: bool = False, seed: int = 0,
                 val_fraction: float = 0.1) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        if (not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool)
                or not 0 <= val_fraction < 1 or math.isnan(val_fraction)):
            raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
        self.batch_size, self.num_workers, self.search, self.seed = batch_size, num_workers, search, seed
        self.val_fraction = float(val_fraction)
        self.train_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.train_eval_set: Dataset | None = None

    # -- splits ------------------------------------------------------------------------------------
    def _order(self) -> list[int]:
        assert self.train_set is not None, "setup() must set train_set"
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randperm(len(self.train_set), generator=generator).tolist()  # type: ignore[arg-type]

    def _eval_source(self) -> Dataset:
        return self.train_eval_set if self.train_eval_set is not None else self.train_set  # type: ignore[return-value]

    def halves(self) -> tuple[Dataset, Dataset]:
        """The search's two disjoint halves of the training set (weights, architecture); fixed by ``seed``."""
        order = self._order()
        half = len(order) // 2
        return Subset(self.train_set, order[:half]), Subset(self._eval_source(), order[half:])

    def fit_split(self) -> tuple[Dataset, Dataset | None]:
        """Fine-tuning's (training, validation) split of the training set; no validation when
        ``val_fraction`` is 0."""
        order = self._order()
        held_out = int(round(len(order) * self.val_fraction))
        if self.val_fraction > 0:
            held_out = min(max(held_out, 1), len(order) - 1)
        if held_out == 0:
            return self.train_set, None  # type: ignore[return-value]
        return Subset(self.train_set, order[held_out:]), Subset(self._eval_source(), order[:held_out])

    # -- loaders -----------------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, shuffle: bool, stream: int = 0) -> DataLoader:
        size = len(dataset)  # type: ignore[arg-type]
        sampler = EpochShuffleSampler(size, self.seed + 7919 * stream) if shuffle else None
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          drop_last=shuffle and size >= 2 * self.batch_size,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> Any:
        if self.search:
            train, val = self.halves()
            return CombinedLoader({"train": self._loader(train, True, 0), "val": self._loader(val, True, 1)},
                                  "max_size_cycle")
        return self._loader(self.fit_split()[0], True)

    def val_dataloader(self) -> Any:
        if self.search:
            return self._loader(self.halves()[1], False)
        val = self.fit_split()[1]
        return [] if val is None else self._loader(val, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)  # type: ignore[arg-type]
