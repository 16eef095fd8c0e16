"""Checkpoints describe themselves (issue 18, item 3): a search checkpoint records its space, algorithm, task and
data configuration, so export, fine-tuning with inherited weights and resume need no repeated overrides,
``<Algorithm>.load_from_checkpoint(path)`` works with no other argument, and a checkpoint naming code outside
the NAS classes is refused. Runs go through ``algorithms.tasks.run`` in-process; configs are composed with
Hydra's override list (as the command line has it) unless a test says otherwise."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

import hub
import supernet
from algorithms import DartsModule, EnasModule, ProxylessModule, SposModule, checkpoints
from algorithms.base import OneShotAlgorithm
from algorithms.checkpoints import CheckpointError
from algorithms.tasks import UserError, run
from tests.fakes import RandomImageDataModule, TinyConvSpace

ROOT = Path(__file__).resolve().parent.parent
BASE = ["data=random", "trainer=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "finetune.epochs=1", "data.num_train=64",
        f"hydra.searchpath=[file://{ROOT / 'tests' / 'configs'}]"]
# a hub space at its smallest, and an algorithm other than the default: export must take both from the file
SEARCH = ["algorithm=enas", "algorithm.controller_aggregate=1", "space=nasbench201", "space.stem_out_channels=4",
          "space.num_modules_per_stack=1"]


def config(*overrides: str, with_overrides: bool = True, base: list[str] = BASE):
    """The composed config; ``with_overrides``: it carries Hydra's list of command-line overrides."""
    with initialize_config_dir(config_dir=str(ROOT / "algorithms" / "configs"), version_base="1.3"):
        return compose("config", overrides=[*base, *overrides], return_hydra_config=with_overrides)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("enas") / "run"
    run(config(*SEARCH), out)
    return out


def _last(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


# -- the command line ---------------------------------------------------------------------------------------
def test_a_search_checkpoint_records_space_algorithm_task_and_data(searched):
    saved = torch.load(_last(searched), map_location="cpu", weights_only=True)["config"]
    assert saved["space"] == {"_target_": "hub.NasBench201", "stem_out_channels": 4, "num_modules_per_stack": 1,
                              "num_labels": 10}
    assert saved["algorithm"]["_target_"] == "algorithms.EnasModule" and saved["algorithm"]["controller_aggregate"] == 1
    assert saved["data"]["_target_"] == "tests.fakes.RandomImageDataModule" and saved["data"]["num_train"] == 64
    assert saved["task"]["_target_"] == "algorithms.task.ClassificationTask"


def test_export_needs_no_space_or_algorithm_overrides(searched, tmp_path):
    run(config("mode=export", f"ckpt_path={_last(searched)}"), tmp_path)
    assert json.loads((tmp_path / "arch.json").read_text()) == json.loads((searched / "arch.json").read_text())


def test_export_of_a_search_on_data_of_your_own_needs_no_data_override(searched, tmp_path):
    """The search read tests.fakes.RandomImageDataModule (not a library class); export builds no data module,
    so it need not be named (fine-tuning, which builds it, needs data=... or a registered class)."""
    with initialize_config_dir(config_dir=str(ROOT / "algorithms" / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["mode=export", f"ckpt_path={_last(searched)}"], return_hydra_config=True)
    run(cfg, tmp_path)
    assert json.loads((tmp_path / "arch.json").read_text()) == json.loads((searched / "arch.json").read_text())


def test_finetune_with_inherited_weights_needs_no_space_overrides(searched, tmp_path):
    summary = run(config("mode=finetune", f"arch={searched / 'arch.json'}", "inherit_weights=true",
                         f"ckpt_path={_last(searched)}"), tmp_path)
    space = hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1, num_labels=10)
    arch = json.loads((searched / "arch.json").read_text())
    assert summary["params"] == sum(p.numel() for p in supernet.freeze(space, arch).parameters())


@pytest.mark.parametrize(("override", "message"), [
    ("space=nasbench201 space.stem_out_channels=8", r"space.stem_out_channels=4, but the command line gives "
                                  r"space.stem_out_channels=8"),
    ("algorithm=darts", r"algorithm._target_='algorithms.EnasModule', but the command line gives "
                        r"algorithm._target_='algorithms.DartsModule'"),
    ("space=nasnet", r"space._target_='hub.NasBench201', but the command line gives space._target_='hub.NASNet'"),
])
def test_an_override_that_contradicts_the_checkpoint_is_refused_naming_both_values(searched, tmp_path, override,
                                                                                     message):
    with pytest.raises(UserError, match=rf"^ckpt_path='.*last.ckpt' was written with {message}"):
        run(config("mode=export", f"ckpt_path={_last(searched)}", *override.split()), tmp_path)


def test_an_override_that_repeats_the_checkpoint_is_accepted(searched, tmp_path):
    run(config("mode=export", f"ckpt_path={_last(searched)}", *SEARCH), tmp_path)
    assert json.loads((tmp_path / "arch.json").read_text()) == json.loads((searched / "arch.json").read_text())


def test_without_the_override_list_the_whole_config_must_agree(searched, tmp_path):
    """``run(cfg)`` from Python with no Hydra override list: every value of the config counts as given."""
    with pytest.raises(UserError, match=r"space._target_='hub.NasBench201', but the command line gives "
                                        r"space._target_='hub.NASNet'"):
        run(config("mode=export", f"ckpt_path={_last(searched)}", with_overrides=False), tmp_path / "default")
    run(config("mode=export", f"ckpt_path={_last(searched)}", *SEARCH, with_overrides=False), tmp_path / "same")


def test_resume_reads_space_and_algorithm_from_the_checkpoint(searched, tmp_path):
    run(config(f"ckpt_path={_last(searched)}", "trainer.max_epochs=2"), tmp_path)
    with open(tmp_path / "logs" / "search" / "metrics.csv") as f:
        assert {row["epoch"] for row in csv.DictReader(f)} == {"1"}, "only the epoch the checkpoint lacks"
    assert json.loads((tmp_path / "arch.json").read_text()).keys() == json.loads(
        (searched / "arch.json").read_text()).keys()


def test_mode_space_shows_the_space_of_a_checkpoint(searched, tmp_path):
    summary = run(config("mode=space", f"ckpt_path={_last(searched)}"), tmp_path)
    expected = supernet.search_space(hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1, num_labels=10))
    assert summary["decisions"] == len(expected) and summary["architectures"] == expected.size


