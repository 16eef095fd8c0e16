"""Data splits a user can trust: the test split is never used to search or select, and the
shuffling order is a function of (seed, epoch) so a resumed run sees the same batches."""

from __future__ import annotations

import pytest
import torch

from datamodules import EmbeddedDataModule
from datamodules.base import EpochShuffleSampler


def _images(loader) -> torch.Tensor:
    return torch.cat([batch[0] for batch in loader])


def _rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def _module(search: bool, **kwargs) -> EmbeddedDataModule:
    data = EmbeddedDataModule(num_train=60, num_test=20, batch_size=8, search=search, **kwargs)
    data.setup()
    return data


def test_search_validates_on_the_architecture_half_never_on_the_test_split():
    data = _module(search=True)
    val = _rows(_images(data.val_dataloader()))
    train_x = data.train_set.tensors[0]
    test = _rows(data.test_set.tensors[0])
    weights_half, arch_half = data.halves()
    assert val == _rows(torch.stack([arch_half[i][0] for i in range(len(arch_half))]))
    assert not val & test, "search validation must not see the test split"
    assert not val & _rows(torch.stack([weights_half[i][0] for i in range(len(weights_half))]))
    assert val <= _rows(train_x)


def test_finetuning_validates_on_a_split_carved_from_training_data():
    data = _module(search=False, val_fraction=0.25)
    val = _rows(_images(data.val_dataloader()))
    trained = _rows(torch.stack([data.fit_split()[0][i][0] for i in range(len(data.fit_split()[0]))]))
    assert len(val) == 15 and len(trained) == 45
    assert not val & trained, "the validation split is held out from training"
    assert val <= _rows(data.train_set.tensors[0])
    assert not val & _rows(data.test_set.tensors[0])
    assert _rows(_images(data.test_dataloader())) == _rows(data.test_set.tensors[0])


def test_val_fraction_zero_trains_on_everything_without_validation():
    data = _module(search=False, val_fraction=0.0)
    assert len(data.fit_split()[0]) == 60 and data.val_dataloader() == []


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), "0.1", True])
def test_bad_val_fraction_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="val_fraction"):
        EmbeddedDataModule(val_fraction=bad)


def test_shuffling_order_is_a_function_of_seed_and_epoch_alone():
    """A fresh loader set to epoch 1 (a resumed run) yields what a loader that ran epoch 0 yields next."""
    running = _module(search=True).train_dataloader()
    loaders = running.iterables
    epochs = []
    for epoch in range(2):
        for loader in loaders.values():
            loader.sampler.set_epoch(epoch)
        epochs.append([_images(loader) for loader in loaders.values()])
    assert not torch.equal(epochs[0][0], epochs[1][0]), "each epoch has its own order"
    resumed = _module(search=True).train_dataloader().iterables
    for loader in resumed.values():
        loader.sampler.set_epoch(1)
    for before, after in zip(epochs[1], [_images(loader) for loader in resumed.values()]):
        assert torch.equal(before, after)


def test_epoch_shuffle_sampler_is_a_permutation():
    sampler = EpochShuffleSampler(10, seed=3)
    sampler.set_epoch(4)
    assert sorted(sampler) == list(range(10)) and len(sampler) == 10
