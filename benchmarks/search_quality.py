"""Search quality against ground truth: what each one-shot algorithm finds in a space where every
architecture's from-scratch accuracy is known.

    python -m benchmarks.search_quality ground-truth    # trains all 64 architectures x 2 seeds (22 min, 1 thread)
    python -m benchmarks.search_quality run             # 6 algorithms x 3 seeds: docs/search_quality.{md,png,json}
    python -m benchmarks.search_quality run --algorithms spos enas darts-warmup --seeds 0 1 --quick --out /tmp/sq
    python -m benchmarks.search_quality report          # rewrite the doc and plot from docs/search_quality.json

The space, data and training recipe are in ``benchmarks/search_quality_space.py``. Every search gets
the same budget (``SEARCH``); random search gets the same wall-clock time, counted in trainings of one
architecture (see ``run`` and the doc). All on one thread, so times compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import supernet
from benchmarks.search_quality_space import ChainSpace, all_archs, arch_key, dataset, train_from_scratch

ROOT = Path(__file__).resolve().parent.parent
GROUND_TRUTH = ROOT / "benchmarks" / "ground_truth" / "chain3_v1.json"
# the ground-truth recipe (also written into the file's header)
GT_RECIPE = {"num_train": 3000, "num_test": 1000, "epochs": 8, "batch_size": 64, "learning_rate": 0.05,
             "seeds": [0, 1]}


# -- statistics --------------------------------------------------------------------------------------
def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b of two paired samples: (concordant - discordant) / sqrt(n0 - ties_x) / sqrt(n0 - ties_y),
    with n0 = n (n - 1) / 2 pairs; a pair tied in x or y is neither concordant nor discordant."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"kendall_tau needs two samples of the same length >= 2, got {len(x)} and {len(y)}")
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0:
                ties_x += 1
            if dy == 0:
                ties_y += 1
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = ((pairs - ties_x) * (pairs - ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else 0.0


def percentile(value: float, population: list[float]) -> float:
    """Where ``value`` stands in ``population``, in percent: the share of architectures strictly worse,
    plus half the share tied with it (the mid-rank convention, so the median architecture is at 50)."""
    below = sum(v < value for v in population)
    tied = sum(v == value for v in population)
    return 100.0 * (below + 0.5 * tied) / len(population)


# -- ground truth ------------------------------------------------------------------------------------
def _macs(net: torch.nn.Module, example: torch.Tensor) -> int:
    from algorithms import cost

    if hasattr(cost, "count_macs"):
        return int(cost.count_macs(net, example))
    return int(cost.count_flops(net, example)) // 2  # count_flops counts a multiply-add as two


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _dirty() -> list[str]:
    """Tracked files with uncommitted changes (the run used them, not the commit's version)."""
    try:
        lines = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line[3:] for line in lines]


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {platform.system()}, {torch.get_num_threads()} thread(s)"


