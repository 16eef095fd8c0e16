"""The README runs (issue 18, item 8).

Every ```python block runs, in order, in one fresh process (later blocks use earlier names, as a
reader's session would), in an empty folder. Every command line of a ```bash block that runs the CLI
(``python train.py``, ``supernet-train``, ``torchrun ... train.py``) must be listed in ``CLI_LINES``
below, which says how a test exercises it: run here (slow test, with the substitutions documented at
``RUN_SUBSTITUTIONS``), or by a named test elsewhere. A README line that is not listed fails
``test_every_readme_command_line_is_exercised``, and every line's overrides must compose with Hydra.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_blocks(language: str) -> list[tuple[int, str]]:
    """``(line of the block's first code line, code)`` for every fenced block of ``language``."""
    blocks, lines, start = [], README.read_text().splitlines(), None
    for number, line in enumerate(lines, start=1):
        if start is None and line.strip() == f"```{language}":
            start = number + 1
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(lines[start - 1:number - 1])))
            start = None
    return blocks


def readme_commands() -> list[str]:
    """The CLI command lines of the README's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for _, code in readme_blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            words = line.split()
            if line and not line.startswith("#") and ("supernet-train" in words or "train.py" in words):
                commands.append(" ".join(words))
    return commands


# -- the Python blocks -----------------------------------------------------------------------------------
RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for line, code in json.load(open(sys.argv[1])):
    print(f"--- README.md block at line {line}", flush=True)
    exec(compile("\\n" * (line - 1) + code, "README.md", "exec"), namespace)  # tracebacks name README lines
"""


def test_readme_has_python_blocks_and_cli_lines():
    assert len(readme_blocks("python")) >= 4 and len(readme_commands()) >= 10


@pytest.mark.slow
def test_every_python_block_of_the_readme_runs_in_order(tmp_path):
    blocks = tmp_path / "blocks.json"
    blocks.write_text(json.dumps(readme_blocks("python")))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, "-c", RUNNER, str(blocks)], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-3000:]
    assert done.stdout.count("--- README.md block") == len(readme_blocks("python"))


# -- the command lines -----------------------------------------------------------------------------------
RUN = "run here"  # test_readme_command_lines_run runs the line (with RUN_SUBSTITUTIONS)
# README command line -> how it is exercised: RUN, or the test that runs it (file::name; its existence is checked)
CLI_LINES = {
    "supernet-train mode=space space=nasnet space.width=4 space.num_cells=3": RUN,
    "supernet-train algorithm=darts space=nasnet trainer.max_epochs=1": RUN,
    "python train.py task=regression data=regression space=mlp algorithm=darts": RUN,
    "python train.py task=regression task.loss=l1 task.metric=mae data=regression space=mlp algorithm=spos": RUN,
    "python train.py algorithm=darts space=nasnet": RUN,
    "python train.py mode=finetune space=nasnet arch=outputs/search/<run>/arch.json": RUN,
    "python train.py mode=finetune arch=<run>/arch.json inherit_weights=true ckpt_path=<run>/checkpoints/last.ckpt":
        RUN,
    "python train.py mode=export ckpt_path=<run>/checkpoints/last.ckpt": RUN,
    "python train.py mode=space space=mobilenetv3": RUN,
    "python train.py ckpt_path=<run>/checkpoints/last.ckpt":
        "tests/test_cli.py::test_a_killed_search_resumes_from_its_last_checkpoint_and_finishes",
    "python train.py -m algorithm=darts,enas,proxyless,spos space=mobilenetv3": RUN,
    # CIFAR-10 needs a download (no network in tests) and a GPU: the configs compose here (below), the
    # DARTS CIFAR-10 search and retraining settings are pinned by the algorithm tests, not run end to end
    "python train.py experiment=darts_cifar10 trainer=gpu": "compose only: needs CIFAR-10 and a GPU",
    "python train.py experiment=darts_cifar10_retrain trainer=gpu arch=outputs/darts_cifar10_search/<run>/arch.json":
        "compose only: needs CIFAR-10 and a GPU",
    "python train.py algorithm=spos space=shufflenet data=imagefolder data.root=/data/imagenet trainer=ddp "
    "trainer.devices=8": "tests/test_ddp.py",
    "torchrun --nnodes 2 --nproc_per_node 8 --node_rank $NODE_RANK --master_addr $HEAD --master_port 29500 train.py "
    "algorithm=proxyless space=mobilenetv3 data=imagefolder data.root=/data/imagenet trainer=ddp trainer.devices=8 "
    "trainer.num_nodes=2": "tests/test_ddp.py",
    "srun --nodes 2 --ntasks-per-node 8 --gpus-per-node 8 python train.py ... trainer=ddp trainer.devices=8 "
    "trainer.num_nodes=2": "tests/test_ddp.py",
}


