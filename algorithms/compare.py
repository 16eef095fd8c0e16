"""What a search found, in one line, and how it compares with a random architecture of the same space
trained the same way (``compare_random=true``): is the search better than chance?"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

import supernet

__all__ = ["comparison_line", "describe", "random_baseline"]


def describe(arch: Mapping[str, Any]) -> str:
    """``arch`` on one line: per cell ``{cell}: node=op(input)+op(input), ...``, then ``label=value``
    for every other decision."""
    from algorithms.plots import cells_of

    cells = cells_of(arch)
    parts = []
    for cell, edges in cells.items():
        nodes: dict[int, list[str]] = {}
        for node, _, op, inp in edges:
            nodes.setdefault(node, []).append(f"{op}({inp})")
        parts.append(f"{cell}: " + ", ".join(f"{node}={'+'.join(ops)}" for node, ops in nodes.items()))
    in_cells = {f"{cell}/{kind}_{node}_{slot}" for cell, edges in cells.items() for node, slot, _, _ in edges
                for kind in ("op", "input")}
    parts += [f"{label}={value}" for label, value in arch.items() if label not in in_cells]
    return "; ".join(parts[: len(cells)]) + ("; " if cells and len(parts) > len(cells) else "") + ", ".join(
        parts[len(cells):])


def random_baseline(cfg: DictConfig, out: Path, space: torch.nn.Module, found: Mapping[str, Any]
                    ) -> tuple[dict[str, Any], str]:
    """Fine-tune ``supernet.sample(space, seed=cfg.seed)`` exactly as the found architecture was (the same
    ``finetune`` settings, data and seed), in ``out/random`` (its ``arch.json`` and fine-tuning results);
    returns its summary and the comparison line."""
    from algorithms.tasks import _finetune_net, _write_json

    arch = supernet.sample(space, seed=cfg.seed)
    folder = out / "random"
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "arch.json", arch)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    result = {"arch": str(folder / "arch.json"), **_finetune_net(cfg, folder, supernet.freeze(space, arch), space)}
    return result, comparison_line(found, result, cfg.seed)


def comparison_line(found: Mapping[str, Any], random: Mapping[str, Any], seed: int) -> str:
    """One line: the test score (``test_<score>``, e.g. ``test_accuracy``), parameters and multiply-adds of
    the found and the random architecture, and their difference in points of the score."""
    key = next((k for k in found if k.startswith("test_")), "test_score")
    name = key[len("test_"):]

    def facts(r: Mapping[str, Any]) -> str:
        score = r.get(key)
        return f"test {name} {'n/a' if score is None else f'{score:.3f}'}, {r['params']:,} params, {r['flops']:,} MACs"

    line = f"found: {facts(found)} | random (supernet.sample seed {seed}), same training: {facts(random)}"
    if found.get(key) is not None and random.get(key) is not None:
        line += f" | found - random: {100 * (found[key] - random[key]):+.1f} points (one run each)"
    return line
