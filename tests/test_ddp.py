"""Scale-out is Lightning's: multi-process search is Lightning DDP (gloo on CPU), and every rank runs
the same architecture at every step and holds the same architecture parameters after it, while
each rank trains on its own part of the data (issue 17, item 6). The launch is Lightning's own
(it starts the second process) or torchrun's (as on several nodes: see the README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "ddp_steps.py")


def _run(command: list[str], tmp_path) -> list[dict]:
    env = {**os.environ, "MASTER_PORT": str(29500 + (os.getpid() % 1000)), "PYTHONWARNINGS": "ignore",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


def _assert_same_architectures_on_every_step(ranks: list[dict]) -> None:
    for rank in ranks:
        assert rank["strategy"] == "DDPStrategy" and rank["backend"] == "gloo" and rank["world_size"] == 2
        assert rank["wrapped"] == "DistributedDataParallel"
    first, second = ranks[0]["steps"], ranks[1]["steps"]
    assert len(first) == len(second) == 4  # 8 of the 16 training samples per rank, batch 2
    assert [s["data"] for s in first] != [s["data"] for s in second], "each rank trains on its own data"
    for step, (a, b) in enumerate(zip(first, second)):
        assert a["arch"] == b["arch"], f"step {step}: the ranks ran different architectures"
        assert a["alpha"].keys() == b["alpha"].keys()
        for key in a["alpha"]:
            assert a["alpha"][key] == pytest.approx(b["alpha"][key], abs=1e-6), f"step {step}: {key} differs"
    assert ranks[0]["export"] == ranks[1]["export"], "the ranks exported different architectures"


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["darts", "enas", "proxyless", "spos"])
def test_lightning_ddp_ranks_run_the_same_architecture_at_every_step(algorithm, tmp_path):
    _assert_same_architectures_on_every_step(_run([sys.executable, SCRIPT, algorithm, str(tmp_path)], tmp_path))


@pytest.mark.slow
def test_torchrun_launch_is_the_same_lightning_ddp(tmp_path):
    ranks = _run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                  "--master_port", str(29600 + (os.getpid() % 1000)), SCRIPT, "proxyless", str(tmp_path)], tmp_path)
    assert all(rank["launched_by_torchrun"] for rank in ranks)
    _assert_same_architectures_on_every_step(ranks)
