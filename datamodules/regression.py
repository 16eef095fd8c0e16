"""A generated regression task: no download, the same numbers on every machine.

Inputs are standard normal vectors; the targets are a planted function of them, a random
two-layer tanh network (``hidden`` units) drawn from ``seed``, standardised to unit variance,
plus Gaussian noise of standard deviation ``noise``. The best achievable mean squared error
is therefore about ``noise ** 2``; a linear model cannot fit the planted tanh network, so
the activations a space searches over make a visible difference.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from datamodules.base import SearchDataModule

__all__ = ["RegressionDataModule", "generate_regression"]


def generate_regression(count: int, seed: int, num_features: int = 8, num_outputs: int = 1, hidden: int = 16,
                        noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` inputs ``(N, num_features)`` and float targets ``(N, num_outputs)``; the planted network
    depends on ``seed`` only (not on ``count``), so two calls with one seed share the function."""
    g = torch.Generator().manual_seed(seed)
    w1 = 2.0 * torch.randn(num_features, hidden, generator=g) / num_features ** 0.5
    b1 = 0.5 * torch.randn(hidden, generator=g)
    w2 = torch.randn(hidden, num_outputs, generator=g) / hidden ** 0.5
    reference = torch.tanh(torch.randn(4096, num_features, generator=g) @ w1 + b1) @ w2  # the scale, fixed by seed
    mean, std = reference.mean(0), reference.std(0)
    x = torch.randn(count, num_features, generator=g)
    y = (torch.tanh(x @ w1 + b1) @ w2 - mean) / std
    return x, y + noise * torch.randn(y.shape, generator=g)


class RegressionDataModule(SearchDataModule):
    """The generated regression task (see the module docstring): ``num_train`` training and ``num_test``
    test pairs drawn from one planted function; search halves and fine-tuning splits as every data module."""

    def __init__(self, num_train: int = 2000, num_test: int = 500, num_features: int = 8, num_outputs: int = 1,
                 noise: float = 0.1, batch_size: int = 64, num_workers: int = 0, search: bool = False, seed: int = 0,
                 val_fraction: float = 0.1) -> None:
        super().__init__(batch_size, num_workers, search, seed, val_fraction)
        for name, value in (("num_train", num_train), ("num_test", num_test), ("num_features", num_features),
                            ("num_outputs", num_outputs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < (2 if name.startswith("num_t") else 1):
                raise ValueError(f"{name} must be a whole number >= {2 if name.startswith('num_t') else 1}, "
                                 f"got {value!r}")
        if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not noise >= 0:
            raise ValueError(f"noise must be a number >= 0, got {noise!r}")
        self.num_train, self.num_test, self.noise = num_train, num_test, float(noise)
        self.num_features, self.num_outputs = num_features, num_outputs

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            x, y = generate_regression(self.num_train + self.num_test, 1000 + self.seed, self.num_features,
                                       self.num_outputs, noise=self.noise)
            self.train_set = TensorDataset(x[: self.num_train], y[: self.num_train])
            self.test_set = TensorDataset(x[self.num_train:], y[self.num_train:])
