"""CIFAR-10 through torchvision, with the DARTS recipe's augmentation (crop, flip, cutout)."""

from __future__ import annotations

import os

import torch
from torchvision import datasets, transforms

from datamodules.base import SearchDataModule, check_count, take

__all__ = ["CIFAR10DataModule", "Cutout"]

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class Cutout:
    """Zero one random ``length`` x ``length`` square of a (C, H, W) image tensor."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        cy, cx = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
        top, bottom = max(0, cy - self.length // 2), min(h, cy + self.length // 2)
        left, right = max(0, cx - self.length // 2), min(w, cx + self.length // 2)
        image = image.clone()
        image[..., top:bottom, left:right] = 0
        return image


class CIFAR10DataModule(SearchDataModule):
    """CIFAR-10 in ``root`` (downloaded when ``download`` and missing; or a local copy in the
    standard ``cifar-10-batches-py`` format)."""

    num_classes = 10

    def __init__(self, root: str = "data", batch_size: int = 64, num_workers: int = 2, download: bool = True,
                 cutout_length: int = 16, search: bool = False, seed: int = 0,
                 val_fraction: float = 0.1, num_train: int | None = None, num_test: int | None = None) -> None:
        super().__init__(batch_size, num_workers, search, seed, val_fraction)
        check_count("num_train", num_train)
        check_count("num_test", num_test)
        self.root, self.download, self.cutout_length = root, download, cutout_length
        self.num_train, self.num_test = num_train, num_test  # None: all 50,000 / 10,000; else a seeded subset

    def prepare_data(self) -> None:
        if self.download:
            datasets.CIFAR10(self.root, train=True, download=True)
            datasets.CIFAR10(self.root, train=False, download=True)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        folder = os.path.join(self.root, "cifar-10-batches-py")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"no CIFAR-10 in {self.root!r}: expected {folder!r} (the standard "
                                    "cifar-10-batches-py folder); set download=true to fetch it")
        augment = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                   transforms.Normalize(MEAN, STD)]
        if self.cutout_length > 0:
            augment.append(Cutout(self.cutout_length))
        plain = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
        train = datasets.CIFAR10(self.root, train=True, transform=transforms.Compose(augment))
        self.train_set = take(train, self.num_train, self.seed)
        self.train_eval_set = take(datasets.CIFAR10(self.root, train=True, transform=plain), self.num_train, self.seed)
        self.test_set = take(datasets.CIFAR10(self.root, train=False, transform=plain), self.num_test, self.seed)
