"""The shared base of every one-shot algorithm: a LightningModule that owns the supernet.

An algorithm converts the search space into a supernet of its family
(``supernet.oneshot.convert``), keeps the architecture state (architecture parameters,
sampled architecture) as a submodule, trains on a task's loss (``algorithms.task``: classification by default) and logs
``train/loss``, ``train/<metric>``, ``val/loss``, ``val/<metric>`` with torchmetrics (``train/acc``
for classification), and exports the architecture dict with ``export()``.

Search batches come from a search data module as ``{"train": (x, y), "val": (x, y)}``:
two disjoint halves of the training data (weights learn on one, the architecture on the
other). A plain ``(x, y)`` batch is split in two halves.

All sampling draws from one ``torch.Generator`` seeded by ``seed``: every DDP rank draws
the same architectures without communicating, and the generator's state is saved in
checkpoints so a resumed search continues exactly.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

import supernet
from algorithms import checkpoints
from algorithms.task import Task, resolve_task
from supernet.oneshot import convert, export_arch

__all__ = ["DivergenceError", "OneShotAlgorithm", "check_positive", "search_batches", "split_batch"]


class DivergenceError(RuntimeError):
    """The loss, a weight or an architecture parameter became NaN or inf: the search cannot go on."""


def check_positive(**values: float) -> None:
    """Raise one ValueError naming the first value that is not a positive number."""
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or math.isinf(value):
            raise ValueError(f"{name} must be a positive number, got {value!r}")


def split_batch(batch: Any) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``(train, val)`` halves of a search batch (a dict of two batches, or one batch split in two)."""
    if isinstance(batch, Mapping):
        return tuple(batch["train"][:2]), tuple(batch["val"][:2])  # type: ignore[return-value]
    x, y = batch[0], batch[1]
    half = max(1, x.shape[0] // 2)
    return (x[:half], y[:half]), (x[half:], y[half:])


def search_batches(loader: Any, device: torch.device | str, count: int) -> list[tuple[tuple, tuple]]:
    """Up to ``count`` ``(train, val)`` batch pairs from a search loader, on ``device``.

    ``loader`` is what ``trainer.train_dataloader`` holds: a dict of two loaders, a
    ``CombinedLoader`` or a plain loader (whose batches are split in two).
    """
    if isinstance(loader, Mapping):
        iterator = ({"train": t, "val": v} for t, v in zip(loader["train"], loader["val"]))
    else:
        iterator = (b[0] if isinstance(b, tuple) and len(b) == 3 and isinstance(b[0], Mapping) else b
                    for b in loader)
    pairs = []
    for batch in iterator:
        train, val = split_batch(batch)
        pairs.append((tuple(t.to(device) for t in train), tuple(t.to(device) for t in val)))
        if len(pairs) >= count:
            break
    return pairs


class OneShotAlgorithm(pl.LightningModule):
    """Base class: ``space`` is converted to a supernet of the subclass's ``family``.

    ``task`` (``algorithms.task.Task``) gives the loss, the metric and its direction;
    without it the task is ``ClassificationTask(num_classes)`` (10 classes by default).
    """

    family = "path_sampling"

    def __init__(self, space: nn.Module, *, task: Task | None = None, num_classes: int | None = None,
                 learning_rate: float = 0.025, momentum: float = 0.9, weight_decay: float = 3e-4,
                 min_learning_rate: float = 0.001, gradient_clip: float = 5.0, seed: int = 0) -> None:
        super().__init__()
        check_positive(learning_rate=learning_rate)
        self.task = resolve_task(task, num_classes)
        if not 0 <= min_learning_rate <= learning_rate:
            raise ValueError(f"min_learning_rate must be in [0, learning_rate={learning_rate}], "
                             f"got {min_learning_rate!r}")
        if weight_decay < 0 or gradient_clip < 0 or not 0 <= momentum < 1:
            raise ValueError(f"weight_decay and gradient_clip must be >= 0 and momentum in [0, 1); got "
                             f"weight_decay={weight_decay!r}, gradient_clip={gradient_clip!r}, momentum={momentum!r}")
        if len(supernet.search_space(space)) == 0:
            raise ValueError(f"the space {type(space).__name__} has no choices: there is nothing to search")
        self.save_hyperparameters(ignore=["space"])
        self._check_hyperparameters()
        self.automatic_optimization = False
        # what checkpoints record to rebuild this module (algorithms.checkpoints); the CLI adds data and task
        self.checkpoint_config: dict[str, Any] = {"space": checkpoints.space_config(space)}
        self.supernet, self.arch = convert(space, self.family)
        self.generator = torch.Generator().manual_seed(seed)
        self.train_metrics = nn.ModuleDict(self.task.metrics())
        self.val_metrics = nn.ModuleDict(self.task.metrics())
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()

    def save_hyperparameters(self, *args: Any, ignore: str | list[str] | None = None, frame: Any = None,
                             logger: bool = True) -> None:
        """Lightning's, with the task kept as its plain ``describe()`` dict: checkpoints hold plain data only,
        and a resume compares the task like any other hyperparameter."""
        ignore = [ignore] if isinstance(ignore, str) else list(ignore or [])
        super().save_hyperparameters(*args, ignore=[*ignore, "task"], frame=frame or inspect.currentframe().f_back,
                                     logger=logger)
        self.hparams["task"] = self._hparams_initial["task"] = self.task.describe()

    def _check_hyperparameters(self) -> None:
        """Refuse what cannot work, for every algorithm at once: NaN anywhere (a comparison with NaN
        is False, so range checks let it through), a fraction where the default is a whole number
        (a count, an epoch), and Adam betas outside [0, 1)."""
        defaults: dict[str, Any] = {}
        for cls in reversed(type(self).__mro__):
            if "__init__" in vars(cls):
                for name, parameter in inspect.signature(cls.__init__).parameters.items():
                    defaults[name] = parameter.default
        for name, value in self.hparams.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            default = defaults.get(name)
            if isinstance(default, int) and not isinstance(default, bool) and (
                    not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            if any(isinstance(v, float) and math.isnan(v) for v in values):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if name.endswith("betas") and not all(isinstance(v, (int, float)) and 0 <= v < 1 for v in values):
                raise ValueError(f"{name} must be in [0, 1), got {list(values)!r}")

    # -- the network ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._run_supernet(x)
        return out[0] if isinstance(out, tuple) else out

    def _run_supernet(self, x: torch.Tensor) -> Any:
        # Under mixed precision a training step is one autocast region, and autocast caches its
        # low-precision copy of each weight for the whole region. One-shot steps update weights
        # in place between forward passes of one step (a weight step, then an architecture step;
        # DARTS's virtual step), so each pass must cast the weights as they are now.
        torch.clear_autocast_cache()
        return self.supernet(x)

    def criterion(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the task's loss, the output); an auxiliary head's output (training mode) adds 0.4 x its loss."""
        out = self._run_supernet(x)
        if isinstance(out, tuple):
            logits, aux = out[0], out[1]
            return self.task.loss(logits, y) + 0.4 * self.task.loss(aux, y), logits
        return self.task.loss(out, y), out

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    # -- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.SGD(self.weight_parameters(), lr=hp.learning_rate, momentum=hp.momentum,
                                    weight_decay=hp.weight_decay)
        epochs = max(1, self.trainer.max_epochs or 1) if self._trainer is not None else 1
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs, eta_min=hp.min_learning_rate)
        extra = self.extra_optimizers()
        return [optimizer, *extra], [scheduler]

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimizers of the architecture (parameters, controller); none by default."""
        return []

    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SGD step of the supernet's weights on the task's loss on (x, y), with gradient clipping;
        logs ``train/loss`` and ``train/<metric>``."""
        optimizer = self.optimizers()
        optimizer = optimizer[0] if isinstance(optimizer, list) else optimizer
        optimizer.zero_grad()
        loss, logits = self.criterion(x, y)
        if not torch.isfinite(loss.detach()):
            raise DivergenceError(f"loss became {_non_finite(loss)} at {self._position()}")
        self.manual_backward(loss)
        if self.hparams.gradient_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip,
                                gradient_clip_algorithm="norm")
        optimizer.step()
        self.train_loss(loss.detach())
        self.log("train/loss", self.train_loss, prog_bar=True, on_step=True, on_epoch=True)
        self._log_metrics("train", self.train_metrics, logits.detach(), y)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.check_finite()

    def check_finite(self) -> None:
        """Raise :class:`DivergenceError` naming the first weight or architecture parameter that is not
        finite. One fused norm over all parameters per step; the names are looked up only on failure."""
        parameters = list(self.parameters())
        norms = torch._foreach_norm(parameters) if parameters else []
        if not norms or bool(torch.isfinite(torch.stack([n.float() for n in norms]).sum())):
            return
        for name, p in self.named_parameters():  # an overflowing norm of finite values raises nothing
            if not bool(torch.isfinite(p).all()):
                kind = "weight" if name.startswith("supernet.") else "architecture parameter"
                raise DivergenceError(f"{kind} {name} became {_non_finite(p)} at {self._position()}")

    def _position(self) -> str:
        """``epoch E, step S``: the training epoch and the training batch counted over the whole run."""
        if self._trainer is None:
            return "epoch 0, step 0"
        return f"epoch {self.trainer.current_epoch}, step {max(0, self.trainer.fit_loop.epoch_loop.total_batch_idx)}"

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    # -- validation: the architecture the search would export now ----------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        logits = self.evaluate(x)
        loss = self.task.loss(logits, y)
        self.val_loss(loss)
        self.log("val/loss", self.val_loss, on_epoch=True)
        self._log_metrics("val", self.val_metrics, logits, y)

    def _log_metrics(self, stage: str, metrics: nn.ModuleDict, output: torch.Tensor, y: torch.Tensor) -> None:
        """Update and log the task's metrics as ``<stage>/<name>`` per epoch (the main one on the progress bar)."""
        for name, metric in metrics.items():
            metric(output, y)
            self.log(f"{stage}/{name}", metric, prog_bar=name == self.task.metric_name, on_step=False, on_epoch=True)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the current best architecture (the supernet as it is, by default)."""
        return self(x)

    # -- export ------------------------------------------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """The searched architecture, ``{label: value}``; JSON-serialisable and ready for ``freeze``."""
        return export_arch(self.supernet, self.arch)

    # -- exact resume ------------------------------------------------------------------------------------
    # Checkpoints hold plain data only (tensors, str, numbers, lists, dicts), so that they load with
    # torch.load(weights_only=True): nothing in them can run code. The search's final result
    # (``best_arch``, and SPOS's ``topk``) is saved too, so that export from the checkpoint gives it.
    RESULT_ATTRIBUTES = ("best_arch", "topk")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        config = {"algorithm": {"_target_": checkpoints.class_path(type(self)), **_plain(dict(self.hparams))}}
        checkpoint["config"] = {**config, **{k: v for k, v in self.checkpoint_config.items() if v is not None}}
        checkpoint["sampler_generator"] = self.generator.get_state()
        checkpoint["sampled_arch"] = _plain(dict(self.arch.arch))
        checkpoint["torch_rng"] = torch.get_rng_state()  # dropout and the like
        for name in self.RESULT_ATTRIBUTES:
            if getattr(self, name, None) is not None:
                checkpoint[name] = _plain(getattr(self, name))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name in self.RESULT_ATTRIBUTES:
            if name in checkpoint and hasattr(self, name):
                setattr(self, name, checkpoint[name])
        if "sampler_generator" in checkpoint:
            self.generator.set_state(checkpoint["sampler_generator"])
        if "sampled_arch" in checkpoint:
            self.arch.set_arch(checkpoint["sampled_arch"])
        if "torch_rng" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng"])

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, space: nn.Module | None = None,
                             strict: bool = True, weights_only: bool | None = None,
                             **hyperparameters: Any) -> OneShotAlgorithm:
        """The algorithm a checkpoint holds, read as plain data (``weights_only=True``) and rebuilt from the
        configuration it records: ``DartsModule.load_from_checkpoint(path)``. A space that the checkpoint
        cannot rebuild (one of your own, unregistered) is given as ``space=``; ``hyperparameters`` replace
        the saved ones. See ``algorithms.checkpoints``."""
        if weights_only is False:
            raise ValueError("weights_only=False is not offered: checkpoints are read as plain data only, so that "
                             "nothing in a file runs code (ours hold nothing else)")
        return checkpoints.load_module(cls, checkpoint_path, space=space, map_location=map_location, strict=strict,
                                       **hyperparameters)

    def sample_uniform(self) -> dict[str, Any]:
        """A uniformly random architecture drawn from the shared generator (same on every rank)."""
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        return supernet.sample(self.arch.space, seed=seed)


def _non_finite(tensor: torch.Tensor) -> str:
    return "NaN" if bool(torch.isnan(tensor).any()) else "inf"


def _plain(value: Any) -> Any:
    """``value`` as JSON-like plain types (tuples become lists, numbers plain int / float)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (str, int, float)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
