"""SPOS as the paper (Guo et al., ECCV 2020) and the authors' code (megvii-model/SinglePathOneShot) do it:
BatchNorm recalibration, evolution that never scores a candidate twice, FLOPs-bin supernet sampling."""

from __future__ import annotations

import itertools
import json

import torch
from torch.utils.data import DataLoader, TensorDataset

import supernet
import supernet.nn as nn
from algorithms import SposModule


class BnSpace(nn.Module):
    """A plain BatchNorm2d and a width-searched (weight-entangled) one with a constant momentum argument."""

    def __init__(self) -> None:
        super().__init__()
        width = nn.ValueChoice([4, 8], label="width")
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.bn_plain = nn.BatchNorm2d(6)
        self.conv = nn.Conv2d(6, width, 1)
        self.bn_wide = nn.BatchNorm2d(width, momentum=0.3)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.bn_plain(self.stem(x)))
        return self.fc(torch.relu(self.bn_wide(self.conv(x))).mean((2, 3)))


def _norms(module: SposModule) -> dict[str, torch.nn.modules.batchnorm._BatchNorm]:
    return {name: m for name, m in module.supernet.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}


def test_bn_recalibration_running_mean_is_the_mean_over_calibration_batches():
    module = SposModule(BnSpace(), example_input_shape=(3, 8, 8))
    norms = _norms(module)
    assert len(norms) == 2 and any(type(m) is not torch.nn.BatchNorm2d for m in norms.values()), \
        "the space has a plain and an entangled BatchNorm"
    g = torch.Generator().manual_seed(0)
    # stale statistics from the widest path, as supernet training leaves them
    module.arch.set_arch({"width": 8})
    module.supernet.train()
    with torch.no_grad():
        for _ in range(3):
            module.supernet(torch.randn(16, 3, 8, 8, generator=g) * 5 + 3)
    # calibration batches with different shifts and scales, so that an exponential average differs from the mean
    calibration = [(torch.randn(8, 3, 8, 8, generator=g) * (1 + i) + i, torch.zeros(8, dtype=torch.long))
                   for i in range(5)]
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name in norms}
    hooks = [m.register_forward_hook(lambda m, args, out, name=name: inputs[name].append(args[0].detach().clone()))
             for name, m in norms.items()]
    module.score({"width": 4}, calibration, calibration[:1])
    for h in hooks:
        h.remove()
    for name, m in norms.items():
        seen = inputs[name][: len(calibration)]  # the calibration passes (then the evaluation pass)
        n = seen[0].shape[1]
        mean = torch.stack([x.mean((0, 2, 3)) for x in seen]).mean(0)
        var = torch.stack([x.var((0, 2, 3), unbiased=True) for x in seen]).mean(0)
        torch.testing.assert_close(m.running_mean[:n], mean, rtol=1e-5, atol=1e-5, msg=f"{name} running_mean")
        torch.testing.assert_close(m.running_var[:n], var, rtol=1e-5, atol=1e-5, msg=f"{name} running_var")
    assert norms["bn_wide"].running_mean.shape[0] == 8 and inputs["bn_wide"][0].shape[1] == 4


class ChainSpace(nn.Module):
    """Six independent 4-way decisions (4,096 architectures), cheap to cost."""

    def __init__(self, layers: int = 6, kinds: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            nn.LayerChoice([nn.Conv2d(2, 2, 1) for _ in range(kinds)], label=f"op{i}") for i in range(layers)])
        self.fc = nn.Linear(2, 10)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.fc(x.mean((2, 3)))


def _loader(channels: int = 2) -> DataLoader:
    x, y = torch.randn(32, channels, 4, 4), torch.randint(0, 10, (32,))
    return DataLoader(TensorDataset(x, y), batch_size=8)


def _count_scores(module: SposModule) -> list[str]:
    keys: list[str] = []

    def fake_score(arch, calibration, evaluation):
        key = json.dumps(arch, sort_keys=True)
        keys.append(key)
        # a smooth landscape (evolution converges, so mutation and crossover often give back known candidates)
        return sum(int(v) for v in arch.values()) / 100 + (hash(key) % 7) / 1000

    module.score = fake_score
    return keys


def test_spos_evolution_never_scores_the_same_candidate_twice():
    population, generations = 20, 6
    module = SposModule(ChainSpace(), population=population, generations=generations, topk=5,
                        example_input_shape=(2, 4, 4), bn_calibration_batches=1, eval_batches=1)
    keys = _count_scores(module)
    module.search(_loader())
    assert len(keys) == len(set(keys)), f"{len(keys) - len(set(keys))} repeated evaluations"
    # the authors' search.py scores population_num random candidates, then population_num new ones per
    # epoch (mutation + crossover, topped up with random ones): 50 + 20 * 50 at their defaults
    assert len(keys) == population * (generations + 1)
    assert [h["evaluated"] for h in module.history] == [population] * (generations + 1), "every generation is full"


