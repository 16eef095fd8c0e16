"""Issue 16 §3, search on your own task: the algorithms train, rank and fine-tune with the task's loss and
metric in its direction. Each test compares with a hand computation (autograd of the user's loss, the
metric over every candidate, the reward's sign)."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F  # noqa: N812
from hydra import compose, initialize_config_dir
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric

import supernet
import supernet.nn as nn
from algorithms import DartsModule, EnasModule, ProxylessModule, SposModule
from algorithms.finetune import FixedNetModule
from algorithms.task import ClassificationTask, RegressionTask, Task
from algorithms.tasks import UserError, _check_same_hyperparameters, build_algorithm, build_space, run
from datamodules import RegressionDataModule
from datamodules.regression import generate_regression
from hub.mlp import MLPSpace

warnings.filterwarnings("ignore", ".*does not have many workers.*")
ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = {"darts": DartsModule, "enas": EnasModule, "proxyless": ProxylessModule, "spos": SposModule}
SMALL = {"spos": {"population": 4, "generations": 1, "topk": 2, "bn_calibration_batches": 1, "eval_batches": 2},
         "enas": {"controller_aggregate": 1, "export_samples": 3, "export_batches": 2}}


class ActSpace(nn.Module):
    """One decision, three candidates: small enough to score every architecture by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.act = nn.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh(), "identity": nn.Identity()}, label="act")
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.act(self.stem(x)))


def _search_loader(n: int = 64, batch_size: int = 16) -> CombinedLoader:
    x, y = generate_regression(n, seed=3, num_features=4)
    half = n // 2
    return CombinedLoader({"train": DataLoader(TensorDataset(x[:half], y[:half]), batch_size=batch_size),
                           "val": DataLoader(TensorDataset(x[half:], y[half:]), batch_size=batch_size)},
                          "max_size_cycle")


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", num_sanity_val_steps=0, **kwargs)


class _RecordSteps:
    """Each optimizer class's gradients (cloned) at every step, before it moves the parameters."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.grads: dict[str, list[list[torch.Tensor | None]]] = {"SGD": [], "Adam": []}
        for name in self.grads:
            base = getattr(torch.optim, name)
            record = self.grads[name]

            def step(self, closure=None, _base=base, _record=record):
                _record.append([None if p.grad is None else p.grad.detach().clone()
                                for group in self.param_groups for p in group["params"]])
                return _base.step(self, closure)
            monkeypatch.setattr(torch.optim, name, type(name, (base,), {"step": step}))


class _LoggedAt(pl.Callback):
    """``trainer.callback_metrics`` after each training batch."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})


# -- the task object ------------------------------------------------------------------------------------
def test_default_task_is_todays_classification_with_the_same_logged_names():
    module = DartsModule(ActSpaceClassifier(), num_classes=3)
    assert isinstance(module.task, ClassificationTask) and module.task.num_classes == 3
    assert module.hparams.task == {"name": "classification", "loss": "cross_entropy", "metric": "acc",
                                   "higher_is_better": True, "num_classes": 3}
    logged = _LoggedAt()
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    loader = CombinedLoader({"train": DataLoader(TensorDataset(x[:16], y[:16]), batch_size=8),
                             "val": DataLoader(TensorDataset(x[16:], y[16:]), batch_size=8)}, "max_size_cycle")
    _trainer(max_epochs=1, callbacks=[logged]).fit(module, train_dataloaders=loader,
                                                   val_dataloaders=DataLoader(TensorDataset(x, y), batch_size=8))
    assert {"train/acc", "val/acc", "train/loss_epoch", "val/loss"} <= set(logged.metrics[-1]) | set(
        module.trainer.callback_metrics)


class ActSpaceClassifier(ActSpace):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 3)


def test_classification_score_is_correct_over_total_in_exact_counts():
    task = ClassificationTask(3)
    out = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]])
    pairs = [(out, torch.tensor([0, 1, 0])), (out[:2], torch.tensor([2, 1]))]
    assert task.evaluate(pairs) == 3 / 5
    assert task.fitness(0.6) == 0.6


