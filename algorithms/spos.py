"""SPOS: single path one-shot (Guo et al., 2020): uniform path sampling, then evolution."""

from __future__ import annotations

import functools
import json
import os
import random
import warnings
from typing import Any

import torch
from torch import nn

import supernet
from algorithms.base import OneShotAlgorithm, check_positive, search_batches, split_batch
from algorithms.cost import count_macs

__all__ = ["SposModule"]

_MAX_KEPT_PER_BIN = 100  # draws kept for later steps, per FLOPs bin
_PILOT_DRAWS = 100  # uniform draws that set the FLOPs-bin range ends not given


class SposModule(OneShotAlgorithm):
    """Train the supernet on uniformly sampled paths (only those within the FLOPs / params
    range, if given), then search it by evolution under the same budget. FLOPs here, as in
    the papers (SPOS's 330M), are multiply-adds: ``max_flops=330e6`` is 330M multiply-adds.

    Supernet training samples uniformly over architectures, or, with ``flops_bins=B``, as the
    authors' supernet training does (src/Supernet/train.py): a FLOPs bin uniformly among B
    equal bins over [min_flops, max_flops] (an end not given: the 5th / 95th percentile of 100
    uniform draws), then a uniform architecture within it.
    FLOPs are ``cost``'s, the budget's unit. Each draw costs a FLOPs count (cached per
    architecture), and a step needs about ``1 / (B * p)`` draws for a bin holding a share ``p``
    of the architectures (fewer: draws that land in other bins are kept for them).

    Each candidate is scored after recalibrating BatchNorm statistics on
    ``bn_calibration_batches`` training batches (train mode, no gradient), by accuracy on
    ``eval_batches`` batches of the held-out half (on another task: the task's metric, ranked in
    its direction, lowest first when lower is better); see ``score``.

    Evolution as the authors' src/Search/search.py: population 50 random candidates, then
    ``generations`` (20) times: the top-k (10) of everything scored so far are parents;
    ``population * (1 - crossover_fraction)`` (25) children by mutation (each decision redrawn
    with probability 0.1), ``population * crossover_fraction`` (25) by uniform crossover, each
    with at most 10 tries per child wanted, and new random candidates fill up the population.
    A network is never scored twice (architectures differing only in inactive decisions, such as
    layers beyond a Repeat's depth, are one network): children already scored (or over budget) are rejected
    and redrawn, so 50 + 20 * 50 distinct candidates are scored when the space is large
    enough. ``history`` has one row per scored generation (``evaluated``: its size).
    Export: the best; ``topk`` holds (arch, FLOPs, params, accuracy) of the best k (for another
    task the score's key is ``task.score_name``, e.g. ``mse``).
    """

    family = "path_sampling"

    def __init__(self, space: nn.Module, *, max_flops: float | None = None, min_flops: float | None = None,
                 max_params: float | None = None, population: int = 50, generations: int = 20, topk: int = 10,
                 mutation_prob: float = 0.1, crossover_fraction: float = 0.5, bn_calibration_batches: int = 20,
                 eval_batches: int = 10, example_input_shape: tuple[int, ...] = (3, 32, 32),
                 max_sampling_tries: int = 1000, flops_bins: int | None = None, **kwargs: Any) -> None:
        check_positive(population=population, generations=generations, topk=topk,
                       bn_calibration_batches=bn_calibration_batches, eval_batches=eval_batches)
        for name, value in [("max_flops", max_flops), ("min_flops", min_flops), ("max_params", max_params),
                            ("flops_bins", flops_bins)]:
            if value is not None:
                check_positive(**{name: value})
        if not 0 <= mutation_prob <= 1 or not 0 <= crossover_fraction <= 1:
            raise ValueError(f"mutation_prob and crossover_fraction must be in [0, 1], got {mutation_prob!r} "
                             f"and {crossover_fraction!r}")
        if topk > population:
            raise ValueError(f"topk ({topk}) cannot exceed population ({population})")
        super().__init__(space, **kwargs)
        self.save_hyperparameters(ignore=["space"])
        self.topk: list[dict[str, Any]] = []
        self.history: list[dict[str, float]] = []  # per scored generation: size, best / mean top-k score
        self.best_arch: dict[str, Any] | None = None
        self._cost_cache: dict[str, tuple[int, int]] = {}
        self._flops_range: tuple[float, float] | None = None
        self._bin_queues: dict[int, list[dict[str, Any]]] = {}  # drawn architectures not yet used, by FLOPs bin
        self._empty_bins: set[int] = set()

    # -- budget -----------------------------------------------------------------------------------------
    def cost(self, arch: dict[str, Any]) -> tuple[int, int]:
        """(FLOPs, parameters) of ``arch`` as a frozen network."""
        key = json.dumps(arch, sort_keys=True, default=str)
        if key not in self._cost_cache:
            # building the net draws initial weights: keep the global RNG (dropout, ...) as it was, so a
            # resumed run, whose cost cache starts empty, draws what an uninterrupted one draws
            with torch.random.fork_rng(devices=[]):
                net = supernet.freeze(self.supernet, arch)
            example = torch.zeros(1, *self.hparams.example_input_shape)
            self._cost_cache[key] = (count_macs(net, example), sum(p.numel() for p in net.parameters()))
        return self._cost_cache[key]

    def _budgeted(self) -> bool:
        hp = self.hparams
        return any(v is not None for v in (hp.max_flops, hp.min_flops, hp.max_params))

    def within_budget(self, arch: dict[str, Any]) -> bool:
        if not self._budgeted():
            return True
        hp = self.hparams
        flops, params = self.cost(arch)
        return ((hp.max_flops is None or flops <= hp.max_flops) and (hp.min_flops is None or flops >= hp.min_flops)
                and (hp.max_params is None or params <= hp.max_params))

    def sample_within_budget(self) -> dict[str, Any]:
        for _ in range(self.hparams.max_sampling_tries):
            arch = self.sample_uniform()
            if self.within_budget(arch):
                return arch
        raise RuntimeError(f"no architecture within the budget (max_flops={self.hparams.max_flops}, "
                           f"min_flops={self.hparams.min_flops}, max_params={self.hparams.max_params}) in "
                           f"{self.hparams.max_sampling_tries} uniform samples")

    def on_fit_start(self) -> None:
        if self._budgeted():
            self._check_budget_reachable()

    def _check_budget_reachable(self) -> None:
        """Fail early, naming the budget, when not even the cheapest architecture meets it."""
        from algorithms.cost import CostModel

        hp = self.hparams
        example = torch.zeros(1, *hp.example_input_shape, device=self.device)
        cheapest = {**self.arch.space.default_arch(), **CostModel(self.supernet, self.arch, example).cheapest()}
        flops, params = self.cost(cheapest)
        if hp.max_flops is not None and flops > hp.max_flops:
            raise ValueError(f"max_flops={hp.max_flops:g} is below the cheapest architecture of the space "
                             f"({flops:,} FLOPs on input {tuple(hp.example_input_shape)})")
        if hp.max_params is not None and params > hp.max_params:
            raise ValueError(f"max_params={hp.max_params:g} is below the smallest architecture of the space "
                             f"({params:,} parameters)")

    # -- supernet training ------------------------------------------------------------------------------
    def sample_for_training(self) -> dict[str, Any]:
        """The path of one supernet training step: uniform within the budget, or uniform over
        FLOPs bins (``flops_bins``)."""
        if self.hparams.flops_bins is None:
            return self.sample_within_budget()
        bins = self.hparams.flops_bins
        self._bin_range()
        while True:
            live = [b for b in range(bins) if b not in self._empty_bins]
            if not live:
                raise RuntimeError(f"no architecture within the budget in any of the {bins} FLOPs bins over "
                                   f"{self._bin_range()}")
            target = live[int(torch.randint(0, len(live), (1,), generator=self.generator))]
            queue = self._bin_queues.setdefault(target, [])
            # Rejection sampling as the authors' get_uniform_sample_cand, but a draw that lands in another
            # bin is kept for that bin: it is a uniform draw conditioned on its bin all the same.
            for _ in range(self.hparams.max_sampling_tries):
                if queue:
                    return queue.pop(0)
                arch = self.sample_uniform()
                if self.within_budget(arch):
                    self._keep(arch)
            if queue:
                return queue.pop(0)
            # The authors fall back to an unconstrained random path; we sample over the bins that can be hit.
            self._empty_bins.add(target)
            warnings.warn(f"FLOPs bin {target} of {bins} over {self._bin_range()} was not hit in "
                          f"{self.hparams.max_sampling_tries} uniform draws; sampling the other bins", stacklevel=2)

    def _bin_range(self) -> tuple[float, float]:
        """[min_flops, max_flops]; an end not given is the 5th / 95th percentile of ``_PILOT_DRAWS``
        uniform draws within the budget. Like the authors' 290-360 MFLOPs around their 330M budget,
        the bins then cover the bulk of the space: its extremes are far too rare to fill a bin when
        many decisions add up. The pilot draws are kept for their bins."""
        if self._flops_range is None:
            hp = self.hparams
            lo, hi = hp.min_flops, hp.max_flops
            pilot = [] if lo is not None and hi is not None else [self.sample_within_budget()
                                                                  for _ in range(_PILOT_DRAWS)]
            flops = sorted(self.cost(arch)[0] for arch in pilot)
            if lo is None:
                lo = flops[len(flops) // 20]
            if hi is None:
                hi = flops[-1 - len(flops) // 20]
            self._flops_range = (float(lo), float(hi))
            for arch in pilot:
                self._keep(arch)
        return self._flops_range

    def flops_bin(self, flops: float) -> int | None:
        """The FLOPs bin of ``flops`` (``None`` outside the bins' range)."""
        lo, hi = self._bin_range()
        if not lo <= flops <= hi:
            return None
        bins = self.hparams.flops_bins
        return 0 if hi == lo else min(int((flops - lo) / (hi - lo) * bins), bins - 1)

    def _keep(self, arch: dict[str, Any]) -> None:
        """Queue ``arch`` for its FLOPs bin (if it is in one and the queue has room)."""
        b = self.flops_bin(self.cost(arch)[0])
        if b is not None and len(self._bin_queues.setdefault(b, [])) < _MAX_KEPT_PER_BIN:
            self._bin_queues[b].append(arch)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        (x, y), _ = split_batch(batch) if not isinstance(batch, (list, tuple)) else (batch[:2], None)
        self.arch.set_arch(self.sample_for_training())
        self.weight_step(x, y)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    # -- evolution --------------------------------------------------------------------------------------
    def on_train_end(self) -> None:
        loader = self.trainer.train_dataloader
        if loader is not None:
            if self.trainer.fast_dev_run:  # a debugging run: check the evolution runs, do not search
                self.hparams.update(population=2, generations=1, topk=1, bn_calibration_batches=1, eval_batches=1)
            self.search(loader)

    def _batches(self, loader: Any, part: str, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [pair[0] if part == "train" else pair[1] for pair in search_batches(loader, self.device, count)]

    @torch.no_grad()
    def score(self, arch: dict[str, Any], calibration: list, evaluation: list) -> float:
        """The task's score (accuracy) of ``arch`` on ``evaluation`` after recalibrating BatchNorm on
        ``calibration``.

        Every BatchNorm (weight-entangled ones included) restarts its statistics and takes the
        cumulative average (momentum None) of the per-batch mean and unbiased variance over the
        calibration batches, forward passes in train mode without gradient. The authors'
        src/Search/tester.py resets the statistics too but keeps momentum 0.1 over 200 batches of
        128 images; the exact average lets the default 20 batches suffice.
        """
        self.recalibrate(arch, calibration)
        self.supernet.eval()
        return self.task.evaluate((self(x), y) for x, y in evaluation)

    @torch.no_grad()
    def recalibrate(self, arch: dict[str, Any], calibration: list) -> None:
        """Set ``arch`` and recompute every BatchNorm's statistics on ``calibration`` (see ``score``)."""
        self.arch.set_arch(arch)
        for m in self.supernet.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
        self.supernet.train()
        for x, _ in calibration:
            self.supernet(x)

    def search(self, loader: Any) -> dict[str, Any]:
        """Evolutionary search on the trained supernet; returns the best architecture."""
        hp = self.hparams
        rng = random.Random(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
        calibration = self._batches(loader, "train", hp.bn_calibration_batches)
        evaluation = self._batches(loader, "val", hp.eval_batches)
        space = self.arch.space
        saved_momentum = {m: m.momentum for m in self.supernet.modules()
                          if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        scored: dict[str, dict[str, Any]] = {}
        self.history = []
        name = self.task.score_name

        def ranked() -> list[dict[str, Any]]:  # best first, in the task's direction
            return sorted(scored.values(), key=lambda r: -self.task.fitness(r[name]))

        def admit(arch: dict[str, Any]) -> bool:
            """Score ``arch`` if it is new and within the budget (the authors' ``is_legal``). New means a new
            network: decisions the architecture leaves inactive (layers beyond a Repeat's depth) are not compared."""
            try:
                arch = space.validate(arch)
            except ValueError:
                return False
            key = json.dumps({k: v for k, v in arch.items() if space.is_active(k, arch)}, sort_keys=True, default=str)
            if key in scored or not self.within_budget(arch):
                return False
            flops, params = self.cost(arch)
            scored[key] = {"arch": arch, "flops": flops, "params": params,
                           name: self.score(arch, calibration, evaluation)}
            return True

        def add(propose: Any, count: int, tries: int) -> int:
            added = 0
            for _ in range(tries):
                if added == count:
                    break
                added += admit(propose())
            return added

        def mutant(parents: list[dict[str, Any]]) -> dict[str, Any]:
            parent, fresh = rng.choice(parents), supernet.sample(space, seed=rng.randrange(2**31))
            return {k: fresh.get(k, v) if rng.random() < hp.mutation_prob else v for k, v in parent.items()}

        def crossover(parents: list[dict[str, Any]]) -> dict[str, Any]:
            a, b = rng.sample(parents, 2) if len(parents) > 1 else (parents[0], parents[0])
            return {k: (a if rng.random() < 0.5 else b)[k] for k in a}

        def random_fill(size: int) -> int:
            """The authors' get_random: new random candidates up to ``population``. Their loop has no end on a
            space with fewer networks than that; here ``max_sampling_tries`` fruitless draws in a row end it."""
            added = fruitless = 0
            while size + added < hp.population and fruitless < hp.max_sampling_tries:
                new = admit(self.sample_uniform())
                added, fruitless = added + new, 0 if new else fruitless + 1
            return size + added

        def record(size: int) -> list[dict[str, Any]]:
            if not scored:
                raise RuntimeError(f"no architecture within the budget found in "
                                   f"{hp.population * hp.max_sampling_tries} uniform samples")
            top = ranked()[: hp.topk]
            self.history.append({"generation": len(self.history), "evaluated": size,
                                 f"best_{name}": top[0][name],
                                 f"mean_{name}": sum(r[name] for r in top) / len(top)})
            for logger in self.loggers:  # self.log is not allowed once training has ended
                logger.log_metrics({f"search/{k}": v for k, v in self.history[-1].items()}, step=len(self.history))
            return [r["arch"] for r in top]

        parents = record(random_fill(0))
        n_cross = int(hp.population * hp.crossover_fraction)
        n_mutation = hp.population - n_cross
        progress = _progress(hp.generations, "SPOS evolution", self._trainer)
        for _ in range(hp.generations):
            size = add(functools.partial(mutant, parents), n_mutation, 10 * n_mutation)  # search.py: 10 * num tries
            size += add(functools.partial(crossover, parents), n_cross, 10 * n_cross)
            parents = record(random_fill(size))
            progress.update(1)
        progress.close()
        self.topk = ranked()[: hp.topk]
        self.best_arch = self.topk[0]["arch"]
        # leave the supernet with the best candidate's recalibrated statistics (not the last one
        # scored), so a fixed net inheriting the weights starts from what evolution measured
        self.recalibrate(self.best_arch, calibration)
        for m, momentum in saved_momentum.items():
            m.momentum = momentum
        return self.best_arch

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.hparams.flops_bins is not None:  # the bins' draws in hand, so a resumed run samples as this one
            queues = {int(b): [dict(a) for a in q] for b, q in self._bin_queues.items()}
            checkpoint["spos_flops_bins"] = {"range": self._flops_range, "empty": sorted(self._empty_bins),
                                             "queues": queues}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        bins = checkpoint.get("spos_flops_bins")
        if bins is not None:
            self._flops_range = None if bins["range"] is None else tuple(bins["range"])
            self._empty_bins = set(bins["empty"])
            self._bin_queues = {int(b): list(q) for b, q in bins["queues"].items()}

    def export(self) -> dict[str, Any]:
        return dict(self.best_arch) if self.best_arch is not None else super().export()

    def save_topk(self, path: str | os.PathLike) -> None:
        """Write the top-k table (arch, FLOPs, params, score) as JSON."""
        with open(path, "w") as f:
            json.dump(self.topk, f, indent=2, default=str)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, description: str, trainer: Any) -> Any:
    enabled = trainer is not None and getattr(trainer, "progress_bar_callback", None) is not None
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, leave=False)
