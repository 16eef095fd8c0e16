"""ENAS (Pham et al., 2018): an LSTM controller samples architectures, trained with REINFORCE."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from algorithms.base import OneShotAlgorithm, check_positive, search_batches, split_batch
from supernet.primitives.base import Choice

__all__ = ["EnasController", "EnasModule"]


class EnasController(nn.Module):
    """An LSTM that takes every decision in order; each decision is fed back as the next input.

    Categorical decisions pick one option; an input choice of any subset decides each
    input with a sigmoid (its skip probability is what the skip penalty regularises).
    ``forward`` returns the log-probability of the sample summed over its decisions, the full
    entropy of every decision's distribution summed (micro_controller.py: softmax cross-entropy
    with the softmax itself), and the skip penalty: per any-subset input choice (a "layer" of
    general_controller.py) the KL from the skip target summed over its inputs, averaged over
    those layers. The authors' KL takes ``sigmoid(q)`` while they sample with
    ``softmax([-q, q]) = sigmoid(2q)``; here both use the probability that is sampled.
    """

    def __init__(self, choices: list[Choice], hidden: int = 64, tanh_constant: float = 1.5,
                 temperature: float = 5.0, skip_target: float = 0.4) -> None:
        super().__init__()
        self.choices = choices
        self.skip_target = skip_target
        self.hidden = hidden
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.heads = nn.ModuleList()
        self.embeddings = nn.ModuleList()
        for choice in choices:
            n = choice.n_candidates if self._bernoulli(choice) else len(choice.options)
            self.heads.append(nn.Linear(hidden, n))
            self.embeddings.append(nn.Embedding(n, hidden))
        for p in self.parameters():  # paper §3.2 and the authors' controllers: every weight uniform in [-0.1, 0.1]
            nn.init.uniform_(p, -0.1, 0.1)

    @staticmethod
    def _bernoulli(choice: Choice) -> bool:
        return choice.kind == "input_choice" and choice.n_chosen is None

    def forward(self, generator: torch.Generator | None = None, greedy: bool = False
                ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample an architecture: (arch, log-probability, entropy, skip penalty)."""
        x = self.start
        h = c = torch.zeros_like(self.start)
        arch: dict[str, Any] = {}
        log_prob = entropy = skip = torch.zeros((), device=x.device)
        layers = 0
        for choice, head, embedding in zip(self.choices, self.heads, self.embeddings):
            h, c = self.lstm(x, (h, c))
            logits = head(h)[0] / self.temperature
            logits = self.tanh_constant * torch.tanh(logits)
            if self._bernoulli(choice):
                probs = torch.sigmoid(logits)
                pick = (probs.detach().cpu() > 0.5) if greedy else torch.bernoulli(probs.detach().cpu(),
                                                                                    generator=generator).bool()
                pick = pick.to(logits.device)
                log_prob = log_prob + torch.where(pick, probs, 1 - probs).clamp_min(1e-8).log().sum()
                entropy = entropy - (probs * probs.clamp_min(1e-8).log() +
                                     (1 - probs) * (1 - probs).clamp_min(1e-8).log()).sum()
                # general_controller.py: the KL summed over this layer's inputs; averaged over layers below
                target = torch.full_like(probs, self.skip_target)
                skip = skip + (probs * (probs / target).clamp_min(1e-8).log() +
                               (1 - probs) * ((1 - probs) / (1 - target)).clamp_min(1e-8).log()).sum()
                layers += 1
                chosen = [i for i, p in enumerate(pick.tolist()) if p]
                arch[choice.label] = chosen
                x = embedding(torch.tensor([len(chosen) % embedding.num_embeddings], device=logits.device))
            else:
                log_probs = F.log_softmax(logits, -1)
                index = int(log_probs.argmax()) if greedy else int(
                    torch.multinomial(log_probs.detach().exp().cpu(), 1, generator=generator))
                log_prob = log_prob + log_probs[index]
                entropy = entropy - (log_probs.exp() * log_probs).sum()
                arch[choice.label] = choice.options[index]
                x = embedding(torch.tensor([index], device=logits.device))
        return arch, log_prob, entropy, skip / max(layers, 1)