def ground_truth(out: Path, limit: int | None = None) -> dict[str, Any]:
    """Train every architecture with each seed of GT_RECIPE; write ``out`` (rewritten after each architecture,
    so an interrupted run keeps what it has and resumes)."""
    torch.set_num_threads(1)
    r = GT_RECIPE
    train, test = dataset(r["num_train"], r["num_test"])
    done: dict[str, Any] = {}
    if out.exists():
        done = {row["key"]: row for row in json.loads(out.read_text())["architectures"]}
    header = {
        "command": "python -m benchmarks.search_quality ground-truth",
        "space": "benchmarks.search_quality_space.ChainSpace (3 layers x {conv3x3, conv5x5, maxpool, skip})",
        "data": "embedded shapes, five solid classes, 16x16 (benchmarks.search_quality_space.dataset)",
        "recipe": r, "torch": torch.__version__, "python": platform.python_version(),
        "date": datetime.date.today().isoformat(), "machine": _machine(), "commit": _commit(),
    }
    rows = []
    archs = all_archs()[:limit] if limit else all_archs()
    start = time.perf_counter()
    for index, arch in enumerate(archs):
        key = arch_key(arch)
        if key in done:
            rows.append(done[key])
            continue
        runs = [train_from_scratch(arch, seed, train, test, r["epochs"], r["batch_size"], r["learning_rate"])
                for seed in r["seeds"]]
        net = supernet.freeze(ChainSpace(), arch)
        accs = [run["accuracy"] for run in runs]
        rows.append({"key": key, "arch": arch, "accuracy": sum(accs) / len(accs), "accuracies": accs,
                     "train_seconds": sum(run["seconds"] for run in runs) / len(runs),
                     "params": sum(p.numel() for p in net.parameters()),
                     "macs": _macs(net, test[0][:1])})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**header, "architectures": rows}, indent=1) + "\n")
        print(f"[{index + 1}/{len(archs)}] {key}: {rows[-1]['accuracy']:.3f} ({time.perf_counter() - start:.0f}s)",
              flush=True)
    header["wall_seconds_last_run"] = round(time.perf_counter() - start)
    table = {**header, "architectures": rows}
    out.write_text(json.dumps(table, indent=1) + "\n")
    return table


def load_ground_truth(path: Path = GROUND_TRUTH) -> dict[str, Any]:
    """The ground-truth table: header fields and ``architectures`` (rows with key, arch, accuracy, ...)."""
    return json.loads(Path(path).read_text())


# -- searches ----------------------------------------------------------------------------------------
# One search budget for every algorithm (SEARCH["epochs"] over the same data), and one common setting of
# each algorithm's architecture learning rate for a search of a few hundred steps (the papers' rates are
# for tens of thousands): the planted-architecture tests' settings (tests/test_planted.py).
SEARCH = {"num_train": 3000, "epochs": 30, "batch_size": 64, "learning_rate": 0.05,
          "kendall_calibration_batches": 10}
QUICK = {"num_train": 256, "epochs": 1, "batch_size": 64, "learning_rate": 0.05, "kendall_calibration_batches": 2}
ALGORITHMS = ("darts", "darts2", "gumbel", "enas", "proxyless", "spos")
# an extra, opt-in: first-order DARTS whose first half of the same budget trains only the weights
VARIANTS = (*ALGORITHMS, "darts-warmup")


def build_algorithm(name: str, seed: int, learning_rate: float, epochs: int, quick: bool = False) -> Any:
    """The LightningModule of algorithm ``name`` on a fresh ``ChainSpace``."""
    from algorithms import DartsModule, EnasModule, ProxylessModule, SposModule
    from benchmarks.search_quality_space import CLASSES, IMAGE

    common = {"num_classes": CLASSES, "learning_rate": learning_rate, "seed": seed}
    shape = (3, IMAGE, IMAGE)
    space = ChainSpace()
    if name in ("darts", "darts2", "gumbel", "darts-warmup"):
        return DartsModule(space, order=2 if name == "darts2" else 1, gumbel=name == "gumbel",
                           warmup_epochs=epochs // 2 if name == "darts-warmup" else 0, arch_learning_rate=3e-3,
                           **common)
    if name == "enas":
        return EnasModule(space, controller_learning_rate=5e-3, baseline_decay=0.95, **common)
    if name == "proxyless":
        return ProxylessModule(space, arch_learning_rate=1e-2, example_input_shape=shape, **common)
    if name == "spos":
        small = {"population": 4, "generations": 1, "topk": 2, "bn_calibration_batches": 1, "eval_batches": 1}
        evolution = small if quick else {"population": 16, "generations": 3, "topk": 5}
        return SposModule(space, example_input_shape=shape, **evolution, **common)
    raise ValueError(f"unknown algorithm {name!r}; known: {list(VARIANTS)}")


