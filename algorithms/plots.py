"""Pictures of a search: architecture weights over epochs, reward / fitness curves, the exported
cell as a diagram and the chosen value of every decision."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["plot_arch_weights", "plot_cells", "plot_choices", "plot_curve"]


def plot_arch_weights(history: Sequence[Mapping[str, Sequence[float]]], names: Mapping[str, Sequence[str]],
                      path: str | os.PathLike, max_labels: int = 16) -> None:
    """One small panel per label: the probability of each option, epoch by epoch."""
    labels = list(history[0])[:max_labels] if history else []
    if not labels:
        return
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    epochs = list(range(1, len(history) + 1))
    for ax, label in zip(axes.flat, labels):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        series = list(zip(*(h[label] for h in history)))
        for i, values in enumerate(series):
            option = names.get(label, [])[i] if i < len(names.get(label, [])) else str(i)
            ax.plot(epochs, values, marker="o", markersize=3, label=str(option))
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle("architecture weights (softmax) per epoch")
    fig.supxlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curve(values: Mapping[str, Sequence[float]], path: str | os.PathLike, title: str, xlabel: str) -> None:
    """Line plot of a few named series (controller reward and baseline, evolution fitness)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, series in values.items():
        ax.plot(range(1, len(series) + 1), series, marker="o", markersize=3, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_OP = re.compile(r"^(?P<cell>.+)/op_(?P<node>\d+)_(?P<slot>\d+)$")


def cells_of(arch: Mapping[str, Any]) -> dict[str, list[tuple[int, str, int]]]:
    """For each cell label in ``arch``: (node, operator, input) of every operator slot."""
    cells: dict[str, list[tuple[int, str, int]]] = {}
    for label, value in arch.items():
        match = _OP.match(label)
        if match is None:
            continue
        inputs = arch.get(f"{match['cell']}/input_{match['node']}_{match['slot']}")
        if not inputs:
            continue
        cells.setdefault(match["cell"], []).append((int(match["node"]), str(value), int(inputs[0])))
    return cells


def plot_cells(arch: Mapping[str, Any], path: str | os.PathLike, num_predecessors: int = 2,
               loose_end: bool = False) -> bool:
    """Draw every cell of ``arch`` (labels ``{cell}/op_i_k`` and ``{cell}/input_i_k``) as a DAG;
    the output concatenates every node, or only the unused ones with ``loose_end``.

    Returns False when ``arch`` has no cell."""
    cells = cells_of(arch)
    if not cells:
        return False
    fig, axes = plt.subplots(len(cells), 1, figsize=(9, 3.2 * len(cells)), squeeze=False)
    for ax, (name, edges) in zip(axes.flat, sorted(cells.items())):
        nodes = sorted({node for node, _, _ in edges})
        used = {inp for _, _, inp in edges}
        positions = {i: (0.0, 1.0 - i) for i in range(num_predecessors)}
        for k, node in enumerate(nodes):
            positions[node] = (1.5 + 1.4 * k, 0.5 + (0.6 if k % 2 else -0.6))
        output = (1.5 + 1.4 * len(nodes), 0.5)
        for node, op, inp in edges:
            (x0, y0), (x1, y1) = positions[inp], positions[node]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 1.2,
                                    "connectionstyle": "arc3,rad=0.15"})
            ax.text(x0 + 0.4 * (x1 - x0), y0 + 0.4 * (y1 - y0) + 0.08, op, fontsize=7, ha="center",
                    color="tab:blue")
        for node in nodes:
            if not loose_end or node not in used:
                ax.annotate("", xy=output, xytext=positions[node],
                            arrowprops={"arrowstyle": "->", "color": "gray", "lw": 0.8, "ls": "--"})
        for i, (x, y) in positions.items():
            text = f"c_{{k-{num_predecessors - i}}}" if i < num_predecessors else str(i - num_predecessors)
            ax.text(x, y, f"${text}$" if i < num_predecessors else text, ha="center", va="center",
                    bbox={"boxstyle": "round", "fc": "lightyellow" if i < num_predecessors else "lightblue"})
        ax.text(*output, "out", ha="center", va="center", bbox={"boxstyle": "round", "fc": "lightgreen"})
        ax.set_title(f"cell '{name}'")
        ax.set_xlim(-0.5, output[0] + 0.5)
        ax.set_ylim(-1.6, 1.9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_choices(arch: Mapping[str, Any], path: str | os.PathLike, max_rows: int = 60) -> None:
    """The chosen value of every decision, as a table picture."""
    rows = [(label, str(value)) for label, value in arch.items()][:max_rows]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 0.8))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=["decision", "chosen"], loc="center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.1)
    title = "exported architecture" + (f" (first {max_rows} of {len(arch)})" if len(arch) > max_rows else "")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
