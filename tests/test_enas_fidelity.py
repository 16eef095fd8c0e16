"""ENAS as its authors' code does it (Pham et al. 2018; melodyguan/enas, src/cifar10/*_controller.py, main.py).

Each test computes the authors' quantity by hand (autograd for the gradients) and compares numbers.
"""

from __future__ import annotations

import copy
import warnings
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset

import supernet.nn as nn
from algorithms import EnasModule
from algorithms.enas import EnasController
from supernet.primitives.base import Choice

warnings.filterwarnings("ignore", ".*does not have many workers.*")


class SkipSpace(nn.Module):
    """A categorical decision and an any-subset input choice (a macro-search skip decision)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(6, 8)
        self.op = nn.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh(), "id": nn.Identity()}, label="op")
        self.skip = nn.InputChoice(2, None, label="skip")
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        a = self.stem(x)
        b = self.op(a)
        s = self.skip([a, b])
        return self.head(self.bn(b if s is None else b + s))


def _search_loader(n: int = 64, batch_size: int = 8) -> CombinedLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 6, generator=g), torch.randint(0, 4, (n,), generator=g)
    half = n // 2
    return CombinedLoader({"train": DataLoader(TensorDataset(x[:half], y[:half]), batch_size=batch_size),
                           "val": DataLoader(TensorDataset(x[half:], y[half:]), batch_size=batch_size)},
                          "max_size_cycle")


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0, **kwargs)


class _RecordControllerSteps(pl.Callback):
    """The controller's gradient each time its optimizer steps."""

    def __init__(self) -> None:
        self.applied: list[list[torch.Tensor | None]] = []

    def on_train_start(self, trainer, module) -> None:
        def record(optimizer, args, kwargs):
            self.applied.append([None if p.grad is None else p.grad.detach().clone()
                                 for p in module.controller.parameters()])
        trainer.optimizers[1].register_step_pre_hook(record)


def _record_samples(module: EnasModule) -> list[dict]:
    """Each controller draw made with gradients on (the REINFORCE samples): generator state and arch."""
    samples: list[dict] = []
    forward = module.controller.forward

    def recording(generator=None, greedy=False):
        state = generator.get_state()
        out = forward(generator, greedy)
        if torch.is_grad_enabled():
            samples.append({"state": state, "arch": out[0]})
        return out
    module.controller.forward = recording
    return samples


def _record_accuracies(module: EnasModule) -> list[float]:
    accuracies: list[float] = []
    accuracy = module.validation_score

    def recording(*args, **kwargs):
        value = accuracy(*args, **kwargs)
        accuracies.append(float(value))
        return value
    module.validation_score = recording
    return accuracies


def test_enas_controller_steps_once_per_aggregate_of_M_samples():
    torch.manual_seed(0)
    module = EnasModule(SkipSpace(), num_classes=4, controller_aggregate=3, export_samples=1, export_batches=1)
    samples = _record_samples(module)
    steps = _RecordControllerSteps()
    _trainer(max_epochs=1, limit_train_batches=7, callbacks=[steps]).fit(module, train_dataloaders=_search_loader(128))
    assert len(samples) == 7, "one REINFORCE sample per training step"
    assert len(steps.applied) == 2, "7 samples with M=3: two controller updates, the third aggregate is incomplete"