def _search_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> Any:
    """The two disjoint halves of the training images, as the search data modules give them."""
    from pytorch_lightning.utilities import CombinedLoader
    from torch.utils.data import DataLoader, TensorDataset

    half = len(x) // 2
    g = torch.Generator().manual_seed(seed)
    return CombinedLoader({
        "train": DataLoader(TensorDataset(x[:half], y[:half]), batch_size=batch_size, shuffle=True, generator=g),
        "val": DataLoader(TensorDataset(x[half:], y[half:]), batch_size=batch_size, shuffle=True, generator=g),
    }, "max_size_cycle")


def search(name: str, seed: int, train: tuple[torch.Tensor, torch.Tensor], budget: dict[str, Any],
           quick: bool = False) -> tuple[Any, dict[str, Any], float]:
    """Run one search; (module, exported architecture, wall seconds)."""
    import pytorch_lightning as pl

    torch.manual_seed(seed)
    module = build_algorithm(name, seed, budget["learning_rate"], budget["epochs"], quick)
    trainer = pl.Trainer(max_epochs=budget["epochs"], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=_search_loader(*train, budget["batch_size"], seed))
    arch = module.export()
    return module, arch, time.perf_counter() - start


def supernet_kendall(module: Any, rows: list[dict[str, Any]], train: tuple[torch.Tensor, torch.Tensor],
                     test: tuple[torch.Tensor, torch.Tensor], calibration_batches: int,
                     batch_size: int = 250) -> float:
    """Kendall tau between inherited-weight accuracy on the test images (BN recalibrated on training
    batches, SposModule.score) and ground-truth accuracy, over ``rows``."""
    calibration = [(train[0][i:i + 64], train[1][i:i + 64]) for i in range(0, 64 * calibration_batches, 64)]
    evaluation = [(test[0][i:i + batch_size], test[1][i:i + batch_size]) for i in range(0, len(test[0]), batch_size)]
    inherited = [module.score(row["arch"], calibration, evaluation) for row in rows]
    return kendall_tau(inherited, [row["accuracy"] for row in rows])


def random_search(rows: list[dict[str, Any]], evaluations: int, repeats: int = 2000,
                  seed: int = 0) -> list[float]:
    """Percentiles of random search's pick over ``repeats`` simulated runs: ``evaluations`` distinct
    architectures drawn uniformly, each "trained" once (one seed of the ground truth, drawn at random),
    the best of them by that one training picked, and scored by its ground-truth (mean) accuracy."""
    import random

    rng = random.Random(seed)
    population = [row["accuracy"] for row in rows]
    k = max(1, min(evaluations, len(rows)))
    picks = []
    for _ in range(repeats):
        sample = rng.sample(rows, k)
        best = max(sample, key=lambda row: rng.choice(row["accuracies"]))
        picks.append(percentile(best["accuracy"], population))
    return picks


def training_time_now(rows: list[dict[str, Any]], recipe: dict[str, Any], count: int = 4) -> dict[str, Any]:
    """The ground truth's mean training time of one architecture (one seed), rescaled to this machine's
    speed now: ``count`` architectures (a fixed sample) are retrained with the first seed, and the
    recorded mean is scaled by (time now / time recorded) over them. Also returns the retrained
    accuracies next to the recorded ones (a check that the ground truth reproduces)."""
    import random

    train, test = dataset(recipe["num_train"], recipe["num_test"])
    sample = random.Random(0).sample(rows, count)
    now = [train_from_scratch(row["arch"], recipe["seeds"][0], train, test, recipe["epochs"], recipe["batch_size"],
                              recipe["learning_rate"]) for row in sample]
    scale = sum(r["seconds"] for r in now) / sum(row["train_seconds"] for row in sample)
    recorded = sum(row["train_seconds"] for row in rows) / len(rows)
    return {"seconds": recorded * scale, "recorded_seconds": recorded, "scale": scale,
            "check": [(row["key"], row["accuracies"][0], r["accuracy"]) for row, r in zip(sample, now)]}