def test_finetune_reads_ckpt_path_only_with_inherit_weights(searched, tmp_path):
    with pytest.raises(UserError, match="mode=finetune reads ckpt_path only with inherit_weights=true"):
        run(config("mode=finetune", f"arch={searched / 'arch.json'}", f"ckpt_path={_last(searched)}"), tmp_path)


def test_the_old_name_ckpt_is_one_line_naming_the_new_one(tmp_path):
    from algorithms.cli import describe

    with pytest.raises(UserError, match=r"^ckpt= is now ckpt_path= \(one name for the checkpoint to read\): "
                                        r"ckpt_path=/some/last.ckpt$"):
        run(config("mode=export", "+ckpt=/some/last.ckpt"), tmp_path)  # added with +: not ignored either

    with pytest.raises(ConfigCompositionException) as error:
        config("mode=export", "ckpt=/some/last.ckpt")
    assert describe(error.value) == "ckpt= is now ckpt_path= (one name for the checkpoint to read: export, " \
                                    "finetune with inherit_weights=true, resume): ckpt_path=/some/last.ckpt"


# -- Python: load_from_checkpoint ----------------------------------------------------------------------------
def _same_tensors(module: torch.nn.Module, state: dict) -> None:
    got = module.state_dict()
    assert got.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(got[key].cpu(), value), key


def test_load_from_checkpoint_of_a_command_line_run_needs_no_argument(searched):
    path = _last(searched)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for cls in (EnasModule, OneShotAlgorithm):  # the base class gives the checkpoint's own class
        module = cls.load_from_checkpoint(path)
        assert type(module) is EnasModule and module.hparams.controller_aggregate == 1
        _same_tensors(module, checkpoint["state_dict"])
        assert module.export() == json.loads((searched / "arch.json").read_text())


def test_load_from_checkpoint_rebuilds_the_task_a_command_line_run_recorded(tmp_path):
    base = [a for a in BASE if not a.startswith("data")]
    run(config("data=regression", "task=regression", "space=mlp", "data.num_train=64", "data.num_test=16",
               base=base), tmp_path)
    module = DartsModule.load_from_checkpoint(_last(tmp_path))
    assert type(module.task).__name__ == "RegressionTask" and module.task.metric_name == "mse"
    _same_tensors(module, torch.load(_last(tmp_path), map_location="cpu", weights_only=True)["state_dict"])


