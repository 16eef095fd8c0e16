"""An offline image task generated on the spot: no download, the same images on every machine.

Ten classes of 32x32 colour images: five shapes (disc, square, ring, cross, triangle),
each solid or striped, drawn at a random position, size, rotation and colour on a
random background with noise. Telling them apart needs spatial features at several
scales (outline vs texture), so the choices of a search space (kernel sizes, depth,
pooling) make a visible difference.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

from datamodules.base import SearchDataModule

__all__ = ["EmbeddedDataModule", "generate_shapes"]

CLASSES = [f"{shape}-{fill}" for fill in ("solid", "striped") for shape in
           ("disc", "square", "ring", "cross", "triangle")]


def generate_shapes(count: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images (N, 3, size, size), roughly standardised, and their labels (balanced)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % len(CLASSES)
    labels = labels[torch.randperm(count, generator=g)]
    shape, striped = labels % 5, labels // 5

    def uniform(low: float, high: float, n: int = count) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=g)

    axis = torch.linspace(-1, 1, size)
    v, u = torch.meshgrid(axis, axis, indexing="ij")
    cx, cy = uniform(-0.3, 0.3)[:, None, None], uniform(-0.3, 0.3)[:, None, None]
    scale = uniform(0.35, 0.6)[:, None, None]
    angle = uniform(0, math.pi)[:, None, None]
    du, dv = u[None] - cx, v[None] - cy
    x = (du * torch.cos(angle) + dv * torch.sin(angle)) / scale
    y = (-du * torch.sin(angle) + dv * torch.cos(angle)) / scale
    r = torch.sqrt(x * x + y * y)
    masks = torch.stack([
        r < 1.0,
        torch.maximum(x.abs(), y.abs()) < 0.8,
        (r > 0.55) & (r < 1.0),
        ((x.abs() < 0.3) & (y.abs() < 1.0)) | ((y.abs() < 0.3) & (x.abs() < 1.0)),
        (y > -0.7) & (x.abs() < (0.8 - y) * 0.55) & (y < 0.8),
    ], 1).float()
    mask = masks[torch.arange(count), shape]
    stripes = (torch.sin(9.0 * x) > 0).float()
    mask = torch.where(striped[:, None, None].bool(), mask * stripes, mask)
    foreground = torch.rand(count, 3, 1, 1, generator=g)
    background = torch.rand(count, 3, 1, 1, generator=g)
    too_close = (foreground - background).abs().sum(1, keepdim=True) < 0.6
    foreground = torch.where(too_close, 1 - background, foreground)
    images = background + mask[:, None] * (foreground - background)
    images = images + 0.12 * torch.randn(images.shape, generator=g)
    return (images - 0.5) / 0.3, labels


class EmbeddedDataModule(SearchDataModule):
    """The embedded shapes task (see the module docstring) as a data module."""

    num_classes = len(CLASSES)

    def __init__(self, num_train: int = 5000, num_test: int = 1000, batch_size: int = 64, num_workers: int = 0,
                 search: bool = False, seed: int = 0,
                 val_fraction: float = 0.1) -> None:
        super().__init__(batch_size, num_workers, search, seed, val_fraction)
        for name, value in (("num_train", num_train), ("num_test", num_test)):
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an int >= 2, got {value!r}")
        self.num_train, self.num_test = num_train, num_test

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = TensorDataset(*generate_shapes(self.num_train, seed=1000 + self.seed))
            self.test_set = TensorDataset(*generate_shapes(self.num_test, seed=2000 + self.seed))