def test_spos_evolution_on_an_exhausted_space_stops_without_repeats():
    module = SposModule(ChainSpace(layers=2, kinds=3), population=4, generations=5, topk=2,
                        example_input_shape=(2, 4, 4), bn_calibration_batches=1, eval_batches=1,
                        max_sampling_tries=50)
    keys = _count_scores(module)
    best = module.search(_loader())
    assert len(keys) == len(set(keys)) == 9, "all nine architectures scored once"
    assert best == {"op0": "2", "op1": "2"}


class KernelSpace(nn.Module):
    """Three kernel-size choices: FLOPs are a sum of three skewed terms, so uniform architecture
    sampling visits FLOPs bins very unevenly."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.LayerChoice({f"k{k}": nn.Conv2d(4, 4, k, padding=k // 2) for k in (1, 3, 7)},
                                                    label=f"k{i}") for i in range(3)])
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.fc(x.mean((2, 3)))


def test_flops_bin_sampling_hits_every_bin_uniformly():
    bins, draws = 4, 800
    space = supernet.search_space(KernelSpace())
    archs = [dict(zip(space.choices, values)) for values in itertools.product(*(c.options for c in
                                                                                 space.choices.values()))]
    costing = SposModule(KernelSpace(), example_input_shape=(4, 6, 6))
    flops = [costing.cost(a)[0] for a in archs]
    lo, hi = min(flops), max(flops)
    # the bins span the budget, here the whole space, as the authors' 290-360 MFLOPs in seven bins
    module = SposModule(KernelSpace(), flops_bins=bins, min_flops=lo, max_flops=hi, example_input_shape=(4, 6, 6),
                        seed=0)

    def bin_of(f: float) -> int:
        return min(int((f - lo) / (hi - lo) * bins), bins - 1)

    by_arch = [sum(bin_of(f) == b for f in flops) / len(flops) for b in range(bins)]
    assert max(by_arch) > 0.4 and min(by_arch) < 0.05, f"uniform-over-architectures is skewed here: {by_arch}"
    counts = [0] * bins
    for _ in range(draws):
        counts[bin_of(module.cost(module.sample_for_training())[0])] += 1
    expected = draws / bins
    assert all(abs(c - expected) < 0.2 * expected for c in counts), f"counts per FLOPs bin {counts}"


def test_spos_search_leaves_the_best_candidates_batchnorm_statistics():
    """After evolution the supernet's BN statistics are the best candidate's recalibration (not the last
    candidate's), so a fixed net inheriting the weights scores what evolution measured."""
    module = SposModule(BnSpace(), population=2, generations=1, topk=2, example_input_shape=(3, 8, 8),
                        bn_calibration_batches=2, eval_batches=2)
    g = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)),
                        batch_size=16)
    scored = []
    score = module.score
    module.score = lambda arch, *batches: scored.append(arch) or score(arch, *batches)
    best = module.search(loader)
    assert scored[-1] != best, "the fixture must end evolution on another candidate than the best"
    calibration, evaluation = module._batches(loader, "train", 2), module._batches(loader, "val", 2)
    got = {k: v.clone() for k, v in module.supernet.state_dict().items() if "running" in k}
    score(best, calibration, evaluation)
    for key, value in module.supernet.state_dict().items():
        if "running" in key:
            assert torch.equal(got[key], value), key
    net = supernet.freeze(module.supernet, best, inherit_weights=True).eval()
    with torch.no_grad():
        correct = sum(int((net(x).argmax(-1) == y).sum()) for x, y in evaluation)
    assert correct / sum(y.numel() for _, y in evaluation) == module.topk[0]["accuracy"]


def test_spos_evolution_on_an_exhausted_space_gives_up_after_max_sampling_tries_draws_in_a_row():
    """Once every network has been scored, each random top-up stops after ``max_sampling_tries`` fruitless
    draws in a row (not ``max_sampling_tries`` per missing candidate, which spent minutes on small spaces)."""
    tries, generations = 50, 5
    module = SposModule(ChainSpace(layers=2, kinds=3), population=20, generations=generations, topk=2,
                        example_input_shape=(2, 4, 4), bn_calibration_batches=1, eval_batches=1,
                        max_sampling_tries=tries)
    draws = []
    sample = module.sample_uniform
    module.sample_uniform = lambda: draws.append(1) or sample()
    module.search(_loader())
    # 9 networks: the first fill finds them (at most a few hundred draws on 9 outcomes), then at most
    # ``tries`` fruitless draws per fill; before: (20 - 9) * 50 = 550 per generation
    assert len(draws) <= 300 + (generations + 1) * tries
