"""docs/custom_algorithm.md: its code is short, runs as written, and searches as it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import supernet

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "custom_algorithm.md"


def _code_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), re.S | re.M)


def test_the_guide_writes_its_algorithm_in_under_80_lines_of_code():
    lines = [line for block in _code_blocks() for line in block.splitlines()]
    assert 40 < len(lines) < 80, len(lines)  # every line of every python block, blank lines included


@pytest.fixture(scope="module")
def guide() -> dict:
    """The namespace after running the guide's code blocks, in order, as a reader would."""
    torch.manual_seed(0)
    namespace: dict = {"__name__": "custom_algorithm_guide"}
    exec(compile("\n".join(_code_blocks()), str(GUIDE), "exec"), namespace)  # noqa: S102 - the repository's own doc
    return namespace


def _accuracy(net: torch.nn.Module, batches) -> float:
    with torch.no_grad():
        correct = sum(int((net(x).argmax(1) == y).sum()) for x, y in batches)
    return correct / sum(len(y) for _, y in batches)


def test_the_guide_exports_the_best_finalist_by_shared_weight_accuracy_recomputed_on_frozen_nets(guide):
    search, arch, val_loader = guide["search"], guide["arch"], guide["val_loader"]
    hp, model = search.hparams, search.supernet
    assert supernet.search_space(model).validate(arch) == arch
    few = [batch for _, batch in zip(range(hp.score_batches), val_loader)]
    everything = list(val_loader)

    def frozen(masks):  # the architecture as a plain network with the supernet's weights: no sampler involved
        return supernet.freeze(model, search.mutator.masks_to_arch(masks), inherit_weights=True).eval()

    # stage 1: every candidate's score is its accuracy on the first score_batches batches
    assert len(search.candidates) == hp.num_candidates
    first = [_accuracy(frozen(masks), few) for _, masks in search.candidates]
    assert first == [score for score, _ in search.candidates]
    # the finalists are the top_k candidates of stage 1 (ties broken either way)
    assert len(search.finalists) == hp.top_k
    cut = sorted(first, reverse=True)[hp.top_k - 1]
    finalist_ids = {id(masks) for _, masks in search.finalists}
    assert all(s >= cut for s, (_, m) in zip(first, search.candidates) if id(m) in finalist_ids)
    assert all(s <= cut for s, (_, m) in zip(first, search.candidates) if id(m) not in finalist_ids)
    # stage 2: the finalists' accuracy on the whole validation set; the export is the best one
    full = [_accuracy(frozen(masks), everything) for _, masks in search.finalists]
    assert full == [score for score, _ in search.finalists]
    assert _accuracy(supernet.freeze(model, arch, inherit_weights=True).eval(), everything) == max(full)


def test_the_guide_trains_the_shared_weights_so_its_pick_beats_chance_and_the_worst_candidate(guide):
    search = guide["search"]
    full = [score for score, _ in search.finalists]
    assert max(full) > 0.5  # 4 balanced classes: chance is 0.25
    assert max(full) > min(score for score, _ in search.candidates)
