"""DARTS: differentiable architecture search (Liu et al., 2019), first and second order, and its
Gumbel-softmax variants: soft (SNAS-style relaxation) or hard straight-through (GDAS), with the
temperature annealed linearly."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from algorithms.base import OneShotAlgorithm, check_positive, split_batch

__all__ = ["DartsModule"]


class DartsModule(OneShotAlgorithm):
    """Bilevel search: architecture weights (Adam) on the ``val`` half, supernet weights (SGD) on
    the ``train`` half. Defaults are the paper's.

    ``order=2`` uses the unrolled architecture gradient with the finite-difference
    Hessian-vector product. ``gumbel=True`` mixes with a Gumbel-softmax sample of the
    architecture distribution, drawn anew each step: soft weights (the SNAS relaxation,
    Xie et al. 2019), or with ``gumbel_hard=True`` GDAS's straight-through one-hot weights
    (Dong & Yang 2019; ``algorithm=gdas`` sets their schedule, 10 -> 0.1). The temperature goes
    linearly from ``gumbel_temperature`` at the first epoch to ``gumbel_min_temperature`` at
    the last (GDAS: ``tau_max - (tau_max - tau_min) * epoch / (epochs - 1)``). Validation mixes
    with the plain softmax (no noise).
    ``warmup_epochs`` trains only the weights at first. Export: per cell the paper's rule
    (best non-zero operator per edge, strongest edges per node), argmax elsewhere.
    """

    family = "differentiable"

    def __init__(self, space: nn.Module, *, order: int = 1, arch_learning_rate: float = 3e-4,
                 arch_betas: tuple[float, float] = (0.5, 0.999), arch_weight_decay: float = 1e-3,
                 warmup_epochs: int = 0, gumbel: bool = False, gumbel_hard: bool = False,
                 gumbel_temperature: float = 1.0, gumbel_min_temperature: float = 0.1, **kwargs: Any) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 (first-order) or 2 (unrolled second-order), got {order!r}")
        check_positive(arch_learning_rate=arch_learning_rate, gumbel_temperature=gumbel_temperature,
                       gumbel_min_temperature=gumbel_min_temperature)
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs!r}")
        if gumbel_hard and not gumbel:
            raise ValueError("gumbel_hard=True needs gumbel=True (the straight-through form of the Gumbel sample)")
        super().__init__(space, **kwargs)
        self.save_hyperparameters(ignore=["space"])
        self.arch.gumbel = gumbel
        self.arch.gumbel_hard = gumbel_hard
        if gumbel:
            self.arch.temperature = gumbel_temperature

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        return [torch.optim.Adam(self.arch.parameters(), lr=hp.arch_learning_rate, betas=tuple(hp.arch_betas),
                                 weight_decay=hp.arch_weight_decay)]

    def on_train_epoch_start(self) -> None:
        hp = self.hparams
        if hp.gumbel:
            epochs = max(1, (self.trainer.max_epochs or 1) - 1)
            progress = min(1.0, self.current_epoch / epochs)
            start, end = hp.gumbel_temperature, hp.gumbel_min_temperature
            self.arch.temperature = start + (end - start) * progress
        self.log("arch/temperature", float(self.arch.temperature))

    def on_validation_epoch_start(self) -> None:
        self.arch.clear_noise()

    def training_step(self, batch: Any, batch_idx: int) -> None:
        (x_train, y_train), (x_val, y_val) = split_batch(batch)
        self.arch.resample_noise(self.generator)
        if self.current_epoch >= self.hparams.warmup_epochs:
            arch_optimizer = self.optimizers()[1]
            arch_optimizer.zero_grad()
            if self.hparams.order == 1:
                loss, _ = self.criterion(x_val, y_val)
                self.manual_backward(loss)
            else:
                self._unrolled_gradient(x_train, y_train, x_val, y_val)
            arch_optimizer.step()
            self.log("arch/loss", loss.detach() if self.hparams.order == 1 else self._last_val_loss)
        for p in self.arch.parameters():
            p.grad = None
        self.weight_step(x_train, y_train)
        for p in self.arch.parameters():
            p.grad = None
        self.log("arch/entropy", self.mean_entropy(), on_step=False, on_epoch=True)

    def mean_entropy(self) -> torch.Tensor:
        """Mean entropy of the architecture distributions (how undecided the search still is)."""
        entropies = [-(torch.softmax(a.detach(), -1) * torch.log_softmax(a.detach(), -1)).sum() for a in
                     self.arch.alpha.values()]
        return torch.stack(entropies).mean()

    # -- second order ----------------------------------------------------------------------------------
    def _unrolled_gradient(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
                           y_val: torch.Tensor) -> None:
        """Set the architecture parameters' ``.grad`` to the unrolled (second-order) gradient."""
        optimizer = self.optimizers()[0]
        buffers = {w: optimizer.state.get(w, {}).get("momentum_buffer") for w in self.supernet.parameters()}
        grads, self._last_val_loss = self.unrolled_arch_gradient(
            (x_train, y_train), (x_val, y_val), optimizer.param_groups[0]["lr"], buffers)
        for a, g in zip(self.arch.parameters(), grads):
            a.grad = g

    def unrolled_arch_gradient(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                               lr: float, momentum_buffers: dict[nn.Parameter, torch.Tensor | None] | None = None
                               ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """DARTS eq. 7: ``d/dalpha L_val(w - lr * dw L_train(w, alpha), alpha)``, with eq. 8's
        finite-difference Hessian-vector product; returns (one gradient per alpha, L_val at w').

        The virtual step is the weight optimizer's own (momentum and weight decay included), as
        in the authors' ``cnn/architect.py`` (``_compute_unrolled_model``). The two perturbed
        passes run in fp32 even under mixed precision: their step ``0.01 / ||v||`` is far below
        bf16's resolution, so in bf16 both passes would see the same weights and the
        Hessian term would vanish (or be rounding noise).
        """
        weights = [p for p in self.supernet.parameters() if p.requires_grad]
        alphas = list(self.arch.parameters())
        buffers = momentum_buffers or {}
        momentum, decay = self.hparams.momentum, self.hparams.weight_decay
        backup = [w.detach().clone() for w in weights]
        # virtual step w' = w - lr * (momentum * buffer + grad + decay * w)
        loss, _ = self.criterion(*train)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        with torch.no_grad():
            for w, g in zip(weights, grads):
                g = torch.zeros_like(w) if g is None else g
                buffer = buffers.get(w)
                step = g + decay * w + (momentum * buffer if buffer is not None else 0)
                w.sub_(lr * step)
        # gradient of the validation loss at w'
        val_loss, _ = self.criterion(*val)
        grads = torch.autograd.grad(val_loss, alphas + weights, allow_unused=True)
        alpha_grads = [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads[: len(alphas)])]
        vector = [torch.zeros_like(w) if g is None else g.float() for w, g in zip(weights, grads[len(alphas):])]
        # finite-difference Hessian-vector product (eq. 8):
        # (dalpha L_train(w + eps v) - dalpha L_train(w - eps v)) / 2 eps, with eps = 0.01 / ||v||
        eps = 0.01 / torch.cat([v.flatten() for v in vector]).norm().clamp_min(1e-12)
        hessian = []
        with torch.autocast(device_type=train[0].device.type, enabled=False):
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for w, b, v in zip(weights, backup, vector):
                        w.copy_(b + sign * eps * v)
                loss, _ = self.criterion(train[0].float(), train[1])
                hessian.append(torch.autograd.grad(loss, alphas, allow_unused=True))
        with torch.no_grad():
            for w, b in zip(weights, backup):
                w.copy_(b)
        result = []
        for a, g, plus, minus in zip(alphas, alpha_grads, hessian[0], hessian[1]):
            plus = torch.zeros_like(a) if plus is None else plus
            minus = torch.zeros_like(a) if minus is None else minus
            result.append(g - lr * (plus - minus) / (2 * eps))
        return result, val_loss.detach()