def run(algorithms: list[str], seeds: list[int], out: Path, quick: bool = False,
        ground_truth_path: Path = GROUND_TRUTH) -> dict[str, Any]:
    """Every algorithm over every seed; writes ``out``/search_quality.md and .png; returns the results."""
    torch.set_num_threads(1)
    import logging
    import warnings

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    budget = QUICK if quick else SEARCH
    table = load_ground_truth(ground_truth_path)
    rows = table["architectures"]
    by_key = {row["key"]: row for row in rows}
    population = [row["accuracy"] for row in rows]
    train, _ = dataset(budget["num_train"], 2)
    _, test = dataset(2, table["recipe"]["num_test"])
    start = time.perf_counter()
    commit, dirty = _commit(), _dirty()  # the code the run imports now, not what the checkout holds at its end
    results: list[dict[str, Any]] = []
    taus: list[float] = []
    for name in algorithms:
        for seed in seeds:
            module, arch, seconds = search(name, seed, train, budget, quick)
            row = by_key[arch_key(arch)]
            results.append({"algorithm": name, "seed": seed, "arch": row["key"], "accuracy": row["accuracy"],
                            "percentile": percentile(row["accuracy"], population), "seconds": seconds})
            print(f"{name} seed {seed}: {row['key']} acc {row['accuracy']:.3f} "
                  f"(percentile {results[-1]['percentile']:.0f}) in {seconds:.0f}s "
                  f"[{time.perf_counter() - start:.0f}s]", flush=True)
            if name == "spos":
                sample = rows[:8] if quick else rows
                taus.append(supernet_kendall(module, sample, train, test, budget["kendall_calibration_batches"]))
                print(f"  spos supernet Kendall tau over {len(sample)} architectures: {taus[-1]:.3f}", flush=True)
    if quick:  # no retraining: the recorded time
        timing = {"seconds": sum(row["train_seconds"] for row in rows) / len(rows), "scale": 1.0, "check": []}
    else:
        timing = training_time_now(rows, table["recipe"])
        print(f"one architecture trains in {timing['seconds']:.1f}s now (x{timing['scale']:.2f} the recorded time); "
              f"retrained: {timing['check']}", flush=True)
    train_seconds = timing["seconds"]
    mean_search = sum(r["seconds"] for r in results) / len(results)
    evaluations = max(1, round(mean_search / train_seconds))
    picks = sorted(random_search(rows, evaluations))
    words = sys.argv[1:] if sys.argv[1:2] == ["run"] else ["run"]
    command = " ".join(["python -m benchmarks.search_quality", *words])
    summary = {"results": results, "kendall_tau": taus, "random": {
        "evaluations": evaluations, "mean": sum(picks) / len(picks), "low": picks[len(picks) // 10],
        "high": picks[(9 * len(picks)) // 10], "train_seconds": train_seconds, "search_seconds": mean_search,
        "timing": timing},
        "best_accuracy": max(population), "median_accuracy": sorted(population)[len(population) // 2],
        "wall_seconds": time.perf_counter() - start, "quick": quick, "commit": commit, "dirty": dirty,
        "machine": _machine(), "command": command, "budget": budget, "ground_truth": table}
    write_outputs(summary, out)
    print(f"wrote {out / 'search_quality.md'} and {out / 'search_quality.png'} "
          f"({summary['wall_seconds']:.0f}s)", flush=True)
    return summary


def write_outputs(summary: dict[str, Any], out: Path) -> None:
    """``out``/search_quality.json (the results, without the ground-truth table), .md and .png."""
    out.mkdir(parents=True, exist_ok=True)
    results = {k: v for k, v in summary.items() if k != "ground_truth"}
    (out / "search_quality.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "search_quality.md").write_text(report(summary))
    plot(summary, out / "search_quality.png")


def rewrite_outputs(out: Path, ground_truth_path: Path = GROUND_TRUTH) -> None:
    """Regenerate the doc and the plot from ``out``/search_quality.json (no search is rerun)."""
    summary = json.loads((out / "search_quality.json").read_text())
    write_outputs({**summary, "ground_truth": load_ground_truth(ground_truth_path)}, out)


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per algorithm: seeds, mean percentile, mean ground-truth accuracy, the archs found."""
    rows = []
    for name in dict.fromkeys(r["algorithm"] for r in summary["results"]):
        mine = [r for r in summary["results"] if r["algorithm"] == name]
        rows.append({"algorithm": name, "seeds": len(mine),
                     "percentile": sum(r["percentile"] for r in mine) / len(mine),
                     "accuracy": sum(r["accuracy"] for r in mine) / len(mine),
                     "seconds": sum(r["seconds"] for r in mine) / len(mine),
                     "parameter_free": sum(op in PARAMETER_FREE for r in mine for op in r["arch"].split("-"))
                     / sum(len(r["arch"].split("-")) for r in mine),
                     "archs": [r["arch"] for r in mine]})
    return rows


PARAMETER_FREE = ("maxpool", "skip")
SETTINGS = ("darts: first order, arch lr 3e-3 (Adam); darts2: the same, second order (unrolled); gumbel: DARTS with "
            "Gumbel-softmax mixing, temperature 1 -> 0.1; enas: controller lr 5e-3, baseline decay 0.95, "
            "the rest the authors' defaults; proxyless: arch lr 1e-2, no resource term; spos: uniform path sampling, "
            "then evolution with population 16, 3 generations, top-k 5, BN recalibrated on 20 batches, "
            "scored on 10 batches of the held-out half; darts-warmup (opt-in): darts whose first half of the "
            "epochs trains only the weights.")


def _verdict(row: dict[str, Any], rnd: dict[str, Any]) -> str:
    place = "above" if row["percentile"] > 50 else "at or below"
    if row["percentile"] < rnd["low"]:
        versus = "worse than random search with the same time (below its 10th percentile)"
    elif row["percentile"] > rnd["high"]:
        versus = "better than random search with the same time (above its 90th percentile)"
    else:
        versus = "within random search's band: no better than random search with the same time"
    free = row["parameter_free"]
    return (f"- **{row['algorithm']}**: mean percentile {row['percentile']:.1f}, {place} the median architecture; "
            f"{versus}. {100 * free:.0f}% of its exported ops are parameter-free (maxpool / skip; 50% of "
            f"the space's ops).")


def _headline(summary: dict[str, Any]) -> str:
    rows, rnd = table_rows(summary), summary["random"]
    above = [r["algorithm"] for r in rows if r["percentile"] > 50]
    better = [r["algorithm"] for r in rows if r["percentile"] > rnd["high"]]
    each = ", ".join(f"{r['algorithm']} {r['percentile']:.0f}" for r in rows)
    return (f"**In short**: {len(above)} of {len(rows)} algorithms place their export above the median "
            f"architecture on average over seeds (mean percentiles: {each}); "
            + (f"{', '.join(better)} beat" if better else "none beats")
            + f" random search given the same wall-clock time (mean percentile {rnd['mean']:.0f}, "
            f"{rnd['evaluations']} evaluations).")


def report(summary: dict[str, Any]) -> str:
    """docs/search_quality.md: the setup, the table, the plot, the random-search and Kendall tau figures,
    and where each algorithm stands."""
    rnd, table, budget = summary["random"], summary["ground_truth"], summary["budget"]
    rows = sorted(table["architectures"], key=lambda r: -r["accuracy"])
    population = [r["accuracy"] for r in rows]
    band = f"{rnd['mean']:.0f} ({rnd['low']:.0f}-{rnd['high']:.0f})"
    skip = next(r for r in rows if set(r["arch"].values()) == {"skip"})
    taus = summary["kendall_tau"]
    recipe = table["recipe"]
    out = ["# Search quality against ground truth", "",
           "What each one-shot algorithm finds, judged against every architecture of a small space trained "
           "from scratch. Generated by `" + summary["command"] + "`" + (" (**--quick: a smoke test, not a "
           "measurement**)" if summary["quick"] else "") + ".", "",
           f"- commit: `{summary['commit']}`" + (" with uncommitted changes to " + ", ".join(
               f"`{f}`" for f in summary["dirty"]) if summary["dirty"] else ""),
           f"- machine: {summary['machine']} (a 2-core CPU shared with other jobs; times drift)",
           f"- wall time of the run: {summary['wall_seconds'] / 60:.1f} min", *(
               [f"- results: {summary['reconstructed_from_log']}"] if "reconstructed_from_log" in summary else []),
           *(f"- note: {note}" for note in summary.get("notes", [])),
           "",
           _headline(summary), "",
           "## Space and ground truth", "",
           "`benchmarks/search_quality_space.py`: `ChainSpace`, a stem conv3x3 (16 channels), three searched "
           "layers (layer0, a 2x2 average pool, layer1, layer2), each a LayerChoice of conv3x3 / conv5x5 "
           "(conv-BN-ReLU) / maxpool3x3 / skip, global average pooling and a linear classifier: "
           f"{len(rows)} architectures. Data: the embedded shapes task's five solid shapes at 16x16 "
           f"({recipe['num_train']} training and {recipe['num_test']} test images; at 16x16 the striped classes "
           "alias, so they are left out).", "",
           f"Ground truth (`benchmarks/ground_truth/{GROUND_TRUTH.name}`, regenerated by "
           f"`{table['command']}`, {table['machine']}, torch {table['torch']}, {table['date']}): every architecture "
           f"trained from scratch for {recipe['epochs']} epochs (SGD lr {recipe['learning_rate']}, momentum 0.9, "
           f"cosine, batch {recipe['batch_size']}) with seeds {recipe['seeds']}; accuracy on the test images, "
           f"mean over the seeds. Best {population[0]:.3f} (`{rows[0]['key']}`), median "
           f"{summary['median_accuracy']:.3f}, worst {population[-1]:.3f} (`{rows[-1]['key']}`); all-skip "
           f"{skip['accuracy']:.3f} (percentile {percentile(skip['accuracy'], population):.0f}). Chance is 0.200. "
           "Top five: " + ", ".join(f"`{r['key']}` {r['accuracy']:.3f}" for r in rows[:5]) + ".", "",
           "## Searches", "",
           f"The same budget for every algorithm: {budget['epochs']} epochs over the ground truth's "
           f"{budget['num_train']} training images, split in two halves (weights learn on one, the architecture "
           f"on the other; SPOS trains on one and scores candidates on the other), batch {budget['batch_size']}, "
           f"weight lr {budget['learning_rate']} (SGD, cosine). The test images are never searched on. One "
           "setting per algorithm, fixed before the runs (the planted-architecture tests' settings for a "
           "search of a few hundred steps; the papers' architecture learning rates are for tens of thousands): "
           + SETTINGS, "",
           "Percentile: the share of the space's architectures with a lower ground-truth accuracy, ties "
           "counted half (the median architecture is at 50, the best at "
           f"{percentile(population[0], population):.1f}).", "",
           "## Results", "",
           "| algorithm | seeds | mean percentile | mean GT accuracy | best possible accuracy | "
           "random-search percentile, mean (10th-90th) | mean search time (s) | architectures found |",
           "|---|---|---|---|---|---|---|---|"]
    for row in table_rows(summary):
        out.append(f"| {row['algorithm']} | {row['seeds']} | {row['percentile']:.1f} | {row['accuracy']:.3f} | "
                   f"{summary['best_accuracy']:.3f} | {band} | {row['seconds']:.0f} | "
                   f"{', '.join(f'`{a}`' for a in row['archs'])} |")
    out += ["", "![percentile per algorithm; random search as a band](search_quality.png)", "",
            "## Random search with the same wall-clock budget", "",
            f"Random search gets K = round(mean search wall time / mean time to train one architecture once) = "
            f"round({rnd['search_seconds']:.0f} s / {rnd['train_seconds']:.1f} s) = {rnd['evaluations']} "
            "evaluations: the mean over all searches of this run, and the ground truth's mean training time "
            "of one architecture with one seed, rescaled to the machine's speed during this run (four "
            f"architectures retrained at its end took x{rnd['timing']['scale']:.2f} their recorded time; both "
            "on one thread). A random search draws K "
            "distinct architectures uniformly, trains each once (it reads the accuracy of one ground-truth "
            "seed, drawn at random: it sees the seed noise a real one would), picks the best by that, and is "
            "scored by the pick's ground-truth (mean) accuracy. The band is the 10th-90th percentile over "
            f"2000 simulated random searches. K evaluations are {100 * rnd['evaluations'] / len(rows):.0f}% of "
            "this space; random search is a strong baseline on larger spaces too (Li & Talwalkar, 2019; "
            "Yang et al., 2020).", ""]
    if rnd["timing"].get("recorded_seconds") and not summary["quick"]:
        k = max(1, round(rnd["search_seconds"] / rnd["timing"]["recorded_seconds"]))
        picks = sorted(random_search(rows, k))
        out += [f"The count is sensitive to the machine's load: with the ground truth's recorded training time "
                f"({rnd['timing']['recorded_seconds']:.1f} s, measured while the machine was busier) K would be "
                f"{k}, and random search's percentile {sum(picks) / len(picks):.0f} "
                f"({picks[len(picks) // 10]:.0f}-{picks[(9 * len(picks)) // 10]:.0f}).", ""]
    if rnd["timing"]["check"]:
        out += ["The retrained architectures reproduce the ground truth's first seed (recorded -> now): "
                + ", ".join(f"`{key}` {a:.3f} -> {b:.3f}" for key, a, b in rnd["timing"]["check"]) + ".", ""]
    out += ["## Weight sharing: Kendall tau", "",
            ("After each SPOS search, the trained uniform-sampling supernet scores every architecture with "
             "inherited weights (BatchNorm statistics recalibrated on "
             f"{budget['kendall_calibration_batches']} training batches, exact average; accuracy on the test "
             "images) and Kendall's tau-b is taken against the ground truth: "
             + ", ".join(f"{t:.3f}" for t in taus) + f" (seeds), mean {sum(taus) / len(taus):.3f}.")
            if taus else "No SPOS search in this run: no supernet ranking was measured.", "",
            "## Where each algorithm stands", ""]
    out += [_verdict(row, rnd) for row in table_rows(summary)]
    darts = [row for row in table_rows(summary) if row["algorithm"] in ("darts", "darts2", "gumbel")]
    if darts:
        free = sum(row["parameter_free"] for row in darts) / len(darts)
        collapsed = "collapsed to" if free > 0.5 else "did not collapse to"
        steps = budget["epochs"] * -(-budget["num_train"] // 2 // budget["batch_size"])
        out += ["", f"In this run the DARTS variants {collapsed} parameter-free ops: {100 * free:.0f}% of their "
                "exported ops are maxpool / skip, against 50% of the space's ops. The collapse grows with the "
                "length of the search (skip connections multiply with the search epochs: Liang et al., 2019, "
                "DARTS+, which stops the search for that reason, as Zela et al.'s DARTS-ES does); this search "
                f"is short ({steps} weight steps on a three-layer chain)."]
    spos = [row for row in table_rows(summary) if row["algorithm"] == "spos"]
    if spos and taus:
        out += ["", f"SPOS and ENAS choose with inherited weights (SPOS's evolution and ENAS's export both score "
                f"candidates on the shared supernet), and in this run that supernet ranks the space poorly (mean "
                f"Kendall tau {sum(taus) / len(taus):.2f}): SPOS lands at percentile {spos[0]['percentile']:.0f}. "
                "The lever is the supernet's ranking (longer supernet training, more data, BN recalibration on "
                "more batches); this benchmark does not measure how far each goes."]
    out += ["", "## Why, and what fixes it", "",
            "DARTS's continuous relaxation favours parameter-free operations (the usual explanation: early in "
            "a search they give the mixed output a useful signal while the convolutions are still untrained, "
            "so their weights grow), and the discretised architecture is full of skip connections and "
            "pooling. On NAS-Bench-201 "
            "DARTS collapses to all-skip cells and does worse than random (Dong & Yang, 2020); Zela "
            "et al. (2020) tie the failure to sharp minima of the validation loss in the architecture "
            "parameters (large Hessian eigenvalue) and fix it with early stopping on that eigenvalue "
            "(DARTS-ES) and stronger regularisation of the weights (L2, ScheduledDropPath); later fixes are "
            "Fair DARTS (sigmoid instead of softmax, Chu et al., 2020), DARTS- (an auxiliary skip, Chu et "
            "al., 2021), and a warm-up of the weights before the architecture steps (`warmup_epochs`). "
            "Path-sampling methods (ENAS, SPOS, ProxylessNAS's binary gates) train one path at a time, so "
            "an untrained convolution is not drowned by a parameter-free op in a weighted sum, but their "
            "ranking is only as good as the supernet's: a Kendall tau well below 1 is the usual finding "
            "(Yu et al., 2020, 'Evaluating the search phase of NAS'; Zhang et al., 2020).", ""]
    return "\n".join(out) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    """Percentile per algorithm (one point per seed, a bar at the mean); random search as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table_rows(summary)
    rnd = summary["random"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.axhspan(rnd["low"], rnd["high"], color="tab:orange", alpha=0.2,
               label=f"random search, {rnd['evaluations']} evaluations (10th-90th)")
    ax.axhline(rnd["mean"], color="tab:orange", lw=1)
    ax.axhline(50, color="grey", ls=":", lw=1, label="median architecture")
    for i, row in enumerate(rows):
        points = [r["percentile"] for r in summary["results"] if r["algorithm"] == row["algorithm"]]
        ax.scatter([i] * len(points), points, color="tab:blue", alpha=0.6, zorder=3)
        ax.hlines(row["percentile"], i - 0.25, i + 0.25, color="tab:blue", lw=2, zorder=3)
    ax.set_xticks(range(len(rows)), [row["algorithm"] for row in rows])
    ax.set_ylim(0, 102)
    ax.set_ylabel("percentile of the exported architecture")
    ax.set_title(f"Search quality on ChainSpace ({len(summary['ground_truth']['architectures'])} architectures)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- command line ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gt = sub.add_parser("ground-truth", help="train every architecture from scratch and write the table")
    gt.add_argument("--out", type=Path, default=GROUND_TRUTH)
    gt.add_argument("--limit", type=int, default=None, help="only the first N architectures (a trial)")
    rn = sub.add_parser("run", help="search with every algorithm and seed; write the doc's table and plot")
    rn.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=VARIANTS)
    rn.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    rn.add_argument("--quick", action="store_true", help="a tiny budget (a smoke test, not a measurement)")
    rn.add_argument("--out", type=Path, default=ROOT / "docs", help="folder of search_quality.md / .png")
    rn.add_argument("--ground-truth", type=Path, default=GROUND_TRUTH)
    rp = sub.add_parser("report", help="rewrite search_quality.md / .png from the last run's search_quality.json")
    rp.add_argument("--out", type=Path, default=ROOT / "docs")
    rp.add_argument("--ground-truth", type=Path, default=GROUND_TRUTH)
    args = parser.parse_args(argv)
    if args.command == "ground-truth":
        ground_truth(args.out, args.limit)
    elif args.command == "report":
        rewrite_outputs(args.out, args.ground_truth)
    else:
        run(args.algorithms, args.seeds, args.out, args.quick, args.ground_truth)


if __name__ == "__main__":
    sys.exit(main())
