"""The search-quality benchmark's space, data and from-scratch training (the ground truth).

``ChainSpace``: a stem, then ``LAYERS`` searched layers of the same width, each a
LayerChoice of ``OPS``, a 2x2 average pool after the first, global average pooling
and a linear classifier; 4 ** 3 = 64 architectures. The ops differ in what they can see
(receptive field) and whether they learn anything: the parameter-free ``maxpool`` and
``skip`` are the ops DARTS is known to collapse to (Zela et al., 2020; Dong & Yang, 2020).

The data are the embedded shapes (``datamodules.embedded.generate_shapes``) drawn at
16x16 to keep the ground truth cheap enough for a 2-core CPU.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

import supernet
import supernet.nn as nn
from datamodules.embedded import generate_shapes

__all__ = ["OPS", "LAYERS", "ChainSpace", "all_archs", "arch_key", "dataset", "train_from_scratch", "accuracy"]

OPS = ("conv3x3", "conv5x5", "maxpool", "skip")
LAYERS = 3
WIDTH = 16
IMAGE = 16
TRAIN_SEED, TEST_SEED = 1000, 2000
CLASSES = 5


def _op(name: str, width: int) -> torch.nn.Module:
    if name.startswith("conv"):
        k = int(name[4])
        return nn.Sequential(nn.Conv2d(width, width, k, padding=k // 2, bias=False), nn.BatchNorm2d(width),
                             nn.ReLU())
    if name == "maxpool":
        return nn.MaxPool2d(3, 1, 1)
    return nn.Identity()


class ChainSpace(nn.Module):
    """stem conv3x3 -> layer0 -> avgpool 2x2 -> layer1, layer2 -> global pool -> linear."""

    def __init__(self, width: int = WIDTH, num_classes: int = CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layers = nn.ModuleList(
            nn.LayerChoice({op: _op(op, width) for op in OPS}, label=f"layer{i}") for i in range(LAYERS))
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, layer in enumerate(self.layers):
            if i == 1:
                x = F.avg_pool2d(x, 2)
            x = layer(x)
        return self.classifier(x.mean((2, 3)))


def all_archs() -> list[dict[str, str]]:
    """Every architecture of ``ChainSpace``, in a fixed order."""
    return [{f"layer{i}": op for i, op in enumerate(ops)} for ops in itertools.product(OPS, repeat=LAYERS)]


def arch_key(arch: dict[str, Any]) -> str:
    """A short stable name of an architecture: its ops joined by '-' in layer order."""
    return "-".join(str(arch[f"layer{i}"]) for i in range(LAYERS))


def _solid_shapes(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = generate_shapes(2 * count, seed, IMAGE)
    keep = y < CLASSES
    return x[keep][:count].contiguous(), y[keep][:count].contiguous()


Data = tuple[torch.Tensor, torch.Tensor]


def dataset(num_train: int, num_test: int) -> tuple[Data, Data]:
    """(train, test): the five solid shapes of the embedded task at IMAGE x IMAGE (at 16x16 the stripes
    alias, so the striped classes are left out); the test images are never searched on."""
    return _solid_shapes(num_train, TRAIN_SEED), _solid_shapes(num_test, TEST_SEED)


@torch.no_grad()
def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on (x, y)."""
    net.eval()
    correct = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def train_from_scratch(arch: dict[str, Any], seed: int, train: tuple[torch.Tensor, torch.Tensor],
                       test: tuple[torch.Tensor, torch.Tensor], epochs: int, batch_size: int = 64,
                       learning_rate: float = 0.05) -> dict[str, float]:
    """Train ``freeze(ChainSpace(), arch)`` from scratch (SGD, momentum 0.9, cosine schedule, fixed seed);
    returns test accuracy and the wall time of the training."""
    torch.manual_seed(seed)
    net = supernet.freeze(ChainSpace(), arch)
    optimizer = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=0.9, weight_decay=3e-4)
    x, y = train
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    seconds = time.perf_counter() - start
    return {"accuracy": accuracy(net, *test), "seconds": seconds}
