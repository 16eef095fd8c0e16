"""The run's pictures: per-step history, legends that name the candidates, hidden-label notes, automatic
y-scales, cell diagrams whose labels sit on their own edges without overlap and whose nodes are arch.json's,
pictures and step scalars in TensorBoard, a summary that names only files that exist, and the comparison
with a random architecture of the same space."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import matplotlib
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

import hub
import supernet
from algorithms import DartsModule, EnasModule, history, plots
from algorithms.tasks import run
from tests.fakes import RandomImageDataModule, TinyConvSpace

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
TINY = ["space=tiny", "data=random", "trainer=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "finetune.epochs=1", "data.num_train=64",
        f"hydra.searchpath=[file://{ROOT / 'tests' / 'configs'}]"]


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "algorithms" / "configs"), version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


def fit(module: pl.LightningModule, epochs: int, record) -> pl.Trainer:
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[record], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=RandomImageDataModule(num_train=128, search=True))  # 2 batches per epoch
    return trainer


# -- the history -------------------------------------------------------------------------------------------
def test_history_records_the_architecture_weights_once_per_training_step():
    module, record = DartsModule(TinyConvSpace(), arch_learning_rate=0.1), history.SearchHistory()
    fit(module, 2, record)
    assert record.steps == [1, 2, 3, 4]
    assert len(record.arch_weights) == 4
    final = {label: torch.softmax(module.arch.alpha_of(label).detach(), -1).tolist() for label in module.arch.labels()}
    for label, probs in final.items():
        assert record.arch_weights[-1][label] == pytest.approx(probs, abs=1e-7)
    assert record.arch_weights[0] != record.arch_weights[1], "each row is its own step's state"
    assert record.names == {"width": ["8", "12"], "kernel": ["3", "5"], "depth": ["1", "2"],
                             "block0": ["conv", "pool"], "block1": ["conv", "pool"]}


def test_history_keeps_at_most_max_rows_by_doubling_its_stride():
    module, record = DartsModule(TinyConvSpace()), history.SearchHistory(max_rows=3)
    fit(module, 4, record)  # 8 steps: stride 1 -> 2 -> 4
    assert record.steps == [4, 8]
    assert len(record.arch_weights) == 2


def test_history_records_the_enas_controller_per_step():
    module, record = EnasModule(TinyConvSpace(), controller_aggregate=1), history.SearchHistory()
    fit(module, 2, record)
    for name in ("controller/reward", "controller/baseline", "controller/entropy"):
        steps = [step for step, _ in record.scalars[name]]
        assert steps == [1, 2, 3, 4], name
    rewards = [value for _, value in record.scalars["controller/reward"]]
    assert all(-0.01 <= r <= 1.01 for r in rewards)


def test_candidate_names_of_a_darts_cell_edge_are_its_operators_and_none():
    space = hub.NASNet(width=4, num_cells=3, dataset="cifar", num_labels=10)
    module = DartsModule(space)
    names = history.candidate_names(module)
    assert set(names) == set(module.arch.labels())
    cell = next(m for m in module.supernet.modules() if hasattr(m, "op_names"))
    assert names["normal/edge_2_0"] == [*cell.op_names, "none"]
    assert all(len(names[label]) == module.arch.alpha_of(label).numel() for label in names)


# -- the architecture-weights picture ----------------------------------------------------------------------
def _rows(labels: list[str], steps: int, low: float = 0.10, high: float = 0.14) -> list[dict[str, list[float]]]:
    rows = []
    for s in range(steps):
        p = low + (high - low) * s / max(1, steps - 1)
        rows.append({label: [p, 1 - p] for label in labels})
    return rows


def _legend_texts(fig) -> list[list[str]]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [[t.get_text() for t in legend.get_texts()] for legend in legends]


def test_arch_weights_legends_name_every_candidate():
    names = {"a": ["sep_conv_3x3", "skip_connect"], "b": ["k3", "k5"]}
    fig = plots.draw_arch_weights([1, 2, 3], _rows(["a", "b"], 3), names)
    assert ["sep_conv_3x3", "skip_connect"] in _legend_texts(fig)
    assert ["k3", "k5"] in _legend_texts(fig)


def test_arch_weights_say_how_many_labels_are_hidden_and_which_are_shown():
    labels = [f"l{i}" for i in range(10)]
    rows = [{label: [0.5 + 0.01 * i * s, 0.5 - 0.01 * i * s] for i, label in enumerate(labels)} for s in range(3)]
    fig = plots.draw_arch_weights([1, 2, 3], rows, {label: ["x", "y"] for label in labels}, max_labels=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title() in labels]
    assert titles == ["l9", "l8", "l7", "l6"], "the labels whose weights moved most"
    notes = [t.get_text() for t in fig.texts]
    assert any("6 of 10 labels hidden" in note and "moved most" in note for note in notes), notes
    fig = plots.draw_arch_weights([1, 2, 3], rows, {label: ["x", "y"] for label in labels}, max_labels=10)
    assert sorted(ax.get_title() for ax in fig.axes if ax.get_title() in labels) == labels
    assert not any("hidden" in t.get_text() for t in fig.texts)


def test_arch_weights_y_scale_follows_the_data():
    fig = plots.draw_arch_weights([1, 2, 3, 4], _rows(["a"], 4, 0.10, 0.14), {"a": ["x", "y"]})
    ax = next(ax for ax in fig.axes if ax.get_title() == "a")
    low, high = ax.get_ylim()
    data = [0.10, 0.14, 0.86, 0.90]
    assert low <= min(data) and high >= max(data)
    assert high - low <= 1.3 * (max(data) - min(data))
    fig = plots.draw_arch_weights([1, 2], [{"a": [0.30, 0.32, 0.38]}, {"a": [0.31, 0.32, 0.37]}], {"a": list("xyz")})
    low, high = next(ax for ax in fig.axes if ax.get_title() == "a").get_ylim()
    assert 0.2 < low <= 0.30 and 0.38 <= high < 0.5, "not the fixed [0, 1]"


def test_arch_weights_show_the_mean_entropy_per_step():
    rows = [{"a": [0.5, 0.5]}, {"a": [0.9, 0.1]}]
    fig = plots.draw_arch_weights([1, 2], rows, {"a": ["x", "y"]})
    ax = next(ax for ax in fig.axes if "entropy" in ax.get_title())
    x, y = ax.lines[0].get_data()
    assert list(x) == [1, 2]
    assert list(y) == pytest.approx([math.log(2), -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))])


# -- the cell diagram --------------------------------------------------------------------------------------
def _nasnet_archs() -> list[dict]:
    space = hub.NASNet(width=4, num_cells=3, dataset="cifar", num_labels=10)
    archs = [supernet.sample(space, seed=seed) for seed in range(4)]
    # the hardest case: every op of a node from the same input, and long edges from the cell's inputs
    crowded = dict(archs[0])
    for node in range(2, 7):
        for slot in (0, 1):
            crowded[f"normal/input_{node}_{slot}"] = [0 if node % 2 else node - 1]
    return [*archs, crowded]


@pytest.mark.parametrize("index", range(5))
def test_cell_edge_labels_sit_on_their_own_edges_without_overlap(index):
    arch = _nasnet_archs()[index]
    fig = plots.draw_cells(arch)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.texts if (t.get_gid() or "").startswith("edge:")]
        cell = ax.get_title().split("'")[1]
        slots = sorted(k for k in arch if k.startswith(f"{cell}/op_"))
        assert sorted(t.get_gid()[5:] for t in labels) == slots
        for t in labels:
            assert t.get_text() == arch[t.get_gid()[5:]]
        boxes = [t.get_window_extent(renderer) for t in labels]
        for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
            assert not a.overlaps(b), f"{labels[i].get_gid()} and {labels[j].get_gid()} overlap"
        # each label's centre lies on the curve of its own edge
        paths = {p.get_gid()[5:]: p for p in ax.patches if (p.get_gid() or "").startswith("edge:")}
        for t, box in zip(labels, boxes):
            centre = ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)
            patch = paths[t.get_gid()[5:]]
            points = patch.get_transform().transform([segment(i / 200) for segment, _ in
                                                      patch.get_path().iter_bezier() for i in range(201)])
            assert min(math.dist(centre, p) for p in points) < 3.0, t.get_gid()


def test_cell_node_names_are_the_indices_arch_json_uses():
    arch = _nasnet_archs()[0]
    fig = plots.draw_cells(arch)
    for ax in fig.axes:
        cell = ax.get_title().split("'")[1]
        nodes = {int(k.split("_")[1]) for k in arch if k.startswith(f"{cell}/op_")}
        inputs = {i for k, v in arch.items() if k.startswith(f"{cell}/input_") for i in v}
        shown = {t.get_text() for t in ax.texts if t.get_gid() == "node"}
        assert shown == {str(i) for i in nodes | inputs | {0, 1}} | {"out"}


def test_choices_picture_lists_every_decision_of_a_large_space():
    arch = {f"stage{i}/block{j}/kernel": 3 + 2 * (j % 3) for i in range(6) for j in range(20)}
    fig = plots.draw_choices(arch)
    cells = [cell.get_text().get_text() for ax in fig.axes for table in ax.tables
             for cell in table.get_celld().values()]
    assert set(arch) <= set(cells)
    assert fig.get_size_inches()[1] < 30, "several columns rather than one page-long table"


# -- a run through the CLI's tasks ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def darts_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("darts") / "run"
    summary = run(config("algorithm=darts", "finetune_after=true", "compare_random=true",
                         "trainer.log_every_n_steps=1"), out)
    return out, summary


def test_tensorboard_holds_the_pictures_and_the_step_weights(darts_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = darts_run
    events = EventAccumulator(str(out / "tensorboard" / "search"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert {"pictures/arch_weights", "pictures/choices"} <= set(events.Tags()["images"])
    assert {"arch_weights/block0/conv", "arch_weights/block0/pool", "arch/mean_entropy"} <= set(
        events.Tags()["scalars"])
    conv = [e.value for e in events.Scalars("arch_weights/block0/conv")]
    pool = [e.value for e in events.Scalars("arch_weights/block0/pool")]
    assert [a + b for a, b in zip(conv, pool)] == pytest.approx([1.0] * len(conv), abs=1e-5)


def _paths(value) -> list[str]:
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _paths(v)]
    return [value] if isinstance(value, str) and value.startswith("/") else []


def test_search_summary_names_only_files_that_exist(darts_run):
    out, summary = darts_run
    paths = _paths(summary)
    assert str(out / "arch.json") in paths and str(out / "finetune" / "results.json") in paths
    assert str(out / "choices.png") in paths and str(out / "arch_weights.png") in paths
    for path in paths:
        assert Path(path).exists(), path
    assert not (out / "cell.png").exists() and not (out / "topk.json").exists()


def test_comparison_with_a_random_architecture_trained_the_same_way(darts_run):
    out, summary = darts_run
    space = TinyConvSpace()
    random_arch = supernet.sample(space, seed=0)
    assert summary["random"]["arch"] == str(out / "random" / "arch.json")
    assert json.loads((out / "random" / "arch.json").read_text()) == random_arch
    net = supernet.freeze(space, random_arch)
    assert summary["random"]["params"] == sum(p.numel() for p in net.parameters())
    results = json.loads((out / "random" / "finetune" / "results.json").read_text())
    assert results["test_accuracy"] == summary["random"]["test_accuracy"]
    found, rand = summary["finetune"], summary["random"]
    line = summary["comparison"]
    assert "\n" not in line
    assert f"{found['test_accuracy']:.3f}" in line and f"{rand['test_accuracy']:.3f}" in line
    assert f"{found['params']:,}" in line and f"{rand['params']:,}" in line


def test_search_summary_says_what_was_found(darts_run):
    out, summary = darts_run
    arch = json.loads((out / "arch.json").read_text())
    assert summary["found"] == ", ".join(f"{label}={value}" for label, value in arch.items())


def test_what_was_found_reads_a_cell_per_node():
    from algorithms.compare import describe

    arch = {"normal/op_2_0": "sep_conv_3x3", "normal/input_2_0": [0], "normal/op_2_1": "skip_connect",
            "normal/input_2_1": [1], "normal/op_3_0": "max_pool_3x3", "normal/input_3_0": [2],
            "normal/op_3_1": "none", "normal/input_3_1": [0], "width": 16}
    assert describe(arch) == ("normal: 2=sep_conv_3x3(0)+skip_connect(1), 3=max_pool_3x3(2)+none(0); width=16")
