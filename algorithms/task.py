"""The task a search optimises: a loss, a metric and the metric's direction.

Every algorithm trains the supernet's weights (and DARTS / GDAS / ProxylessNAS their
architecture parameters) on ``task.loss``, logs ``train/<metric_name>`` and
``val/<metric_name>``, and ranks architectures with ``task.evaluate`` (ENAS's reward and
best-of-N export, SPOS's evolution fitness), turned into a "higher is better" number by
``task.fitness``: the value itself, or its negative when lower is better (an error, a
distance).

``ClassificationTask`` is the default and does what the algorithms always did: cross-entropy,
``train/acc`` with torchmetrics' ``MulticlassAccuracy``, and architectures ranked by the share
of correct predictions (correct / total, the authors' accuracy). ``RegressionTask`` is
mean squared error with a lower-is-better metric; ``Task`` takes any loss and torchmetrics
metric.

A task is stored in hyperparameters and checkpoints as ``describe()``'s plain dict (checkpoints
are read with ``weights_only=True``), which is also what a resume compares.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

__all__ = ["LOSSES", "METRICS", "ClassificationTask", "RegressionTask", "Task", "resolve_task"]

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": F.cross_entropy, "mse": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss,
    "huber": F.huber_loss}
METRICS: dict[str, Callable[[], Metric]] = {
    "mse": MeanSquaredError, "rmse": functools.partial(MeanSquaredError, squared=False), "mae": MeanAbsoluteError,
    "r2": R2Score}


def _name(value: Any) -> str:
    """A stable plain name for a loss or metric given as an object: its module and qualified name."""
    if isinstance(value, str):
        return value
    if isinstance(value, functools.partial):
        args = ", ".join([*map(repr, value.args), *(f"{k}={v!r}" for k, v in sorted(value.keywords.items()))])
        return f"{_name(value.func)}({args})"
    target = value if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__") else type(value)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__name__)}"


class Task:
    """A loss, a torchmetrics metric and its direction.

    Args:
        loss: a name in ``LOSSES`` or any callable ``loss(output, target) -> scalar tensor``
            (e.g. ``torch.nn.L1Loss()``).
        metric: a name in ``METRICS``, or a torchmetrics ``Metric`` class or zero-argument factory.
        higher_is_better: the metric's direction; ``None`` takes the metric's own
            ``higher_is_better`` (torchmetrics declares it for its metrics). Giving the opposite
            of what the metric declares is an error.
        metric_name: the name in logged keys (``train/<metric_name>``); default: the metric's
            name in ``METRICS``, or its class name in lower case.
        score_name: the name of the ranking score in summaries (SPOS's top-k table, ENAS's
            ``controller/<score_name>``, plots); default: ``metric_name``.
        extra_metrics: more metrics to log, ``{name: metric}`` (names or factories as ``metric``),
            logged as ``<stage>/<name>``; they do not rank architectures.
    """

    name = "custom"

    def __init__(self, loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 metric: str | Callable[[], Metric], *, higher_is_better: bool | None = None,
                 metric_name: str | None = None, score_name: str | None = None,
                 extra_metrics: Mapping[str, str | Callable[[], Metric]] | None = None) -> None:
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise ValueError(f"loss={loss!r} is not a known loss; known: {', '.join(LOSSES)} (or give a callable "
                                 "loss(output, target))")
            self.loss_fn = LOSSES[loss]
        elif callable(loss):
            self.loss_fn = loss
        else:
            raise ValueError(f"loss must be a loss name ({', '.join(LOSSES)}) or a callable loss(output, target), "
                             f"got {loss!r}")
        factory, sample = _metric_factory(metric)
        declared = getattr(sample, "higher_is_better", None)
        if higher_is_better is not None and not isinstance(higher_is_better, bool):
            raise ValueError(f"higher_is_better must be true or false, got {higher_is_better!r}")
        if higher_is_better is None:
            if declared is None:
                raise ValueError(f"metric {type(sample).__name__} does not say whether higher is better: give "
                                 "higher_is_better=True or False")
            higher_is_better = bool(declared)
        elif declared is not None and bool(declared) != higher_is_better:
            raise ValueError(f"higher_is_better={higher_is_better} contradicts the metric {type(sample).__name__}, "
                             f"for which {'higher' if declared else 'lower'} is better")
        self.loss_name, self.metric_factory = _name(loss), factory
        self.metric_name = metric_name or (metric if isinstance(metric, str) else type(sample).__name__.lower())
        self.score_name = score_name or self.metric_name
        self.higher_is_better = higher_is_better
        self.extra_factories: dict[str, Callable[[], Metric]] = {}
        for name, extra in (extra_metrics or {}).items():
            if name == self.metric_name:
                raise ValueError(f"extra_metrics: {name!r} is the name of the main metric; give it another")
            try:
                self.extra_factories[str(name)] = _metric_factory(extra)[0]
            except ValueError as error:
                raise ValueError(f"extra_metrics[{name!r}]: {error}") from None

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of ``output`` against ``target`` (a scalar)."""
        loss = self.loss_fn(output, target)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else \
                f"a {type(loss).__name__}"
            raise ValueError(f"the loss {self.loss_name} returned {got}; a loss must be a scalar tensor "
                             "(reduce it, e.g. reduction='mean')")
        return loss

    def metric(self) -> Metric:
        """A fresh metric (logged as ``<stage>/<metric_name>``)."""
        return self.metric_factory()

    def metrics(self) -> dict[str, Metric]:
        """Fresh metrics to log, ``{name: metric}``: the main metric first, then ``extra_metrics``."""
        return {self.metric_name: self.metric(), **{name: make() for name, make in self.extra_factories.items()}}

    @torch.no_grad()
    def evaluate(self, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """The metric over ``(output, target)`` batches together: the score that ranks architectures."""
        metric = None
        for output, target in pairs:
            if metric is None:
                metric = self.metric().to(output.device)
            metric.update(output, target)
        if metric is None:
            raise ValueError("no batches to evaluate the metric on")
        return float(metric.compute())

    def fitness(self, value: float | torch.Tensor) -> Any:
        """``value`` as a "higher is better" number: itself, or its negative when lower is better."""
        return value if self.higher_is_better else -value

    def describe(self) -> dict[str, Any]:
        """The task as plain data: what hyperparameters and checkpoints hold, and what a resume compares."""
        extra = {"extra_metrics": sorted(self.extra_factories)} if self.extra_factories else {}
        return {"name": self.name, "loss": self.loss_name, "metric": self.metric_name,
                "higher_is_better": self.higher_is_better, **extra}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.describe().items())})"


