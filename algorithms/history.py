"""A callback that records how a search evolves, epoch by epoch, for the run's pictures."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

__all__ = ["SearchHistory"]


class SearchHistory(pl.Callback):
    """Per epoch: the softmax of every architecture parameter, and the controller's reward
    and baseline when there is one."""

    def __init__(self) -> None:
        self.arch_weights: list[dict[str, list[float]]] = []
        self.scalars: dict[str, list[float]] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        state = getattr(module, "arch", None)
        if state is not None and len(state.alpha):
            self.arch_weights.append({label: torch.softmax(state.alpha_of(label).detach().float().cpu(), -1).tolist()
                                      for label in state.labels()})
        for name in ("controller/reward_epoch", "controller/baseline_epoch", "train/acc", "val/acc"):
            value = trainer.callback_metrics.get(name)
            if value is not None:
                self.scalars.setdefault(name.replace("_epoch", ""), []).append(float(value))

    def state_dict(self) -> dict[str, Any]:
        return {"arch_weights": self.arch_weights, "scalars": self.scalars}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.arch_weights = state_dict.get("arch_weights", [])
        self.scalars = state_dict.get("scalars", {})
