"""LightningDataModules: CIFAR-10, any image folder, an embedded offline image task and a generated regression task."""

from typing import Any

from datamodules.base import SearchDataModule
from datamodules.cifar10 import CIFAR10DataModule
from datamodules.embedded import EmbeddedDataModule
from datamodules.imagefolder import ImageFolderDataModule
from datamodules.regression import RegressionDataModule

DATAMODULES = {"cifar10": CIFAR10DataModule, "embedded": EmbeddedDataModule, "imagefolder": ImageFolderDataModule,
               "regression": RegressionDataModule}

__all__ = ["DATAMODULES", "CIFAR10DataModule", "EmbeddedDataModule", "ImageFolderDataModule", "RegressionDataModule",
           "SearchDataModule", "build_datamodule"]


def build_datamodule(name: str, **kwargs: Any) -> SearchDataModule:
    """The data module registered as ``name`` built with ``kwargs``."""
    if name not in DATAMODULES:
        raise ValueError(f"unknown data module {name!r}; available: {', '.join(DATAMODULES)}")
    return DATAMODULES[name](**kwargs)
