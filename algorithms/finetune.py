"""Training a fixed (exported) network: the fine-tune / retrain step after a search."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from algorithms.base import check_positive
from algorithms.task import Task, resolve_task

__all__ = ["FixedNetModule"]


class FixedNetModule(pl.LightningModule):
    """Train and test a plain network on a task (``algorithms.task``; default
    ``ClassificationTask(num_classes)``, 10 classes): SGD with momentum and a cosine schedule, an
    optional auxiliary-head loss, and drop-path annealed linearly when the network supports it.
    Logs ``<stage>/loss`` and ``<stage>/<metric>`` (``acc`` for classification)."""

    def __init__(self, net: nn.Module, *, task: Task | None = None, num_classes: int | None = None,
                 learning_rate: float = 0.025, momentum: float = 0.9, weight_decay: float = 3e-4,
                 auxiliary_weight: float = 0.4, drop_path_prob: float = 0.0, gradient_clip: float = 5.0) -> None:
        super().__init__()
        check_positive(learning_rate=learning_rate)
        self.task = resolve_task(task, num_classes)
        self.save_hyperparameters(ignore=["net", "task"])
        self.hparams["task"] = self._hparams_initial["task"] = self.task.describe()  # plain data, as checkpoints
        self.net = net
        self.metrics = nn.ModuleDict({f"{stage}_metrics": nn.ModuleDict(self.task.metrics())
                                      for stage in ("train", "val", "test")})
        self.losses = nn.ModuleDict({f"{stage}_loss": MeanMetric() for stage in ("train", "val", "test")})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, tuple) else out

    def on_train_epoch_start(self) -> None:
        setter = getattr(self.net, "set_drop_path_prob", None)
        if callable(setter) and self.hparams.drop_path_prob > 0:
            epochs = max(1, self.trainer.max_epochs or 1)
            setter(self.hparams.drop_path_prob * self.current_epoch / epochs)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch[0], batch[1]
        out = self.net(x)
        if isinstance(out, tuple):
            logits, aux = out[0], out[1]
            loss = self.task.loss(logits, y) + self.hparams.auxiliary_weight * self.task.loss(aux, y)
        else:
            logits, loss = out, self.task.loss(out, y)
        self.losses[f"{stage}_loss"](loss.detach())
        self.log(f"{stage}/loss", self.losses[f"{stage}_loss"], prog_bar=stage == "train", on_epoch=True,
                 on_step=stage == "train")
        for name, metric in self.metrics[f"{stage}_metrics"].items():
            metric(logits.detach(), y)
            self.log(f"{stage}/{name}", metric, prog_bar=name == self.task.metric_name, on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.SGD(self.net.parameters(), lr=hp.learning_rate, momentum=hp.momentum,
                                    weight_decay=hp.weight_decay)
        epochs = max(1, self.trainer.max_epochs or 1)
        return [optimizer], [torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)]

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Any = None) -> None:
        if self.hparams.gradient_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip,
                                gradient_clip_algorithm="norm")