def test_regression_score_is_the_metric_over_all_batches_and_its_fitness_is_its_negative():
    task = RegressionTask(metric="mae")
    out, target = torch.arange(6.0).view(6, 1), torch.zeros(6, 1)
    assert task.evaluate([(out[:4], target[:4]), (out[4:], target[4:])]) == pytest.approx(15 / 6)
    assert not task.higher_is_better and task.fitness(2.5) == -2.5
    assert RegressionTask(metric="r2").higher_is_better


def test_a_metric_direction_contradicting_the_metric_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^higher_is_better=True contradicts the metric MeanSquaredError, for which "
                                         r"lower is better$"):
        RegressionTask(metric="mse", higher_is_better=True)


def test_a_metric_without_a_declared_direction_needs_one():
    class Spread(Metric):
        def __init__(self) -> None:
            super().__init__()
            self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")

        def update(self, output, target) -> None:
            self.total += (output - target).abs().max()

        def compute(self):
            return self.total

    with pytest.raises(ValueError, match="^metric Spread does not say whether higher is better: give "
                                         "higher_is_better=True or False$"):
        Task("l1", Spread)
    assert Task("l1", Spread, higher_is_better=False).metric_name == "spread"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"loss": "hinge", "metric": "mse"}, r"^loss='hinge' is not a known loss; known: cross_entropy, mse, l1, "),
    ({"loss": 3, "metric": "mse"}, r"^loss must be a loss name .* or a callable loss\(output, target\), got 3$"),
    ({"loss": "mse", "metric": "accuracy"}, r"^metric='accuracy' is not a known metric; known: mse, rmse, mae, r2"),
    ({"loss": "mse", "metric": dict}, r"^metric=builtins.dict made a dict, not a torchmetrics Metric$"),
])
def test_a_bad_loss_or_metric_is_one_error_naming_it_and_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Task(**kwargs)


def test_a_loss_that_is_not_a_scalar_is_one_error_naming_its_shape():
    task = Task(torch.nn.L1Loss(reduction="none"), "mae")
    with pytest.raises(ValueError, match=r"^the loss torch.nn.modules.loss.L1Loss returned a tensor of shape \(4, 1\); "
                                         r"a loss must be a scalar tensor \(reduce it, e.g. reduction='mean'\)$"):
        task.loss(torch.zeros(4, 1), torch.ones(4, 1))


def test_num_classes_contradicting_the_task_is_refused():
    with pytest.raises(ValueError, match=r"^num_classes=10 contradicts task=RegressionTask\("):
        SposModule(ActSpace(), task=RegressionTask(), num_classes=10)


def test_a_regression_output_of_another_shape_than_the_targets_is_refused_not_broadcast():
    with pytest.raises(ValueError, match=r"output has shape \(4, 1\) but the targets \(4,\)"):
        RegressionTask().loss(torch.zeros(4, 1), torch.zeros(4))


# -- the weight step and the architecture step --------------------------------------------------------
def test_weight_step_gradient_and_logged_loss_are_the_users_loss(monkeypatch):
    """SPOS, a user's L1 loss (a torch module): the SGD step's gradient is autograd of L1 on the train half at
    the sampled path, and ``train/loss`` is that L1 value (not MSE)."""
    torch.manual_seed(0)
    module = SposModule(ActSpace(), task=RegressionTask(loss=torch.nn.L1Loss()), gradient_clip=0.0,
                        example_input_shape=(4,), **SMALL["spos"])
    before = copy.deepcopy(module)
    steps, logged = _RecordSteps(monkeypatch), _LoggedAt()
    _trainer(max_steps=1, callbacks=[logged]).fit(module, train_dataloaders=_search_loader())
    x, y = next(iter(_search_loader()))[0]["train"]
    before.arch.set_arch(_first_sampled_arch())
    loss = F.l1_loss(before(x), y)
    expected = torch.autograd.grad(loss, [p for p in before.supernet.parameters()], allow_unused=True)
    seen = steps.grads["SGD"][0]
    for got, want, p in zip(seen, expected, before.supernet.parameters()):
        want = torch.zeros_like(p) if want is None else want
        got = torch.zeros_like(p) if got is None else got
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert logged.metrics[0]["train/loss_step"] == pytest.approx(float(loss), rel=1e-6)
    assert float(loss) != pytest.approx(float(F.mse_loss(before(x), y)), rel=1e-3), "L1 and MSE must differ here"


