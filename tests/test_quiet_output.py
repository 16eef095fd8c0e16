"""A normal run prints no deprecation warnings and no vendor tips (issue 18, item 7).

Three messages are dropped because a run cannot act on them: torch's FutureWarning about ``LeafSpec``,
which Lightning's own CombinedLoader triggers on every fit, and Lightning's two tips advertising its cloud
logger and model registry ("💡 Tip: ... litlogger", "... litmodels"). Lightning's other lines (the devices,
a batch count below the logging interval, a dataloader with few workers) say something true about the run
and are kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from algorithms.quiet import quiet_vendor_messages

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--config-dir", str(ROOT / "tests" / "configs"), "space=tiny", "data=random", "trainer=cpu",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "finetune.epochs=1"]
NOISE = re.compile(r"DeprecationWarning|FutureWarning|is deprecated|💡|Tip:|litlogger")


def noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if NOISE.search(line)]


@pytest.fixture(autouse=True)
def _restore_filters():
    """quiet_vendor_messages changes process-wide state: undo it after each test."""
    log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    before = list(log.filters)
    with warnings.catch_warnings():
        yield
    log.filters[:] = before


def test_lightnings_leafspec_deprecation_is_silenced_and_other_future_warnings_are_not():
    from pytorch_lightning.utilities._pytree import _tree_flatten

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _tree_flatten([1, 2])  # what CombinedLoader does with the dataloaders on every fit
    assert any("LeafSpec" in str(w.message) for w in caught), "torch no longer warns: drop the filter"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_vendor_messages()
        _tree_flatten([1, 2])
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated (from our own code)", FutureWarning, stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    # only Lightning's call is silenced: the same text raised elsewhere, and any other warning, still show
    assert [str(w.message) for w in caught] == ["`isinstance(treespec, LeafSpec)` is deprecated (from our own code)",
                                                "something else is deprecated"]


def test_lightnings_tips_are_dropped_and_its_device_lines_kept(caplog, tmp_path):
    import pytorch_lightning as pl

    from algorithms.quiet import _no_vendor_tip

    log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    log.removeFilter(_no_vendor_tip)  # importing algorithms installed it already (the fixture puts it back)
    before = len(log.filters)
    quiet_vendor_messages()
    quiet_vendor_messages()  # twice (a multirun calls it per job): one filter
    assert len(log.filters) == before + 1
    with caplog.at_level(logging.INFO):  # no logger: the litlogger tip (litmodels's comes with a fit)
        pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                   default_root_dir=tmp_path)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("GPU available:") for m in messages), messages
    assert not noise("\n".join(messages)), messages


def cli(*args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # warnings as a user sees them
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_space_mode_prints_no_warnings(tmp_path):
    out = cli(*TINY, "mode=space", f"hydra.run.dir={tmp_path / 'space'}", cwd=tmp_path)
    assert "architectures" in out and not noise(out), noise(out)
    assert "Warning" not in out


@pytest.mark.slow
def test_search_finetune_and_export_print_no_deprecations_or_tips(tmp_path):
    run = tmp_path / "search"
    out = cli(*TINY, "algorithm=darts", "finetune_after=true", f"hydra.run.dir={run}", cwd=tmp_path)
    assert "GPU available:" in out  # Lightning's honest lines stay
    assert not noise(out), noise(out)
    out = cli(*TINY, "mode=finetune", f"arch={run / 'arch.json'}", "inherit_weights=true",
              f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp_path / 'ft'}", cwd=tmp_path)
    assert '"test_accuracy"' in out and not noise(out), noise(out)
    out = cli(*TINY, "mode=export", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
              f"hydra.run.dir={tmp_path / 'export'}", cwd=tmp_path)
    assert json.loads((tmp_path / "export" / "arch.json").read_text()) and not noise(out), noise(out)


@pytest.mark.slow
def test_the_quickstart_search_prints_no_deprecations_or_tips(tmp_path):
    # experiment=quickstart itself (NASNet, embedded data, DARTS, fine-tuning after), with less data
    out = cli("experiment=quickstart", "data.num_train=64", "data.num_test=64", "trainer.limit_val_batches=1",
              "finetune.epochs=1", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert '"finetune"' in out and not noise(out), noise(out)


# -- a space's repr is readable: decisions named, candidates' layers not dumped ---------------------------
HUB_SPACES = ["MobileNetV3Space", "ShuffleNetSpace", "AutoformerSpace", "ProxylessNAS", "NASNet", "DARTS", "ENAS",
              "AmoebaNet", "PNAS", "NasBench201", "NasBench101"]


SLOW = pytest.mark.slow  # over 4 s each on 2 cores (building the space, or converting it)


@pytest.mark.parametrize("name", [pytest.param(n, marks=SLOW) if n in ("NASNet", "AmoebaNet", "PNAS") else n
                                  for n in HUB_SPACES])
def test_a_hub_space_prints_in_under_200_lines_naming_every_decision(name):
    # before: MobileNetV3Space 502 lines, ShuffleNetSpace 1288, ProxylessNAS 2390, NASNet 11978, DARTS 5592,
    # AmoebaNet/PNAS 8468, NasBench201 1650 (their converted supernets: up to 6985)
    import hub
    import supernet
    from supernet.primitives.layer_choice import LayerChoice

    space = getattr(hub, name)()
    text = repr(space)
    assert len(text.splitlines()) < 200
    for label in supernet.search_space(space):
        assert label in text, label
    for choice in space.modules():  # every LayerChoice's candidates are named (in the line or the cell's)
        if isinstance(choice, LayerChoice):
            assert all(repr(n) in text for n in choice.names), choice.label


@pytest.mark.parametrize("family", ["path_sampling", "differentiable", "binary_gate"])
@pytest.mark.parametrize("name", ["ShuffleNetSpace", "NasBench201", "NasBench101",
                                  *(pytest.param(n, marks=SLOW) for n in ("MobileNetV3Space", "ProxylessNAS", "DARTS",
                                                                         "AutoformerSpace"))])
def test_a_converted_supernet_prints_in_under_200_lines_naming_its_mixed_ops(name, family):
    import hub
    from supernet.oneshot import convert

    net, _ = convert(getattr(hub, name)(), family)
    text = repr(net)
    assert len(text.splitlines()) < 200
    mixed = {type(m).__name__ for m in net.modules() if getattr(m, "is_mixed", False)}
    assert mixed and all(kind in text for kind in mixed), mixed


def test_the_readme_space_prints_its_choices_in_torch_layout():
    import torch

    import supernet.nn as nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            width = nn.ValueChoice([16, 32], label="width")
            self.stem = nn.Conv2d(3, width, 3, padding=1)
            self.blocks = nn.Repeat(lambda i: nn.LayerChoice([nn.Conv2d(width, width, 3, padding=1), nn.Identity()],
                                                             label=f"op{i}"), (1, 3), label="depth")
            self.skip = nn.InputChoice(2, n_chosen=None, label="skip")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.skip([x, self.blocks(self.stem(x))])

    assert repr(Net()).splitlines() == [
        "Net(",
        "  (stem): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), "
        "choices: out_channels=ValueChoice([16, 32], label='width'))",
        "  (blocks): Repeat(",
        "    depth=[1, 2, 3], label='depth'",
        "    (blocks): ModuleList(",
        "      (0): LayerChoice(label='op0', candidates={'0': Conv2d, '1': Identity})",
        "      (1): LayerChoice(label='op1', candidates={'0': Conv2d, '1': Identity})",
        "      (2): LayerChoice(label='op2', candidates={'0': Conv2d, '1': Identity})",
        "    )",
        "  )",
        "  (skip): InputChoice(n_candidates=2, n_chosen=None, reduction='sum', label='skip')",
        ")",
    ]


API_RUN = """
import torch, pytorch_lightning as pl
import supernet.nn as nn
from algorithms import DartsModule

class Space(nn.Module):
    def __init__(self):
        super().__init__()
        self.op = nn.LayerChoice([nn.Linear(4, 3), nn.Sequential(nn.Linear(4, 3), nn.ReLU())], label="op")

    def forward(self, x):
        return self.op(x)

data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randint(0, 3, (32,)))
trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)
trainer.fit(DartsModule(Space(), num_classes=3), torch.utils.data.DataLoader(data, batch_size=8))
print("done")
"""


def test_a_search_through_the_python_api_prints_no_deprecations_or_tips():
    """The README's Python route (import algorithms, pl.Trainer(...).fit) is as quiet as the CLI."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"} | {"OMP_NUM_THREADS": "1",
                                                                           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", API_RUN], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-2000:]
    assert noise(done.stdout + done.stderr) == []