def test_every_readme_command_line_is_exercised():
    missing = [c for c in readme_commands() if c not in CLI_LINES]
    assert not missing, f"README command lines no test exercises (add each to CLI_LINES): {missing}"
    for how in CLI_LINES.values():
        if how.startswith("tests/"):
            path, _, name = how.partition("::")
            assert (ROOT / path).exists(), how
            assert not name or re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), how


def overrides(command: str) -> list[list[str]]:
    """The Hydra overrides of a command line, one list per job of a sweep (``-m a=x,y``)."""
    words = shlex.split(command.replace("$", ""))
    words = words[words.index(next(w for w in words if w in ("train.py", "supernet-train"))) + 1:]
    words = [w.replace("<run>", "run") for w in words if w not in ("-m", "...")]
    sweeps = [[f"{w.split('=')[0]}={v}" for v in w.split("=", 1)[1].split(",")] if "," in w else [w] for w in words]
    return [list(job) for job in itertools.product(*sweeps)]


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_line_composes(command):
    from hydra import compose, initialize_config_module

    with initialize_config_module("algorithms.configs", version_base="1.3"):
        for job in overrides(command):
            cfg = compose("config", overrides=job)
            assert cfg.mode in ("search", "finetune", "export", "space"), job


# a run here has the README's line, then: a search folder for <run>, small sizes and one batch per stage
RUN_SUBSTITUTIONS = {"outputs/search/<run>": "{run}", "<run>": "{run}"}
SMALL = {"nasnet": ["space.width=4", "space.num_cells=3"],
         "mobilenetv3": ["+space.width_multipliers=0.25", "+space.depth_range=[1,2]"]}


@pytest.fixture(scope="module")
def search_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("readme") / "search"
    cli(["algorithm=darts", "space=nasnet", *SMALL["nasnet"], "debug=fdr", f"hydra.run.dir={run}"], run.parent)
    return run


def cli(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)
    assert done.returncode == 0, f"{args}\n{done.stdout[-1000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in CLI_LINES if CLI_LINES[c] == RUN])
def test_readme_command_lines_run(command, search_run, tmp_path):
    for old, new in RUN_SUBSTITUTIONS.items():
        command = command.replace(old, new.format(run=search_run))
    args = shlex.split(command)[2:] if command.startswith("python") else shlex.split(command)[1:]
    space = next((a.split("=", 1)[1] for a in args if a.startswith("space=")), None)
    small = SMALL.get(space, []) if not any(a.startswith("space.") for a in args) else []
    where = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
    mode = next((a.split("=", 1)[1] for a in args if a.startswith("mode=")), "search")
    debug = [] if mode in ("space", "export") else ["debug=fdr"]
    out = tmp_path / "out"
    stdout = cli([*args, *small, *debug, f"{where}={out}"], tmp_path)
    if mode == "space":
        assert "architectures" in stdout
    elif mode == "export":  # the search's own architecture again
        assert json.loads((out / "arch.json").read_text()) == json.loads((search_run / "arch.json").read_text())
    elif mode == "finetune":
        assert '"params"' in stdout and '"flops"' in stdout
    else:  # a search, or a sweep of searches: one exported architecture per job
        jobs = len(overrides(command))
        assert len(list(out.glob("arch.json" if jobs == 1 else "*/arch.json"))) == jobs
