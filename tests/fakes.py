"""Small stand-ins for the CLI tests: a tiny image space, a random-image data module, a process killer."""

from __future__ import annotations

import os

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

import supernet.nn as nn


class TinyConvSpace(nn.Module):
    """A few choices on 32x32 images: stem width and kernel, a block op, a variable depth."""

    def __init__(self, num_labels: int = 10) -> None:
        super().__init__()
        width = nn.ValueChoice([8, 12], label="width")
        kernel = nn.ValueChoice([3, 5], label="kernel")
        self.stem = nn.Sequential(nn.Conv2d(3, width, kernel, stride=2, padding=(kernel - 1) // 2),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Repeat(lambda i: nn.LayerChoice({
            "conv": nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
            "pool": nn.MaxPool2d(3, 1, 1)}, label=f"block{i}"), (1, 2), label="depth")
        self.head = nn.Linear(width, num_labels)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class RandomImageDataModule(pl.LightningDataModule):
    """Random 32x32 images with labels tied to their mean colour (learnable, a little)."""

    def __init__(self, num_train: int = 128, num_test: int = 64, batch_size: int = 32, search: bool = False,
                 seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n = num_train + num_test
        self.x = torch.randn(n, 3, 32, 32, generator=g)
        self.y = (self.x.mean((1, 2, 3)) > 0).long() + 2 * (self.x[:, 0].mean((1, 2)) > 0).long()
        self.num_train, self.batch_size, self.search = num_train, batch_size, search

    def _loader(self, start: int, stop: int) -> DataLoader:
        return DataLoader(TensorDataset(self.x[start:stop], self.y[start:stop]), batch_size=self.batch_size)

    def train_dataloader(self):
        if self.search:
            half = self.num_train // 2
            return CombinedLoader({"train": self._loader(0, half), "val": self._loader(half, self.num_train)},
                                  "max_size_cycle")
        return self._loader(0, self.num_train)

    def val_dataloader(self):
        return self._loader(self.num_train, len(self.x))

    test_dataloader = val_dataloader


class KillAtEpochStart(pl.Callback):
    """Ends the process at once when ``epoch`` starts, as ``kill -9`` would: no clean-up, no checkpoint."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            os._exit(137)
