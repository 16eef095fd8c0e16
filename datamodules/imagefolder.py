"""Any folder dataset (e.g. ImageNet) through torchvision's ImageFolder: ``root/train/<class>/*``
and ``root/val/<class>/*``."""

from __future__ import annotations

import os

from torchvision import datasets, transforms

from datamodules.base import SearchDataModule

__all__ = ["ImageFolderDataModule"]

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageFolderDataModule(SearchDataModule):
    """ImageNet-style augmentation (random resized crop, flip) for training; resize and centre crop
    for validation."""

    def __init__(self, root: str, image_size: int = 224, batch_size: int = 64, num_workers: int = 8,
                 search: bool = False, seed: int = 0,
                 val_fraction: float = 0.1) -> None:
        super().__init__(batch_size, num_workers, search, seed, val_fraction)
        self.root, self.image_size = root, image_size
        self.num_classes = 0

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        for part in ("train", "val"):
            folder = os.path.join(self.root, part)
            if not os.path.isdir(folder) or not os.access(folder, os.R_OK):
                raise FileNotFoundError(f"cannot read {folder!r}: an image-folder dataset needs "
                                        f"{os.path.join(self.root, 'train')} and {os.path.join(self.root, 'val')}, "
                                        "each with one sub-folder of images per class")
        size = self.image_size
        train = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
        evaluate = transforms.Compose([transforms.Resize(int(size * 256 / 224)), transforms.CenterCrop(size),
                                       transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
        self.train_set = datasets.ImageFolder(os.path.join(self.root, "train"), transform=train)
        self.train_eval_set = datasets.ImageFolder(os.path.join(self.root, "train"), transform=evaluate)
        self.test_set = datasets.ImageFolder(os.path.join(self.root, "val"), transform=evaluate)
        self.num_classes = len(self.train_set.classes)
