"""Each algorithm recovers a planted architecture (slow: about two minutes in all on a 2-core CPU)."""

from __future__ import annotations

import pytest
import torch

from algorithms import DartsModule, EnasModule, ProxylessModule, SposModule
from tests.planted import TEACHER_ARCH, PlantedSpace, recovered, run_search

COMMON = {"num_classes": 4, "learning_rate": 0.05}
ALGORITHMS = {
    "darts": (lambda: DartsModule(PlantedSpace(), arch_learning_rate=3e-3, **COMMON), 30),
    "darts_second_order": (lambda: DartsModule(PlantedSpace(), order=2, arch_learning_rate=3e-3, **COMMON), 30),
    "darts_gumbel": (lambda: DartsModule(PlantedSpace(), gumbel=True, arch_learning_rate=3e-3, **COMMON), 30),
    # a faster baseline than the paper's 0.999: this search is a few hundred steps, not tens of thousands
    "enas": (lambda: EnasModule(PlantedSpace(), controller_learning_rate=5e-3, baseline_decay=0.95,
                                export_samples=20, **COMMON), 40),
    "proxyless": (lambda: ProxylessModule(PlantedSpace(), arch_learning_rate=1e-2, **COMMON), 30),
    "spos": (lambda: SposModule(PlantedSpace(), population=30, generations=10, topk=10, example_input_shape=(12,),
                                **COMMON), 30),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_algorithm_recovers_the_planted_architecture(name):
    build, epochs = ALGORITHMS[name]
    found = 0
    for seed in range(3):
        torch.manual_seed(seed)
        found += recovered(run_search(build(), seed, epochs))
    assert found >= 0.8 * 3 * len(TEACHER_ARCH), f"{name} recovered {found} of {3 * len(TEACHER_ARCH)} decisions"
