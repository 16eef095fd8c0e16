"""A callback that records how a search evolves, step by step, for the run's pictures and TensorBoard."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

__all__ = ["SearchHistory", "candidate_names", "tensorboard_writer"]

# the controller's per-step values (ENAS), as logged with on_step=True
STEP_SCALARS = ("controller/reward", "controller/baseline", "controller/entropy", "controller/accuracy")


def candidate_names(module: pl.LightningModule) -> dict[str, list[str]]:
    """What each entry of every architecture parameter stands for: the decision's options, or, for a
    DARTS cell edge (``{cell}/edge_{i}_{j}``, not a decision of the space), the cell's operators and
    the implicit zero operator ``none`` (the paper's name)."""
    from supernet.oneshot.cell import DifferentiableCell

    state = module.arch
    names = {label: [str(v) for v in state.alpha_values(label)] for label in state.labels() if label in state.space}
    for cell in module.supernet.modules():
        if isinstance(cell, DifferentiableCell):
            for node in range(cell.num_predecessors, cell.num_predecessors + cell.num_nodes):
                for j in range(node):
                    names[cell._edge_label(node, j)] = [*cell.op_names, "none"]
    return {label: names.get(label, [str(i) for i in range(state.alpha_of(label).numel())])
            for label in state.labels()}


def tensorboard_writer(trainer: pl.Trainer) -> Any:
    """The SummaryWriter of the trainer's TensorBoard logger, or None when it has none."""
    from pytorch_lightning.loggers import TensorBoardLogger

    logger = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
    return None if logger is None else logger.experiment


class SearchHistory(pl.Callback):
    """After every training step: the softmax of every architecture parameter (``arch_weights``,
    one row per entry of ``steps``) and the controller's per-step values (``scalars``: name ->
    ``[step, value]`` pairs). A step is a training batch, counted over the whole run.

    At most ``max_rows`` rows are kept: past that, every other row is dropped and only every
    second step is recorded from then on (the stride doubles), so a long search keeps a
    bounded, evenly spaced history. ``names`` holds each label's candidate names.

    With a TensorBoard logger, every ``trainer.log_every_n_steps``-th step also goes to TensorBoard
    as ``arch_weights/{label}/{candidate}`` and ``arch/mean_entropy`` scalars, at Lightning's
    ``global_step`` (the x axis of the other logged metrics).
    """

    def __init__(self, max_rows: int = 2000) -> None:
        if not isinstance(max_rows, int) or max_rows < 2:
            raise ValueError(f"max_rows must be a whole number >= 2, got {max_rows!r}")
        self.max_rows = max_rows
        self.stride = 1
        self.steps: list[int] = []
        self.arch_weights: list[dict[str, list[float]]] = []
        self.scalars: dict[str, list[list[float]]] = {}
        self.names: dict[str, list[str]] = {}

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        state = getattr(module, "arch", None)
        if state is not None and len(state.alpha):
            self.names = candidate_names(module)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.fit_loop.epoch_loop.total_batch_idx + 1
        if step % self.stride:
            return
        state = getattr(module, "arch", None)
        row = None
        if state is not None and len(state.alpha):
            row = {label: torch.softmax(state.alpha_of(label).detach().float().cpu(), -1).tolist()
                   for label in state.labels()}
            self.steps.append(step)
            self.arch_weights.append(row)
        for name in STEP_SCALARS:
            value = trainer.callback_metrics.get(f"{name}_step")
            if value is not None:
                self.scalars.setdefault(name, []).append([step, float(value)])
        if len(self.steps) > self.max_rows or any(len(v) > self.max_rows for v in self.scalars.values()):
            self._thin()
        if row is not None and step % max(1, trainer.log_every_n_steps) == 0:
            self._to_tensorboard(trainer, row)

    def _thin(self) -> None:
        self.stride *= 2
        kept = [i for i, step in enumerate(self.steps) if step % self.stride == 0]
        self.steps = [self.steps[i] for i in kept]
        self.arch_weights = [self.arch_weights[i] for i in kept]
        self.scalars = {name: [row for row in rows if row[0] % self.stride == 0] for name, rows in self.scalars.items()}

    def _to_tensorboard(self, trainer: pl.Trainer, row: dict[str, list[float]]) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None:
            return
        for label, probs in row.items():
            names = self.names.get(label, [])
            for i, p in enumerate(probs):
                writer.add_scalar(f"arch_weights/{label}/{names[i] if i < len(names) else i}", p, trainer.global_step)
        writer.add_scalar("arch/mean_entropy", mean_entropy(row), trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "arch_weights": self.arch_weights, "scalars": self.scalars,
                "names": self.names, "stride": self.stride}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "steps" not in state_dict:  # a checkpoint of the per-epoch history that came before: start afresh
            return
        self.steps = state_dict.get("steps", [])
        self.arch_weights = state_dict.get("arch_weights", [])
        self.scalars = state_dict.get("scalars", {})
        self.names = state_dict.get("names", {})
        self.stride = state_dict.get("stride", 1)


def mean_entropy(row: dict[str, list[float]]) -> float:
    """Mean over labels of the entropy (nats) of each label's distribution: how undecided the search is."""
    entropies = [-sum(p * math.log(p) for p in probs if p > 0) for probs in row.values()]
    return sum(entropies) / max(1, len(entropies))