def test_load_from_checkpoint_of_another_algorithm_names_both(searched):
    with pytest.raises(CheckpointError, match=r"was written by EnasModule, not DartsModule: load it with "
                                              r"EnasModule.load_from_checkpoint"):
        DartsModule.load_from_checkpoint(_last(searched))


def _fit_and_save(module: pl.LightningModule, path: Path) -> None:
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    trainer.fit(module, datamodule=RandomImageDataModule(num_train=64, num_test=16, batch_size=16, search=True))
    trainer.save_checkpoint(path)


OPTIONS = {"enas": {"export_samples": 2, "export_batches": 1},
           "spos": {"population": 3, "generations": 1, "topk": 2, "bn_calibration_batches": 1, "eval_batches": 1}}


@pytest.mark.parametrize(("cls", "options"), [(DartsModule, {}), (EnasModule, OPTIONS["enas"]),
                                              (ProxylessModule, {}), (SposModule, OPTIONS["spos"])])
def test_load_from_checkpoint_of_a_python_run_on_a_hub_space(cls, options, tmp_path):
    space = hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1, num_labels=10)
    module = cls(space, learning_rate=0.05, **options)
    _fit_and_save(module, tmp_path / "last.ckpt")
    before = torch.get_rng_state()
    loaded = cls.load_from_checkpoint(tmp_path / "last.ckpt")
    assert torch.equal(torch.get_rng_state(), before), "loading leaves the global random state alone"
    assert type(loaded) is cls and loaded.hparams.learning_rate == 0.05
    _same_tensors(loaded, {k: v.cpu() for k, v in module.state_dict().items()})
    assert loaded.export() == module.export()


def test_a_space_of_your_own_is_passed_or_registered(tmp_path):
    module = DartsModule(TinyConvSpace(num_labels=4), num_classes=4)
    _fit_and_save(module, tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match=r"names 'tests.fakes.TinyConvSpace', which is not a class of hub, "
                                              r"supernet, algorithms, datamodules and was not registered.*space="):
        DartsModule.load_from_checkpoint(tmp_path / "last.ckpt")
    _same_tensors(DartsModule.load_from_checkpoint(tmp_path / "last.ckpt", space=TinyConvSpace(num_labels=4)),
                  module.state_dict())
    checkpoints.register(TinyConvSpace)
    try:
        _same_tensors(DartsModule.load_from_checkpoint(tmp_path / "last.ckpt"), module.state_dict())
    finally:
        checkpoints._REGISTERED.pop(checkpoints.class_path(TinyConvSpace))


def test_a_task_given_in_python_is_given_again_when_loading(tmp_path):
    from algorithms.task import RegressionTask

    space = hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1, num_labels=10)
    module = DartsModule(space, task=RegressionTask(metric="mae"))
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match=r"was written for the task .*'regression'.*, which it cannot "
                                              r"rebuild: pass it, DartsModule.load_from_checkpoint\(path, task=...\)"):
        DartsModule.load_from_checkpoint(tmp_path / "last.ckpt")
    loaded = DartsModule.load_from_checkpoint(tmp_path / "last.ckpt", task=RegressionTask(metric="mae"))
    assert loaded.task.describe() == module.task.describe()
    _same_tensors(loaded, module.state_dict())


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "algorithms" / "configs" / "space").glob("*.yaml")))
def test_every_configured_hub_space_records_its_constructor(name):
    """Every space of configs/space is a supernet.nn.Module, which records its constructor call, so a Python run on
    any of them loads with no space argument (shown building and recording the two smallest below)."""
    from hydra.utils import get_class

    target = yaml.safe_load((ROOT / "algorithms" / "configs" / "space" / f"{name}.yaml").read_text())["_target_"]
    assert issubclass(get_class(target), supernet.nn.Module)


def test_the_recorded_constructor_is_plain_data_that_builds_the_same_space():
    space = hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1, num_labels=10)
    recorded = checkpoints.space_config(space)
    assert recorded == {"_target_": "hub.nasbench201.NasBench201", "stem_out_channels": 4,
                        "num_modules_per_stack": 1, "num_labels": 10}
    again = checkpoints.build(recorded, torch.nn.Module, "test")
    assert supernet.search_space(again).to_json() == supernet.search_space(space).to_json()
    assert checkpoints.space_config(hub.mlp.MLPSpace(in_features=3, num_outputs=1, widths=[4, 8], depth=(1, 2),
                                                     activations=["relu"]))["depth"] == (1, 2)


