"""Any folder dataset (e.g. ImageNet) through torchvision's ImageFolder: ``root/train/<class>/*``
and ``root/val/<class>/*``."""

from __future__ import annotations

import os

from PIL import Image
from torchvision import datasets, transforms

from datamodules.base import SearchDataModule, check_count, take

__all__ = ["DataError", "ImageFolderDataModule", "load_image"]

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DataError(ValueError):
    """The data on disk does not fit the configuration, or a file is corrupt: one line, exit status 2."""


def load_image(path: str) -> Image.Image:
    """``path`` as an RGB image (torchvision's default loader), or a ``DataError`` that names the file:
    a corrupt or truncated image would otherwise surface as PIL's message from a loader worker."""
    try:
        with open(path, "rb") as file:
            image = Image.open(file)
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"cannot read the image {path!r}: {str(error).splitlines()[0] or type(error).__name__}; "
                        "replace or delete it") from None


class ImageFolderDataModule(SearchDataModule):
    """ImageNet-style augmentation (random resized crop, flip) for training; resize and centre crop
    for validation."""

    def __init__(self, root: str, image_size: int = 224, batch_size: int = 64, num_workers: int = 8,
                 search: bool = False, seed: int = 0,
                 val_fraction: float = 0.1, num_classes: int | None = None, num_train: int | None = None,
                 num_test: int | None = None) -> None:
        super().__init__(batch_size, num_workers, search, seed, val_fraction)
        check_count("num_train", num_train)
        check_count("num_test", num_test)
        self.num_train, self.num_test = num_train, num_test  # None: every image; else a seeded subset
        self.root, self.image_size = root, image_size
        self.expected_classes = num_classes  # data.num_classes, what the network's head is built for
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
        self.train_set = datasets.ImageFolder(os.path.join(self.root, "train"), transform=train, loader=load_image)
        self.train_eval_set = datasets.ImageFolder(os.path.join(self.root, "train"), transform=evaluate,
                                                   loader=load_image)
        self.test_set = datasets.ImageFolder(os.path.join(self.root, "val"), transform=evaluate, loader=load_image)
        self.num_classes = len(self.train_set.classes)
        train_folder = os.path.join(self.root, "train")
        if self.expected_classes is not None and self.num_classes != self.expected_classes:
            raise DataError(f"{train_folder!r} has {self.num_classes} class folders but data.num_classes="
                            f"{self.expected_classes}; set data.num_classes={self.num_classes} or fix the folder")
        if self.test_set.classes != self.train_set.classes:
            raise DataError(f"{os.path.join(self.root, 'val')!r} has {len(self.test_set.classes)} class folders, "
                            f"{train_folder!r} has {self.num_classes}: both need the same class folders")
        self.train_set = take(self.train_set, self.num_train, self.seed)
        self.train_eval_set = take(self.train_eval_set, self.num_train, self.seed)
        self.test_set = take(self.test_set, self.num_test, self.seed)
