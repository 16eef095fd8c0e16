"""ProxylessNAS as its paper and the authors' code do it: the two-path rescale, costs in multiply-adds,
and an expected cost that is exact when the depth is searched."""

from __future__ import annotations

import itertools
import warnings

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

import supernet
import supernet.nn as nn
from algorithms import ProxylessModule
from algorithms.cost import CostModel, count_macs

warnings.filterwarnings("ignore", ".*does not have many workers.*")


class FourOps(nn.Module):
    """Two labels with >= 4 candidates, so each architecture step leaves some paths unsampled."""

    def __init__(self) -> None:
        super().__init__()
        self.op = nn.LayerChoice({"c1": nn.Conv2d(4, 8, 1), "c3": nn.Conv2d(4, 8, 3, padding=1),
                                  "c5": nn.Conv2d(4, 8, 5, padding=2), "pool": nn.Sequential(
                                      nn.AvgPool2d(3, 1, 1), nn.Conv2d(4, 8, 1)), "max": nn.Sequential(
                                      nn.MaxPool2d(3, 1, 1), nn.Conv2d(4, 8, 1))}, label="op")
        self.act = nn.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh(), "sig": nn.Sigmoid(), "id": nn.Identity()},
                                  label="act")
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.act(self.op(x)).mean((2, 3)))


def _search_data() -> CombinedLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, 6, 6, generator=g), torch.randint(0, 10, (64,), generator=g)
    return CombinedLoader({"train": DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8),
                           "val": DataLoader(TensorDataset(x[32:], y[32:]), batch_size=8)}, "max_size_cycle")


class _RecordArchSteps(pl.Callback):
    """The softmax of every label before and after each training step, with the paths it sampled."""

    def __init__(self) -> None:
        self.steps: list[tuple[dict, dict, dict]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._before = {label: torch.softmax(module.arch.alpha_of(label).detach().clone(), -1)
                        for label in module.arch.labels()}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        after = {label: torch.softmax(module.arch.alpha_of(label).detach().clone(), -1)
                 for label in module.arch.labels()}
        sampled = {label: [module.arch.alpha_values(label).index(v) for v in values]
                   for label, values in module.arch.gate_paths.items()}
        self.steps.append((self._before, after, sampled))


@pytest.mark.parametrize("resource_weight", [0.0, 0.5])
def test_proxyless_arch_step_keeps_unsampled_paths_probabilities(resource_weight):
    # paper §3.2.1 and the authors' MixedEdge.rescale_updated_arch_param: after the step on the two
    # sampled paths, their alphas are shifted so that the paths not sampled keep their probability
    torch.manual_seed(0)
    module = ProxylessModule(FourOps(), arch_learning_rate=0.05, resource_weight=resource_weight,
                             example_input_shape=(4, 6, 6))
    with torch.no_grad():
        for alpha in module.arch.alpha.values():
            alpha.copy_(torch.randn(alpha.shape))
    record = _RecordArchSteps()
    pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accelerator="cpu", callbacks=[record]).fit(module, _search_data())
    assert len(record.steps) == 4
    moved = 0
    for before, after, sampled in record.steps:
        assert set(sampled) == {"op", "act"}
        for label, picked in sampled.items():
            assert len(picked) == 2
            others = [i for i in range(len(before[label])) if i not in picked]
            torch.testing.assert_close(after[label][others], before[label][others], rtol=1e-5, atol=1e-6)
            moved += not torch.allclose(after[label][picked], before[label][picked], rtol=1e-4, atol=1e-6)
    assert moved >= len(record.steps), "the sampled paths' probabilities move"


def test_costs_are_multiply_adds():
    # a multiply-add is one unit, as the papers' budgets count them (SPOS's 330M, ProxylessNAS's 320M)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_macs(conv, torch.zeros(1, 3, 10, 10)) == 8 * 3 * 3 * 3 * 10 * 10
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=2), torch.nn.Flatten(), torch.nn.Linear(8 * 3 * 3, 7))
    assert count_macs(net, torch.zeros(1, 3, 10, 10)) == 8 * 3 * 5 * 5 * 3 * 3 + 8 * 3 * 3 * 7


class DepthSpace(nn.Module):
    """A searched depth (1, 2, 3) over blocks that each choose a cheap or a costly conv; ``shared``:
    one label for all blocks (a deep-copied block), else one label per block."""

    def __init__(self, shared: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)

        def block(i: int) -> nn.Module:
            return nn.LayerChoice({"k1": nn.Conv2d(4, 4, 1), "k3": nn.Conv2d(4, 4, 3, padding=1)},
                                  label="op" if shared else f"op{i}")

        self.body = nn.Repeat(block(0) if shared else block, (1, 3), label="depth")
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize("shared", [False, True])
def test_expected_cost_ignores_layers_past_the_sampled_depth(shared):
    torch.manual_seed(0)
    module = ProxylessModule(DepthSpace(shared))
    state = module.arch
    with torch.no_grad():
        for alpha in state.alpha.values():
            alpha.copy_(2 * torch.randn(alpha.shape))
    example = torch.zeros(1, 3, 8, 8)
    model = CostModel(module.supernet, state, example)

    # the exact expectation: every architecture's frozen network, weighted by its probability
    labels = state.labels()
    probs = {label: torch.softmax(state.alpha_of(label), -1) for label in labels}
    exact = torch.zeros(())
    for values in itertools.product(*(range(len(state.alpha_values(label))) for label in labels)):
        arch = {label: state.alpha_values(label)[i] for label, i in zip(labels, values)}
        weight = torch.stack([probs[label][i] for label, i in zip(labels, values)]).prod()
        exact = exact + weight * count_macs(supernet.freeze(DepthSpace(shared), arch), example)
    modelled = model.expected()
    torch.testing.assert_close(modelled.double(), exact.double(), rtol=1e-5, atol=1e-3)
    exact_grad = torch.autograd.grad(exact, list(state.alpha.values()))
    modelled_grad = torch.autograd.grad(modelled, list(state.alpha.values()))
    for got, want in zip(modelled_grad, exact_grad):
        torch.testing.assert_close(got.double(), want.double(), rtol=1e-4, atol=1e-2)
    for arch in ({"depth": 1, "op0": "k3", "op1": "k3", "op2": "k3", "op": "k3"},
                 {"depth": 2, "op0": "k1", "op1": "k3", "op2": "k3", "op": "k1"}):
        arch = {label: arch[label] for label in labels}
        assert model.cost(arch) == count_macs(supernet.freeze(DepthSpace(shared), arch), example)