class MyDarts(DartsModule):
    """An algorithm of your own (outside the library's packages)."""


def test_an_algorithm_of_your_own_loads_through_its_own_class(tmp_path):
    space = hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1, num_labels=10)
    module = MyDarts(space)
    _fit_and_save(module, tmp_path / "last.ckpt")
    loaded = MyDarts.load_from_checkpoint(tmp_path / "last.ckpt")
    assert type(loaded) is MyDarts
    _same_tensors(loaded, module.state_dict())
    with pytest.raises(CheckpointError, match=r"names '(tests\.)?test_checkpoints\.MyDarts', which is not a class"):
        DartsModule.load_from_checkpoint(tmp_path / "last.ckpt")


def test_a_space_that_records_no_constructor_needs_the_space_argument(tmp_path):
    class Plain(torch.nn.Module):  # a plain torch module: nothing records how it was built
        def __init__(self) -> None:
            super().__init__()
            self.conv = supernet.nn.LayerChoice([torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 1)],
                                                label="op")
            self.head = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.head(self.conv(x).mean((2, 3)))

    _fit_and_save(DartsModule(Plain(), num_classes=4), tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match=r"does not record how to build its space .*"
                                              r"DartsModule.load_from_checkpoint\(path, space=MySpace\(...\)\)"):
        DartsModule.load_from_checkpoint(tmp_path / "last.ckpt")
    assert DartsModule.load_from_checkpoint(tmp_path / "last.ckpt", space=Plain()).export().keys() == {"op"}


# -- a checkpoint from elsewhere runs nothing ---------------------------------------------------------------
def _hostile(tmp_path: Path, source: Path, section: str, value) -> Path:
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    checkpoint["config"][section] = value
    path = tmp_path / "hostile.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("target", [
    {"_target_": "os.system", "command": "touch {marker}"},
    {"_target_": "subprocess.call", "args": ["touch", "{marker}"]},
    {"_target_": "hub.NasBench201", "stem_out_channels": {"_target_": "os.system", "command": "touch {marker}"}},
    {"_target_": "algorithms.tasks.Path", "_args_": ["{marker}"]},  # a class imported into our module
    {"_target_": "hub.NasBench201", "stem_out_channels": "${oc.env:HOME}"},
])
def test_a_checkpoint_naming_code_outside_the_nas_classes_is_refused(searched, tmp_path, target):
    marker = tmp_path / "code_ran"
    target = json.loads(json.dumps(target).replace("{marker}", str(marker)))
    path = _hostile(tmp_path, _last(searched), "space", target)
    with pytest.raises(UserError, match=r"^ckpt_path=.* is refused|^ckpt_path=.* names .*nothing is built"):
        run(config("mode=export", f"ckpt_path={path}"), tmp_path / "export")
    with pytest.raises(CheckpointError, match=r"is refused|nothing is built"):
        EnasModule.load_from_checkpoint(path)
    path = _hostile(tmp_path, _last(searched), "algorithm", {**target, "_target_": "os.system"})
    with pytest.raises(CheckpointError, match=r"names 'os.system', which is not a class of hub"):
        OneShotAlgorithm.load_from_checkpoint(path)
    assert not marker.exists(), "building from the checkpoint ran its payload"


class _RunsCode:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_from_checkpoint_reads_plain_data_only(searched, tmp_path):
    marker = tmp_path / "code_ran"
    checkpoint = torch.load(_last(searched), map_location="cpu", weights_only=True)
    checkpoint["payload"] = _RunsCode(marker)
    torch.save(checkpoint, tmp_path / "pickled.ckpt")
    with pytest.raises(CheckpointError, match="is refused: it holds pickled objects that are not plain data"):
        EnasModule.load_from_checkpoint(tmp_path / "pickled.ckpt")
    with pytest.raises(ValueError, match="weights_only=False is not offered"):
        EnasModule.load_from_checkpoint(tmp_path / "pickled.ckpt", weights_only=False)
    assert not marker.exists()
