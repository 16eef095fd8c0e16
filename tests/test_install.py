"""The installable CLI (issue 18, item 1): the Hydra configs ship inside the ``algorithms`` package, the wheel
carries them and the LICENSE, and the ``supernet-train`` console script runs from outside the checkout with
the same overrides as ``python train.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPACE = ["mode=space", "space=nasnet", "space.width=4", "space.num_cells=3"]


def groups_in_defaults() -> list[str]:
    """The config groups that the primary config's defaults list names (the reference)."""
    defaults = yaml.safe_load((ROOT / "algorithms" / "configs" / "config.yaml").read_text())["defaults"]
    return [next(iter(item)) for item in defaults if isinstance(item, dict)]


def test_the_cli_configs_resolve_as_package_data():
    configs = resources.files("algorithms.configs")
    assert configs.joinpath("config.yaml").is_file()
    groups = groups_in_defaults()
    assert {"algorithm", "space", "data", "trainer", "experiment", "debug"} <= set(groups)
    for group in groups:
        assert configs.joinpath(group).is_dir(), group
        assert any(entry.name.endswith(".yaml") for entry in configs.joinpath(group).iterdir()), group


def test_the_console_script_names_the_cli_entry_point():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"supernet-train": "algorithms.cli:cli"}
    from algorithms import cli

    assert callable(cli.cli) and cli.main.__wrapped__.__module__ == "algorithms.cli"
    assert "MIT" in (ROOT / "LICENSE").read_text() and project["license"] == "MIT"


def run(python_args: list[str], cwd: Path, pythonpath: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=pythonpath, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *python_args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def summary(stdout: str) -> dict:
    return json.loads(stdout[stdout.rindex("\n{") + 1:] if "\n{" in stdout else stdout[stdout.index("{"):])


@pytest.mark.slow
def test_the_installed_console_script_runs_outside_the_checkout(tmp_path):
    # built from a clean copy: setuptools writes build/ and *.egg-info next to the sources, and a stale build/
    # could carry files that the checkout no longer has
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "outputs",
                                                                "multirun", "lightning_logs"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(source)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("supernet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "algorithms" / "configs").rglob("*.yaml")}
    assert shipped and shipped <= names, sorted(shipped - names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)[:5]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "supernet-train = algorithms.cli:cli" in zipfile.ZipFile(wheel).read(entry_points).decode()

    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # the tiny test space and data module, without the rest of the checkout
    (tmp_path / "extra" / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "fakes.py", tmp_path / "extra" / "tests" / "fakes.py")
    pythonpath = f"{site}{os.pathsep}{tmp_path / 'extra'}"
    where = run(["-c", "import algorithms.cli, supernet; print(algorithms.cli.__file__); print(supernet.__file__)"],
                tmp_path, pythonpath)
    assert where.returncode == 0, where.stderr[-2000:]
    assert all(Path(line).is_relative_to(site) for line in where.stdout.split()), where.stdout

    # reference: the checkout's train.py with the same overrides
    reference = run([str(ROOT / "train.py"), *SPACE, f"hydra.run.dir={tmp_path / 'reference'}"], ROOT, str(ROOT))
    assert reference.returncode == 0, reference.stderr[-2000:]
    module = run(["-m", "algorithms.cli", *SPACE, f"hydra.run.dir={tmp_path / 'module'}"], tmp_path, pythonpath)
    assert module.returncode == 0, module.stderr[-2000:]
    for key in ["decisions", "architectures"]:
        assert summary(module.stdout)[key] == summary(reference.stdout)[key], key
    assert (json.loads((tmp_path / "module" / "search_space.json").read_text())
            == json.loads((tmp_path / "reference" / "search_space.json").read_text()))
    assert (tmp_path / "module" / "train.log").exists()

    # the [project.scripts] target itself, running a search on the tiny space
    script = "import sys; from algorithms.cli import cli; sys.argv[0] = 'supernet-train'; cli()"
    search = run(["-c", script, "--config-dir", str(ROOT / "tests" / "configs"), "space=tiny", "data=random",
                  "trainer=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "algorithm=darts",
                  f"hydra.run.dir={tmp_path / 'search'}"], tmp_path, pythonpath)
    assert search.returncode == 0, search.stderr[-2000:]
    arch = json.loads((tmp_path / "search" / "arch.json").read_text())
    assert set(arch) == {"width", "kernel", "depth", "block0", "block1"}
    assert (tmp_path / "search" / "checkpoints" / "last.ckpt").exists()
    assert not (tmp_path / "outputs").exists()


def test_the_checkout_keeps_the_hydra_tree_at_configs():
    """The design's layout: ``configs/`` at the top of the checkout is the tree the package ships."""
    from hydra import compose, initialize_config_dir

    top = Path(__file__).resolve().parent.parent / "configs"
    assert (top / "config.yaml").is_file() and top.resolve() == (top.parent / "algorithms" / "configs").resolve()
    with initialize_config_dir(str(top), version_base="1.3"):
        assert compose("config", overrides=["algorithm=gdas"]).algorithm.gumbel_hard is True
