"""A planted-architecture task: a teacher frozen at a known architecture labels random inputs.

Every decision has exactly one candidate that can fit the teacher: candidates read
different input features through different functional forms, so no candidate (nor a
mix of them) can imitate another.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

import supernet
import supernet.nn as nn

FEATURES = 12
CLASSES = 4
FORMS = {
    "linear": lambda v: v,
    "sine": lambda v: torch.sin(2.0 * v),
    "square": lambda v: v * v - 1.0,
    "step": lambda v: torch.sign(v),
}


class Feature(nn.Module):
    """``form(x[:, index])`` mapped to the class scores by a learned vector."""

    def __init__(self, index: int, form: str) -> None:
        super().__init__()
        self.index, self.form = index, form
        self.out = nn.Linear(1, CLASSES)

    def forward(self, x):
        return self.out(FORMS[self.form](x[:, self.index : self.index + 1]))


@nn.basic_unit
class Wave(torch.nn.Module):
    """``sin(frequency * x[:, index])`` mapped to the class scores; the frequency is a ValueChoice."""

    def __init__(self, frequency: float, index: int) -> None:
        super().__init__()
        self.frequency, self.index = frequency, index
        self.out = torch.nn.Linear(1, CLASSES)

    def forward(self, x):
        return self.out(torch.sin(self.frequency * x[:, self.index : self.index + 1]))


class PlantedSpace(nn.Module):
    """Two LayerChoices, an InputChoice and a ValueChoice; each candidate has its own feature."""

    def __init__(self) -> None:
        super().__init__()
        forms = list(FORMS)
        self.first = nn.LayerChoice({f: Feature(i, f) for i, f in enumerate(forms)}, label="first")
        self.second = nn.LayerChoice({f: Feature(4 + i, f) for i, f in enumerate(reversed(forms))}, label="second")
        self.branches = nn.ModuleList(Feature(8 + i, "linear") for i in range(3))
        self.pick = nn.InputChoice(3, 1, label="branch")
        self.wave = Wave(nn.ValueChoice([1.0, 2.5, 4.0], label="frequency"), 11)

    def forward(self, x):
        return self.first(x) + self.second(x) + self.pick([b(x) for b in self.branches]) + self.wave(x)


TEACHER_ARCH = {"first": "square", "second": "sine", "branch": [2], "frequency": 2.5}


def teacher_data(seed: int, n: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs labelled by a teacher frozen at ``TEACHER_ARCH`` with strong random weights."""
    torch.manual_seed(seed)
    teacher = supernet.freeze(PlantedSpace(), TEACHER_ARCH)
    with torch.no_grad():
        for p in teacher.parameters():
            p.normal_(0, 2.0)
    x = torch.randn(n, FEATURES)
    with torch.no_grad():
        y = teacher(x).argmax(-1)
    return x, y


def search_loaders(x: torch.Tensor, y: torch.Tensor, batch_size: int = 128) -> CombinedLoader:
    half = x.shape[0] // 2
    return CombinedLoader({
        "train": DataLoader(TensorDataset(x[:half], y[:half]), batch_size=batch_size, shuffle=True),
        "val": DataLoader(TensorDataset(x[half:], y[half:]), batch_size=batch_size, shuffle=True),
    }, "max_size_cycle")


def recovered(arch: dict) -> int:
    """How many of the teacher's decisions ``arch`` got right."""
    return sum(arch[k] == v for k, v in TEACHER_ARCH.items())


def run_search(module: pl.LightningModule, seed: int, epochs: int) -> dict:
    x, y = teacher_data(seed)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, train_dataloaders=search_loaders(x, y))
    return module.export()
