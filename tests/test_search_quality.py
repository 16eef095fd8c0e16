"""The search-quality benchmark: its statistics, its ground-truth file and a quick run."""

from __future__ import annotations

import math

import pytest

import supernet
from benchmarks.search_quality import (
    GROUND_TRUTH,
    kendall_tau,
    load_ground_truth,
    percentile,
    random_search,
    rewrite_outputs,
    run,
)
from benchmarks.search_quality_space import ChainSpace, all_archs, arch_key


def test_kendall_tau_matches_a_hand_computation():
    # y = 3 1 2 5 4 against increasing x: discordant pairs (3,1) (3,2) (5,4), the other 7 concordant
    assert kendall_tau([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]) == pytest.approx((7 - 3) / 10)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_kendall_tau_with_ties_is_tau_b():
    # pairs: 3 concordant, 1 discordant, one tied in x only, one tied in y only, of 6:
    # tau-b = (3 - 1) / sqrt((6 - 1) * (6 - 1))
    assert kendall_tau([1, 2, 2, 3], [1, 3, 2, 2]) == pytest.approx(2 / math.sqrt(5 * 5))


def test_percentile_is_the_mid_rank_share_below():
    assert percentile(3, [1, 2, 3, 4]) == pytest.approx(100 * 2.5 / 4)
    assert percentile(4, [1, 2, 3, 4]) == pytest.approx(100 * 3.5 / 4)
    assert percentile(2, [2, 2, 1, 3]) == pytest.approx(100 * (1 + 0.5 * 2) / 4)


def test_random_search_picks_by_one_training_and_scores_by_the_ground_truth():
    # both seeds agree with the mean: evaluating every architecture always finds the best one
    rows = [{"key": str(i), "accuracy": i / 10, "accuracies": [i / 10, i / 10]} for i in range(10)]
    assert set(random_search(rows, 10, repeats=50)) == {percentile(0.9, [r["accuracy"] for r in rows])}
    # one evaluation is a uniform draw: its mean percentile is 50 (mid-rank)
    picks = random_search(rows, 1, repeats=4000)
    assert sum(picks) / len(picks) == pytest.approx(50, abs=2)
    # the pick follows the single training, not the mean: here seed noise reverses two architectures
    noisy = [{"key": "a", "accuracy": 0.5, "accuracies": [0.9, 0.9]},
             {"key": "b", "accuracy": 0.6, "accuracies": [0.1, 0.1]}]
    assert set(random_search(noisy, 2, repeats=20)) == {percentile(0.5, [0.5, 0.6])}


def test_ground_truth_covers_every_architecture_once_with_sane_numbers():
    table = load_ground_truth()
    rows = table["architectures"]
    keys = [row["key"] for row in rows]
    assert len(keys) == len(set(keys)) == supernet.search_space(ChainSpace()).size == 64
    assert set(keys) == {arch_key(arch) for arch in all_archs()}
    for field in ("command", "torch", "date", "machine", "recipe"):
        assert table[field]
    assert table["command"].startswith("python -m benchmarks.search_quality ground-truth")
    for row in rows:
        assert arch_key(row["arch"]) == row["key"]
        assert row["accuracy"] == pytest.approx(sum(row["accuracies"]) / len(row["accuracies"]))
        assert len(row["accuracies"]) == len(table["recipe"]["seeds"])
        assert all(0 <= a <= 1 for a in row["accuracies"])
        assert row["macs"] > 0 and row["train_seconds"] > 0
    by_key = {row["key"]: row for row in rows}
    for key in ("conv5x5-conv5x5-conv5x5", "skip-skip-skip", "conv3x3-maxpool-skip"):
        net = supernet.freeze(ChainSpace(), by_key[key]["arch"])
        assert by_key[key]["params"] == sum(p.numel() for p in net.parameters())
    # the ops genuinely differ: the best is well above chance (5 classes), the all-skip net near the bottom
    accuracies = sorted(row["accuracy"] for row in rows)
    assert accuracies[-1] > 0.4
    assert percentile(by_key["skip-skip-skip"]["accuracy"], accuracies) < 25
    assert by_key["conv5x5-skip-skip"]["macs"] > by_key["conv3x3-skip-skip"]["macs"] > by_key["skip-skip-skip"]["macs"]


def test_run_quick_writes_the_table_rows(tmp_path):
    summary = run(["spos"], [0], tmp_path, quick=True)
    population = [row["accuracy"] for row in load_ground_truth(GROUND_TRUTH)["architectures"]]
    (result,) = summary["results"]
    assert result["percentile"] == pytest.approx(percentile(result["accuracy"], population))
    assert -1 <= summary["kendall_tau"][0] <= 1
    text = (tmp_path / "search_quality.md").read_text()
    assert f"| spos | 1 | {result['percentile']:.1f} | {result['accuracy']:.3f} | {max(population):.3f} |" in text
    assert (tmp_path / "search_quality.png").stat().st_size > 0
    # the report subcommand rewrites the same doc from the saved results
    (tmp_path / "search_quality.md").unlink()
    rewrite_outputs(tmp_path)
    assert (tmp_path / "search_quality.md").read_text() == text


def test_ground_truth_reproduces_from_its_recipe():
    from benchmarks.search_quality_space import dataset, train_from_scratch

    table = load_ground_truth()
    recipe = table["recipe"]
    row = next(r for r in table["architectures"] if r["key"] == "skip-skip-skip")  # the cheapest to retrain
    train, test = dataset(recipe["num_train"], recipe["num_test"])
    again = train_from_scratch(row["arch"], recipe["seeds"][0], train, test, recipe["epochs"], recipe["batch_size"],
                               recipe["learning_rate"])
    assert again["accuracy"] == pytest.approx(row["accuracies"][0], abs=0.005)
