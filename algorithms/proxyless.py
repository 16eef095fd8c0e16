"""ProxylessNAS (Cai et al., 2019): binary gates, architecture gradients, an optional resource term."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from algorithms.base import OneShotAlgorithm, check_positive, split_batch
from algorithms.cost import CostModel
from supernet.oneshot.binary_gate import frozen_weights

__all__ = ["ProxylessModule"]

RESOURCE_FORMS = ("mul#log", "add#linear")


class ProxylessModule(OneShotAlgorithm):
    """Weights train on one sampled path per label; architecture steps sample two paths and
    follow the binary-gate gradient, plus an optional expected-cost term.

    After each architecture step the two sampled paths' alphas are shifted by one offset so
    that their total probability is what it was before the step: the paths not sampled keep
    their probabilities (paper §3.2.1; the authors' ``MixedEdge.rescale_updated_arch_param``).

    ``resource_weight > 0`` adds the expected multiply-adds (MACs, measured on
    ``example_input_shape``) or, with ``latency_table={label: {value: cost}}``, the expected
    latency (``CostModel.expected``):
    ``mul#log``: ``loss * (log(E[cost]) / log(target)) ** resource_weight``;
    ``add#linear``: ``loss + resource_weight * E[cost] / target``, where ``target`` is
    ``resource_target`` (same unit; default: the cost of the reference architecture). As in the
    authors' two-path mode, the expectation in the step uses each label's probabilities over its
    two sampled paths (``current_prob_over_ops``), so the term too moves only the sampled alphas;
    ``arch/expected_cost`` logs the expectation under the full distribution. Export: argmax.
    """

    family = "binary_gate"

    def __init__(self, space: nn.Module, *, arch_learning_rate: float = 1e-3,
                 arch_betas: tuple[float, float] = (0.0, 0.999), arch_weight_decay: float = 0.0,
                 warmup_epochs: int = 0, resource_weight: float = 0.0, resource_form: str = "mul#log",
                 resource_target: float | None = None, latency_table: Mapping[str, Mapping[Any, float]] | None = None,
                 example_input_shape: tuple[int, ...] = (3, 32, 32), **kwargs: Any) -> None:
        check_positive(arch_learning_rate=arch_learning_rate)
        if resource_form not in RESOURCE_FORMS:
            raise ValueError(f"resource_form must be one of {list(RESOURCE_FORMS)}, got {resource_form!r}")
        if resource_weight < 0:
            raise ValueError(f"resource_weight must be >= 0, got {resource_weight!r}")
        if resource_target is not None:
            check_positive(resource_target=resource_target)
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs!r}")
        super().__init__(space, **kwargs)
        self.save_hyperparameters(ignore=["space", "latency_table"])
        self.latency_table = latency_table
        self.cost_model: CostModel | None = None

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        return [torch.optim.Adam(self.arch.parameters(), lr=hp.arch_learning_rate, betas=tuple(hp.arch_betas),
                                 weight_decay=hp.arch_weight_decay)]

    def on_fit_start(self) -> None:
        if self.hparams.resource_weight > 0 and self.cost_model is None:
            example = torch.zeros(1, *self.hparams.example_input_shape, device=self.device)
            self.cost_model = CostModel(self.supernet, self.arch, example, self.latency_table)

    def resource_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` with the resource term of the configured form."""
        if self.cost_model is None:
            return loss
        with torch.no_grad():
            self.log("arch/expected_cost", self.cost_model.expected())
        expected = self.cost_model.expected(self._sampled_probs())
        target = self.hparams.resource_target or max(self.cost_model.cost(self.cost_model.reference), 1.0)
        if self.hparams.resource_form == "mul#log":
            ratio = torch.log(expected.clamp_min(1.0)) / math.log(max(target, 2.0))
            return loss * ratio ** self.hparams.resource_weight
        return loss + self.hparams.resource_weight * expected / target

    def _sampled_index(self, label: str) -> torch.Tensor:
        """Positions in ``label``'s alphas of the paths the last ``sample_binary_gates`` drew."""
        values, device = self.arch.alpha_values(label), self.arch.alpha_of(label).device
        return torch.tensor([values.index(v) for v in self.arch.gate_paths[label]], device=device)

    def _sampled_probs(self) -> dict[str, torch.Tensor]:
        """Each label's probabilities renormalised over its two sampled paths, zero elsewhere."""
        state, probs = self.arch, {}
        for label in state.gate_paths:
            alpha, index = state.alpha_of(label), self._sampled_index(label)
            sampled = torch.softmax(alpha[index] / state.temperature, -1)
            probs[label] = torch.zeros_like(alpha).index_put((index,), sampled)
        return probs

    @torch.no_grad()
    def _rescale_sampled(self, before: dict[str, torch.Tensor]) -> None:
        """Shift the sampled paths' alphas so that the paths not sampled keep their probabilities:
        ``alpha_i -= T * (logsumexp(new_S / T) - logsumexp(old_S / T))`` for i in the sampled set S."""
        state = self.arch
        for label in state.gate_paths:
            alpha, index, t = state.alpha_of(label), self._sampled_index(label), state.temperature
            offset = torch.logsumexp(alpha[index] / t, 0) - torch.logsumexp(before[label][index] / t, 0)
            alpha[index] -= t * offset

    def training_step(self, batch: Any, batch_idx: int) -> None:
        (x_train, y_train), (x_val, y_val) = split_batch(batch)
        state = self.arch
        state.arch_gradients = False
        state.sample_binary_gates(paths=1, generator=self.generator)
        self.weight_step(x_train, y_train)
        for p in self.supernet.parameters():  # the step's gradients are spent: free them before the next one
            p.grad = None
        if self.current_epoch >= self.hparams.warmup_epochs:
            arch_optimizer = self.optimizers()[1]
            arch_optimizer.zero_grad()
            state.sample_binary_gates(paths=2, generator=self.generator)
            state.arch_gradients = True
            with frozen_weights(self.supernet):  # the step needs no weight gradient: backward skips them
                loss, _ = self.criterion(x_val, y_val)
                loss = self.resource_loss(loss)
                self.manual_backward(loss)
            state.arch_gradients = False
            before = {label: state.alpha_of(label).detach().clone() for label in state.gate_paths}
            arch_optimizer.step()
            self._rescale_sampled(before)
            self.log("arch/loss", loss.detach())

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        saved = dict(self.arch.arch)
        self.arch.set_arch(self.export())
        try:
            return self(x)
        finally:
            self.arch.set_arch(saved)
