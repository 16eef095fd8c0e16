"""LightningDataModules (CIFAR-10, ImageFolder, an embedded offline set): not built yet."""