class ClassificationTask(Task):
    """``num_classes``-way classification, as the algorithms always did it: cross-entropy (or ``loss``),
    ``MulticlassAccuracy`` logged as ``acc``, architectures ranked by correct / total."""

    name = "classification"

    def __init__(self, num_classes: int = 10, loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                 = "cross_entropy", extra_metrics: Mapping[str, str | Callable[[], Metric]] | None = None) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        super().__init__(loss, functools.partial(MulticlassAccuracy, num_classes), higher_is_better=True,
                         metric_name="acc", score_name="accuracy", extra_metrics=extra_metrics)

    @torch.no_grad()
    def evaluate(self, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """Correct predictions / total, in exact integer counts (ENAS's reward, SPOS's fitness)."""
        correct = total = 0
        for output, target in pairs:
            correct += int((output.argmax(-1) == target).sum())
            total += target.numel()
        return correct / max(total, 1)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "num_classes": self.num_classes}


class RegressionTask(Task):
    """Regression: mean squared error (or ``loss``), a lower-is-better metric by default (``mse``).
    Output and target must have the same shape (an ``(N, 1)`` output against an ``(N,)`` target would
    broadcast to ``(N, N)`` silently)."""

    name = "regression"

    def __init__(self, loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "mse",
                 metric: str | Callable[[], Metric] = "mse", higher_is_better: bool | None = None,
                 extra_metrics: Mapping[str, str | Callable[[], Metric]] | None = None) -> None:
        super().__init__(loss, metric, higher_is_better=higher_is_better, extra_metrics=extra_metrics)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.shape != target.shape:
            raise ValueError(f"the network's output has shape {tuple(output.shape)} but the targets "
                             f"{tuple(target.shape)}: a regression task needs the same shape")
        return super().loss(output, target)


def _metric_factory(metric: str | Callable[[], Metric]) -> tuple[Callable[[], Metric], Metric]:
    """(factory, one metric it made) for a metric name or factory; anything else is a ValueError."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r} is not a known metric; known: {', '.join(METRICS)} (or give a "
                             "torchmetrics Metric class or factory)")
        factory = METRICS[metric]
    elif callable(metric):
        factory = metric
    else:
        raise ValueError(f"metric must be a metric name ({', '.join(METRICS)}) or a torchmetrics Metric class or "
                         f"factory, got {metric!r}")
    sample = factory()
    if not isinstance(sample, Metric):
        raise ValueError(f"metric={_name(metric)} made a {type(sample).__name__}, not a torchmetrics Metric")
    return factory, sample


def resolve_task(task: Task | None, num_classes: int | None) -> Task:
    """The task an algorithm uses: ``task``, or ``ClassificationTask(num_classes)`` (10 classes by default).
    ``num_classes`` with a task that is not a classification of that many classes is an error."""
    if task is None:
        return ClassificationTask(10 if num_classes is None else num_classes)
    if not isinstance(task, Task):
        raise ValueError(f"task must be a Task (ClassificationTask, RegressionTask, Task), got {task!r}")
    if num_classes is not None and getattr(task, "num_classes", None) != num_classes:
        raise ValueError(f"num_classes={num_classes!r} contradicts task={task!r}: give num_classes only for "
                         "a classification of that many classes (or leave it out)")
    return task