class EnasModule(OneShotAlgorithm):
    """ENAS search as the authors' code runs it (melodyguan/enas, src/cifar10/main.py and *_controller.py).

    Shared weights train on controller-sampled paths. The controller learns by REINFORCE: each
    training step draws one architecture and scores it on that step's validation batch; the
    reward is its accuracy there (BatchNorm with batch statistics, as ``build_valid_rl``'s
    ``is_training=True``; on another task its metric as a higher-is-better number, ``task.fitness``:
    e.g. minus the MSE), plus ``entropy_weight`` x the sample's entropy, with no gradient through
    the entropy (micro_controller.py ``build_trainer``). A moving-average baseline moves towards
    the reward first, then the advantage is taken; the loss is ``-log p x advantage +
    skip_weight x skip penalty``. The gradients of ``controller_aggregate`` (M) samples are
    averaged and applied in one Adam step, as the authors' ``SyncReplicasOptimizer`` with
    ``replicas_to_aggregate=controller_num_aggregate`` (10 in their micro search script, 20 in
    the macro one). The authors alternate an epoch of weight training with
    ``controller_train_steps x M`` controller samples (300 per ~280 weight steps in the micro
    script); here the two interleave, one sample per weight step, so the ratio is about theirs.
    An aggregate may span epochs; its partial gradient is saved in checkpoints.

    Deliberate deviations: the baseline starts at the first reward rather than at zero (with a
    decay of 0.999 a zero start makes every early advantage positive for ~1000 samples); the
    controller's Adam keeps torch's defaults, not the authors' ``beta1=0, epsilon=1e-3``
    (src/utils.py), which recovered fewer planted decisions within the planted test's budget.

    Export: the best of ``export_samples`` controller samples by the task's score (accuracy) on
    ``export_batches`` validation batches, scored as the reward is (BatchNorm in training mode); the supernet's
    running statistics are left as they were.
    """

    family = "path_sampling"

    def __init__(self, space: nn.Module, *, controller_hidden: int = 64, controller_learning_rate: float = 3.5e-4,
                 controller_aggregate: int = 10, baseline_decay: float = 0.999, entropy_weight: float = 1e-4,
                 skip_target: float = 0.4, skip_weight: float = 0.8, tanh_constant: float = 1.5,
                 export_samples: int = 10, export_batches: int = 5, **kwargs: Any) -> None:
        check_positive(controller_hidden=controller_hidden, controller_learning_rate=controller_learning_rate,
                       controller_aggregate=controller_aggregate, export_samples=export_samples,
                       export_batches=export_batches, tanh_constant=tanh_constant)
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay!r}")
        if not 0 < skip_target < 1:
            raise ValueError(f"skip_target must be in (0, 1), got {skip_target!r}")
        super().__init__(space, **kwargs)
        self.save_hyperparameters(ignore=["space"])
        decisions = list(self.arch.space.choices.values())
        self.controller = EnasController(decisions, controller_hidden, tanh_constant, skip_target=skip_target)
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("baseline_started", torch.zeros((), dtype=torch.bool))
        self.register_buffer("aggregated", torch.zeros((), dtype=torch.long))  # samples in the current aggregate
        self.best_arch: dict[str, Any] | None = None
        self._partial_grad: list[torch.Tensor | None] | None = None  # from a checkpoint, until training starts

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.controller.parameters(), lr=self.hparams.controller_learning_rate)]

    def _sample(self, greedy: bool = False, tries: int = 100
                ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor, torch.Tensor]:
        """A controller sample that meets the space's constraints (e.g. NAS-Bench-101's), redrawn if not."""
        for _ in range(tries):
            arch, log_prob, entropy, skip = self.controller(self.generator, greedy and _ == 0)
            try:
                return self.arch.space.validate(arch), log_prob, entropy, skip
            except ValueError:
                continue
        raise RuntimeError(f"the controller drew no architecture meeting the space's constraints in {tries} tries")

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The task's score (accuracy, for classification) of the sampled architecture on ``(x, y)``, in the
        supernet's current mode."""
        return self.task.evaluate([(self(x), y)])

    def training_step(self, batch: Any, batch_idx: int) -> None:
        (x_train, y_train), (x_val, y_val) = split_batch(batch)
        hp = self.hparams
        with torch.no_grad():
            arch, *_ = self._sample()
        self.arch.set_arch(arch)
        self.weight_step(x_train, y_train)
        # controller: one REINFORCE sample on the validation half, its gradient added to the aggregate's mean
        arch, log_prob, entropy, skip = self._sample()
        self.arch.set_arch(arch)
        score = self.validation_score(x_val, y_val)
        reward = self.task.fitness(score) + hp.entropy_weight * entropy.detach()
        if not bool(self.baseline_started):  # start from the first reward, not from zero
            self.baseline.copy_(reward)
            self.baseline_started.fill_(True)
        self.baseline.mul_(hp.baseline_decay).add_((1 - hp.baseline_decay) * reward)
        loss = -(reward - self.baseline) * log_prob + hp.skip_weight * skip
        self.manual_backward(loss / hp.controller_aggregate)
        self.aggregated += 1
        if int(self.aggregated) >= hp.controller_aggregate:
            optimizer = self.optimizers()[1]
            optimizer.step()
            optimizer.zero_grad()
            self.aggregated.zero_()
        self.log_dict({"controller/reward": reward, f"controller/{self.task.score_name}": score,
                       "controller/baseline": self.baseline.clone(), "controller/entropy": entropy.detach(),
                       "controller/skip_penalty": skip.detach()}, on_step=True, on_epoch=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["controller_partial_grad"] = [None if p.grad is None else p.grad.detach().clone()
                                                 for p in self.controller.parameters()]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._partial_grad = checkpoint.get("controller_partial_grad")

    def on_train_start(self) -> None:
        # the Trainer zeroes every gradient before it trains: put a resumed partial aggregate back after that
        for p, grad in zip(self.controller.parameters(), self._partial_grad or []):
            p.grad = None if grad is None else grad.to(p.device)
        self._partial_grad = None

    def on_validation_model_zero_grad(self) -> None:
        """Free the supernet's gradients before validation, but keep the controller's partial aggregate."""
        self.supernet.zero_grad()

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        saved = dict(self.arch.arch)
        with torch.no_grad():
            self.arch.set_arch(self._sample(greedy=True)[0])
        try:
            return self(x)
        finally:
            self.arch.set_arch(saved)

    @torch.no_grad()
    def on_train_end(self) -> None:
        loader = self.trainer.train_dataloader
        if loader is None:
            return
        batches = [val for _, val in search_batches(loader, self.device, self.hparams.export_batches)]
        # score as the reward does: BatchNorm with batch statistics; the running statistics are restored after
        buffers = {name: b.clone() for name, b in self.supernet.named_buffers()}
        was_training = self.supernet.training
        self.supernet.train()
        best, best_fitness = None, -math.inf
        try:
            for _ in range(self.hparams.export_samples):
                arch = self._sample()[0]
                self.arch.set_arch(arch)
                fitness = self.task.fitness(self.task.evaluate((self(x), y) for x, y in batches))
                if fitness > best_fitness:
                    best, best_fitness = arch, fitness
        finally:
            for name, b in self.supernet.named_buffers():
                b.copy_(buffers[name])
            self.supernet.train(was_training)
        self.best_arch = best

    def export(self) -> dict[str, Any]:
        if self.best_arch is not None:
            return dict(self.best_arch)
        with torch.no_grad():
            return self._sample(greedy=True)[0]