def _first_sampled_arch() -> dict:
    """The path of SPOS's first training step: the first uniform draw of a fresh generator of the seed."""
    fresh = SposModule(ActSpace(), task=RegressionTask(), example_input_shape=(4,), **SMALL["spos"])
    return fresh.sample_for_training()


def test_darts_architecture_and_weight_steps_are_autograd_of_the_users_loss(monkeypatch):
    """First-order DARTS with an L1 loss: the Adam step's alpha gradient is autograd of L1 on the val half, the
    SGD step's weight gradient autograd of L1 on the train half at the updated alphas; ``arch/loss`` is L1."""
    torch.manual_seed(0)
    module = DartsModule(ActSpace(), task=RegressionTask(loss="l1"), gradient_clip=0.0)
    before = copy.deepcopy(module)
    steps, logged = _RecordSteps(monkeypatch), _LoggedAt()
    _trainer(max_steps=1, callbacks=[logged]).fit(module, train_dataloaders=_search_loader())
    batch = next(iter(_search_loader()))[0]
    (x_train, y_train), (x_val, y_val) = batch["train"], batch["val"]
    alphas = list(before.arch.parameters())
    val_loss = F.l1_loss(before(x_val), y_val)
    for got, want in zip(steps.grads["Adam"][0], torch.autograd.grad(val_loss, alphas)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert logged.metrics[0]["arch/loss"] == pytest.approx(float(val_loss), rel=1e-6)
    with torch.no_grad():
        for a, updated in zip(alphas, module.arch.parameters()):
            a.copy_(updated)
    weights = list(before.supernet.parameters())
    train_loss = F.l1_loss(before(x_train), y_train)
    for got, want in zip(steps.grads["SGD"][0], torch.autograd.grad(train_loss, weights)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_proxyless_architecture_step_uses_the_users_loss():
    """ProxylessNAS's ``arch/loss`` (resource term off) is the task's L1 loss of the two-path network, not MSE."""
    torch.manual_seed(0)
    module = ProxylessModule(ActSpace(), task=RegressionTask(loss="l1"), gradient_clip=0.0)
    state, recorded = module.arch, []
    criterion = module.criterion

    def recording(x, y):
        loss, out = criterion(x, y)
        if state.arch_gradients:
            recorded.append((float(loss), float(F.l1_loss(out, y)), float(F.mse_loss(out, y))))
        return loss, out
    module.criterion = recording
    logged = _LoggedAt()
    _trainer(max_steps=1, callbacks=[logged]).fit(module, train_dataloaders=_search_loader())
    (loss, l1, mse), = recorded
    assert loss == l1 == pytest.approx(logged.metrics[0]["arch/loss"], rel=1e-6) and l1 != pytest.approx(mse)


# -- rewards and fitness in the task's direction ------------------------------------------------------
def test_enas_reward_is_minus_the_mse_and_export_picks_the_lowest_mse():
    torch.manual_seed(0)
    module = EnasModule(ActSpace(), task=RegressionTask(), entropy_weight=0.0, controller_aggregate=1,
                        export_samples=6, export_batches=2)
    scores: list[tuple[float, float]] = []
    score = module.validation_score

    def recording(x, y):
        by_hand = float(F.mse_loss(module(x), y))
        value = score(x, y)
        scores.append((value, by_hand))
        return value
    module.validation_score = recording
    logged = _LoggedAt()
    _trainer(max_steps=1, callbacks=[logged]).fit(module, train_dataloaders=_search_loader())
    (value, by_hand), = scores
    assert value == pytest.approx(by_hand, rel=1e-6) and by_hand > 0
    assert logged.metrics[0]["controller/reward_step"] == pytest.approx(-by_hand, rel=1e-6)
    assert logged.metrics[0]["controller/mse_step"] == pytest.approx(by_hand, rel=1e-6)
    # export: every sample's MSE over the export batches by hand; the one kept is the lowest
    batches = [b["val"] for b, *_ in list(_search_loader())[:2]]
    evaluated: list[tuple[dict, float]] = []
    evaluate = module.task.evaluate

    def record_export(pairs):
        value = evaluate(pairs)
        evaluated.append((dict(module.arch.arch), value))
        return value
    module.task.evaluate = record_export
    module.on_train_end()
    assert len(evaluated) == 6
    for arch, value in evaluated:
        probe = copy.deepcopy(module)
        probe.arch.set_arch(arch)
        probe.supernet.train()
        with torch.no_grad():
            hand = sum(float(((probe(x) - y) ** 2).sum()) for x, y in batches) / sum(y.numel() for _, y in batches)
        assert value == pytest.approx(hand, rel=1e-5)
    assert module.best_arch == min(evaluated, key=lambda e: e[1])[0]


@pytest.mark.parametrize("metric", ["mae", "r2"])
def test_spos_evolution_picks_the_best_candidate_in_the_metrics_direction(metric):
    """Three candidates, all scored: the top-k table is every candidate's metric computed by hand, ordered
    lowest first for MAE (lower is better) and highest first for R2 (higher is better)."""
    torch.manual_seed(0)
    module = SposModule(ActSpace(), task=RegressionTask(metric=metric), population=3, generations=1, topk=3,
                        bn_calibration_batches=1, eval_batches=2, max_sampling_tries=20, example_input_shape=(4,))
    _trainer(max_epochs=2).fit(module, train_dataloaders=_search_loader())
    batches = [b["val"] for b, *_ in list(_search_loader())[:2]]
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    hand = {}
    for act in ("relu", "tanh", "identity"):
        module.arch.set_arch({"act": act})
        with torch.no_grad():
            out = module(x)
        if metric == "mae":
            hand[act] = float((out - y).abs().mean())
        else:
            hand[act] = float(1 - ((out - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    assert [r["arch"]["act"] for r in module.topk] == sorted(hand, key=hand.get, reverse=metric == "r2")
    for row in module.topk:
        assert row[metric] == pytest.approx(hand[row["arch"]["act"]], rel=1e-5)
    assert module.export() == {"act": module.topk[0]["arch"]["act"]}
    assert module.history[-1][f"best_{metric}"] == module.topk[0][metric]


def test_extra_metrics_are_logged_next_to_the_ranking_metric():
    """``extra_metrics`` are logged (``val/mae`` next to ``val/mse``) with the values computed by hand; ranking stays
    on the main metric."""
    torch.manual_seed(0)
    task = RegressionTask(extra_metrics={"mae": "mae", "max_error": lambda: _MaxError()})
    assert task.describe()["extra_metrics"] == ["mae", "max_error"]
    module = SposModule(ActSpace(), task=task, example_input_shape=(4,), **SMALL["spos"])
    x, y = generate_regression(24, seed=4, num_features=4)
    trainer = _trainer(max_epochs=1)
    trainer.validate(module, DataLoader(TensorDataset(x, y), batch_size=8), verbose=False)
    with torch.no_grad():
        out = module(x)
    logged = trainer.callback_metrics
    assert float(logged["val/mse"]) == pytest.approx(float(F.mse_loss(out, y)), rel=1e-5)
    assert float(logged["val/mae"]) == pytest.approx(float((out - y).abs().mean()), rel=1e-5)
    assert float(logged["val/max_error"]) == pytest.approx(float((out - y).abs().max()), rel=1e-6)


class _MaxError(Metric):
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("value", torch.zeros(()), dist_reduce_fx="max")

    def update(self, output, target) -> None:
        self.value = torch.maximum(self.value, (output - target).abs().max())

    def compute(self):
        return self.value


def test_an_extra_metric_with_the_main_metrics_name_or_not_a_metric_is_refused():
    with pytest.raises(ValueError, match=r"^extra_metrics: 'mse' is the name of the main metric; give it another$"):
        RegressionTask(extra_metrics={"mse": "mae"})
    with pytest.raises(ValueError, match=r"^extra_metrics\['bad'\]: metric='nope' is not a known metric; known: "):
        RegressionTask(extra_metrics={"bad": "nope"})


# -- fine-tuning ---------------------------------------------------------------------------------------------
def test_finetuning_tests_with_the_tasks_metric():
    torch.manual_seed(0)
    space = MLPSpace(in_features=8, widths=(8,), depth=(1, 1))
    net = supernet.freeze(space, supernet.sample(space, seed=0))
    module = FixedNetModule(net, task=RegressionTask(metric="mae", extra_metrics={"mse": "mse"}))
    data = RegressionDataModule(num_train=64, num_test=40, batch_size=16)
    trainer = _trainer(max_epochs=1)
    trainer.fit(module, datamodule=data)
    results = trainer.test(module, datamodule=data, verbose=False)[0]
    x, y = data.test_set.tensors
    net.eval()
    with torch.no_grad():
        assert results["test/mae"] == pytest.approx(float((net(x) - y).abs().mean()), rel=1e-5)
        per_batch = [float(F.mse_loss(net(x[i:i + 16]), y[i:i + 16])) for i in range(0, len(x), 16)]
        assert results["test/mse"] == pytest.approx(float(F.mse_loss(net(x), y)), rel=1e-5)
    assert results["test/loss"] == pytest.approx(sum(per_batch) / len(per_batch), rel=1e-5)  # MeanMetric of batches


# -- the data -------------------------------------------------------------------------------------------------
def test_regression_data_is_a_planted_nonlinear_function_plus_the_stated_noise():
    x, y = generate_regression(4000, seed=5, noise=0.1)
    x0, clean = generate_regression(4000, seed=5, noise=0.0)
    assert torch.equal(x, x0) and torch.equal(x, generate_regression(4000, seed=5)[0])
    assert float((y - clean).std()) == pytest.approx(0.1, rel=0.05)
    assert float(clean.std()) == pytest.approx(1.0, rel=0.1)
    design = torch.cat([x, torch.ones(len(x), 1)], 1)
    linear = torch.linalg.lstsq(design, clean).solution
    assert float(((design @ linear - clean) ** 2).mean()) > 0.05, "a linear model must not fit the planted function"
    assert not torch.equal(y, generate_regression(4000, seed=6)[1])


def test_regression_search_halves_are_disjoint_and_fixed_by_the_seed():
    data = RegressionDataModule(num_train=40, num_test=10, batch_size=8, search=True)
    data.setup()
    a, b = data.halves()
    assert len(a) == len(b) == 20 and not set(a.indices) & set(b.indices)
    again = RegressionDataModule(num_train=40, num_test=10, batch_size=8, search=True)
    again.setup()
    assert torch.equal(again.train_set.tensors[1], data.train_set.tensors[1])
    assert data.train_set.tensors[1].dtype == torch.float32 and data.train_set.tensors[1].shape == (40, 1)


# -- the Python API and train.py, every algorithm --------------------------------------------------------------
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_regression_search_through_the_python_api(name):
    torch.manual_seed(0)
    shape = {"example_input_shape": (8,)} if name in ("spos", "proxyless") else {}
    module = ALGORITHMS[name](MLPSpace(), task=RegressionTask(), **SMALL.get(name, {}), **shape)
    data = RegressionDataModule(num_train=128, num_test=32, batch_size=16, search=True)
    trainer = _trainer(max_epochs=1)
    trainer.fit(module, datamodule=data)
    assert {"train/mse", "val/mse", "val/loss"} <= set(trainer.callback_metrics)
    # the logged val/mse is the metric of what the search would export now, over the architecture half
    assert supernet.search_space(MLPSpace()).validate(module.export()) == module.export()


def _config(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "algorithms" / "configs"), version_base="1.3"):
        return compose("config", overrides=["task=regression", "data=regression", "space=mlp", "trainer=cpu",
                                            "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                                            "trainer.enable_model_summary=false", "data.num_train=128",
                                            "data.num_test=32", "finetune.epochs=1", *overrides])


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_regression_search_through_train_py_config_groups(name, tmp_path):
    small = [f"algorithm.{k}={v}" for k, v in SMALL.get(name, {}).items() if k != "export_batches"]
    summary = run(_config(f"algorithm={name}", "finetune_after=true", *small), tmp_path)
    assert {"train/mse", "val/mse"} <= set(summary) and "test_mse" in summary["finetune"]
    arch = json.loads((tmp_path / "arch.json").read_text())
    assert supernet.search_space(MLPSpace()).validate(arch) == arch
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)  # plain data only
    assert checkpoint["hyper_parameters"]["task"] == {"name": "regression", "loss": "mse", "metric": "mse",
                                                      "higher_is_better": False}
    if name == "spos":
        rows = json.loads((tmp_path / "topk.json").read_text())
        assert [r["mse"] for r in rows] == sorted(r["mse"] for r in rows)


def test_resuming_with_another_task_is_refused_naming_it(tmp_path):
    spos = ["algorithm=spos", *[f"algorithm.{k}={v}" for k, v in SMALL["spos"].items()]]
    run(_config(*spos), tmp_path)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    cfg = _config(*spos, "task.loss=l1")
    with pytest.raises(UserError, match=r"^ckpt was written with other algorithm settings: task \{'name': "
                                        r"'regression', 'loss': 'mse', .*\} -> \{'name': 'regression', 'loss': 'l1', "):
        _check_same_hyperparameters(build_algorithm(cfg, build_space(cfg)), checkpoint, "ckpt")


@pytest.mark.parametrize(("overrides", "message"), [
    (["data=embedded", "space=tiny", f"hydra.searchpath=[file://{ROOT / 'tests' / 'configs'}]"],
     r"^task regression does not fit classification data \(data.num_classes=10\): "),
    (["task=classification"], r"^task classification does not fit data without classes \(no data.num_classes\): "),
    (["task.higher_is_better=true"], r"^task: higher_is_better=True contradicts the metric MeanSquaredError, "),
    (["task.loss=hinge"], r"^task: loss='hinge' is not a known loss; known: "),
])
def test_a_bad_task_config_is_one_user_error(overrides, message, tmp_path):
    with pytest.raises(UserError, match=message):
        run(_config("algorithm=darts", *overrides), tmp_path)


def test_spos_scores_each_network_once_whatever_its_inactive_decisions():
    """In MLPSpace with depth 1-2, ``act1`` is inactive at depth 1: {depth 1, act0 tanh, act1 relu} and
    {depth 1, act0 tanh, act1 tanh} are one network, to be scored once (2 + 2 x 2 = 6 distinct networks)."""
    torch.manual_seed(0)
    space = MLPSpace(in_features=4, widths=(8,), depth=(1, 2), activations=("relu", "tanh"))
    assert supernet.search_space(space).size == 6
    module = SposModule(space, task=RegressionTask(), population=6, generations=2, topk=6, bn_calibration_batches=1,
                        eval_batches=1, max_sampling_tries=50, example_input_shape=(4,))
    _trainer(max_steps=1).fit(module, train_dataloaders=_search_loader())
    ss = module.arch.space
    networks = [json.dumps({k: v for k, v in r["arch"].items() if ss.is_active(k, r["arch"])}, sort_keys=True)
                for r in module.topk]
    assert len(networks) == len(set(networks)) == 6


@pytest.mark.slow
def test_the_readmes_example_runs_and_ranks_lowest_mae_first():
    text = (ROOT / "README.md").read_text()
    start = text.index("```python", text.index("## Search on your own task")) + len("```python")
    code = text[start:text.index("```", start)]
    namespace: dict = {}
    exec(compile(code.replace("pl.Trainer(", "pl.Trainer(logger=False, enable_progress_bar=False, "), "README", "exec"),
         namespace)
    maes = [row["mae"] for row in namespace["module"].topk]
    assert maes == sorted(maes) and namespace["module"].export() == namespace["module"].topk[0]["arch"]