def test_enas_controller_gradient_is_the_mean_of_M_reinforce_gradients_with_entropy_in_the_reward():
    torch.manual_seed(0)
    m, decay, entropy_weight, skip_weight = 6, 0.5, 0.05, 0.8  # 4 steps an epoch: the aggregate spans a validation
    module = EnasModule(SkipSpace(), num_classes=4, controller_aggregate=m, baseline_decay=decay,
                        entropy_weight=entropy_weight, skip_weight=skip_weight, export_samples=1, export_batches=1)
    reference = copy.deepcopy(module.controller)
    samples, accuracies = _record_samples(module), _record_accuracies(module)
    steps = _RecordControllerSteps()
    val = DataLoader(TensorDataset(torch.randn(16, 6), torch.randint(0, 4, (16,))), batch_size=8)
    _trainer(max_epochs=2, callbacks=[steps]).fit(module, train_dataloaders=_search_loader(), val_dataloaders=val)
    assert len(steps.applied) == 1

    # by hand (micro_controller.py build_trainer): reward = acc + w * entropy (no gradient through the
    # entropy), the baseline moves towards the reward before the advantage is taken, loss = -log p * advantage
    # + skip_weight * skip penalty; the aggregate's gradients are averaged (SyncReplicasOptimizer).
    loss = torch.zeros(())
    baseline = None
    for sample, accuracy in zip(samples[:m], accuracies[:m]):
        arch, log_prob, entropy, skip = reference(torch.Generator().set_state(sample["state"]))
        assert arch == sample["arch"]
        reward = accuracy + entropy_weight * float(entropy)
        baseline = reward if baseline is None else baseline
        baseline = decay * baseline + (1 - decay) * reward
        loss = loss + (-(reward - baseline) * log_prob + skip_weight * skip) / m
    expected = torch.autograd.grad(loss, list(reference.parameters()), allow_unused=True)
    for got, want in zip(steps.applied[0], expected, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_enas_skip_penalty_is_kl_summed_per_layer_averaged_over_layers():
    # general_controller.py: kl = reduce_sum(skip_prob * log(skip_prob / skip_targets)) per layer,
    # skip_penaltys = reduce_mean over the layers
    choices = [Choice("skip1", "input_choice", [], n_candidates=1, n_chosen=None),
               Choice("op", "layer_choice", ["a", "b", "c"]),
               Choice("skip2", "input_choice", [], n_candidates=3, n_chosen=None)]
    torch.manual_seed(0)
    target = 0.4
    controller = EnasController(choices, hidden=8, skip_target=target)
    raw = []
    hooks = [head.register_forward_hook(lambda _m, _i, out: raw.append(out[0].detach())) for head in controller.heads]
    *_, penalty = controller(torch.Generator().manual_seed(0))
    for hook in hooks:
        hook.remove()
    per_layer = []
    for choice, out in zip(choices, raw):
        if choice.kind != "input_choice":
            continue
        p = torch.sigmoid(controller.tanh_constant * torch.tanh(out / controller.temperature))
        per_layer.append((p * (p / target).log() + (1 - p) * ((1 - p) / (1 - target)).log()).sum())
    assert len(per_layer) == 2
    assert float(penalty) == pytest.approx(float(sum(per_layer) / 2), rel=1e-5)


@nn.basic_unit
class _Normed(torch.nn.Module):
    """Logits [-x0, x0] through BatchNorm: right only with the batch's statistics (its running mean is off)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(2)
        self.bn.running_mean.copy_(torch.tensor([-5.0, 5.0]))

    def forward(self, x):
        return self.bn(torch.stack([-x[:, 0], x[:, 0]], 1))


@nn.basic_unit
class _Plain(torch.nn.Module):
    """Logits [-(x0 + x1), x0 + x1]: right on 3/4 of the inputs whatever the mode."""

    def forward(self, x):
        s = x[:, 0] + x[:, 1]
        return torch.stack([-s, s], 1)


class BatchNormSpace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.op = nn.LayerChoice({"normed": _Normed(), "plain": _Plain()}, label="op")

    def forward(self, x):
        return self.op(x)


def test_enas_export_scores_candidates_with_batchnorm_in_training_mode():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(192, 2, generator=g)
    y = (x[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=64)
    batches = list(loader)
    # by hand: each candidate's accuracy with batch statistics (training mode), and with running ones (eval)
    train_mode = {"normed": sum(float(((b[:, 0] > b[:, 0].mean()).long() == t).float().mean()) for b, t in batches),
                  "plain": sum(float(((b[:, 0] + b[:, 1] > 0).long() == t).float().mean()) for b, t in batches)}
    eval_mode = {"normed": sum(float(((b[:, 0] > 5).long() == t).float().mean()) for b, t in batches),
                 "plain": train_mode["plain"]}
    assert max(train_mode, key=train_mode.get) == "normed" and max(eval_mode, key=eval_mode.get) == "plain"

    module = EnasModule(BatchNormSpace(), num_classes=2, export_samples=20, export_batches=3)
    module._trainer = SimpleNamespace(train_dataloader={"train": loader, "val": loader})
    module.on_train_end()
    assert module.export() == {"op": "normed"}
    bn = next(m for m in module.supernet.modules() if isinstance(m, torch.nn.BatchNorm1d))
    torch.testing.assert_close(bn.running_mean, torch.tensor([-5.0, 5.0]))
    assert int(bn.num_batches_tracked) == 0, "scoring leaves the supernet's BatchNorm statistics as they were"


def test_enas_resumes_mid_aggregate_as_an_uninterrupted_run(tmp_path):
    search = _search_loader()  # 4 steps per epoch: the aggregate of 3 spans the epoch boundary

    torch.manual_seed(0)
    straight = EnasModule(SkipSpace(), num_classes=4, controller_aggregate=3, export_samples=2, export_batches=1)
    _trainer(max_epochs=2, deterministic=True).fit(straight, train_dataloaders=search)

    class StopAfterFirstEpoch(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            trainer.should_stop = True

    torch.manual_seed(0)
    first = EnasModule(SkipSpace(), num_classes=4, controller_aggregate=3, export_samples=2, export_batches=1)
    pl.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
               deterministic=True, callbacks=[pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True),
                                              StopAfterFirstEpoch()]).fit(first, train_dataloaders=search)
    torch.manual_seed(123)
    resumed = EnasModule(SkipSpace(), num_classes=4, controller_aggregate=3, export_samples=2, export_batches=1)
    _trainer(max_epochs=2, deterministic=True).fit(resumed, train_dataloaders=search,
                                                   ckpt_path=tmp_path / "last.ckpt")
    expected, got = straight.state_dict(), resumed.state_dict()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], msg=f"{key} differs after resuming")


def test_enas_controller_weights_start_uniform_in_a_tenth():
    # paper §3.2 and the authors' controllers (tf.random_uniform_initializer(-0.1, 0.1)): every weight U(-0.1, 0.1)
    torch.manual_seed(0)
    module = EnasModule(SkipSpace(), num_classes=4)
    weights = torch.cat([p.detach().flatten() for p in module.controller.parameters()])
    assert float(weights.abs().max()) <= 0.1
    assert float(weights.std()) == pytest.approx(0.2 / 12 ** 0.5, rel=0.05), "the spread of U(-0.1, 0.1)"
