"""Pictures of a search, made to be read at a glance: architecture weights per training step (candidate
names in the legends, the mean entropy, automatic y-scales), reward / fitness curves, the exported cell as a
layered diagram whose nodes carry arch.json's indices and whose operator labels sit on their own edges
without overlap, and the chosen value of every decision as a table.

Each picture has a ``draw_*`` function that returns the matplotlib figure (what the tests inspect) and a
``plot_*`` function that writes it to a PNG and returns its path.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Circle, PathPatch  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["cells_of", "draw_arch_weights", "draw_cells", "draw_choices", "draw_curves", "plot_arch_weights",
           "plot_cells", "plot_choices", "plot_curves", "to_tensorboard"]

DPI = 110


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def _colour(i: int, n: int) -> Any:
    return plt.get_cmap("tab10" if n <= 10 else "tab20")(i % 20)


# -- architecture weights ----------------------------------------------------------------------------------
def _entropy(probs: Sequence[float]) -> float:
    return -sum(p * math.log(p) for p in probs if p > 0)


def draw_arch_weights(steps: Sequence[int], history: Sequence[Mapping[str, Sequence[float]]],
                      names: Mapping[str, Sequence[str]], max_labels: int = 48,
                      title: str = "architecture weights (softmax of alpha)") -> Figure:
    """One panel per label: the probability of each candidate at each training step (the candidate that
    wins at the last step drawn thicker), after a first panel with the mean entropy of the distributions.

    Past ``max_labels`` labels, the ones whose probabilities moved most are shown and a note says how
    many are hidden. Candidates are named in one legend when every panel has the same ones, else in each
    panel's own legend. The y-axis of each panel fits its data."""
    if not history or not history[0]:
        raise ValueError("draw_arch_weights needs at least one step of architecture weights")
    labels = list(history[0])
    moved = {label: max(abs(a - b) for a, b in zip(history[0][label], history[-1][label])) for label in labels}
    shown = labels if len(labels) <= max_labels else sorted(labels, key=lambda lb: -moved[lb])[:max_labels]
    option_names = {label: [str(n) for n in names.get(label, [])] for label in shown}
    for label in shown:
        if len(option_names[label]) != len(history[0][label]):
            option_names[label] = [str(i) for i in range(len(history[0][label]))]
    shared = len({tuple(v) for v in option_names.values()}) == 1

    panels = len(shown) + 1
    cols = min(6, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows + 1.0), squeeze=False, layout="constrained")
    flat = list(axes.flat)
    marker = "o" if len(steps) <= 30 else None
    entropy = flat[0]
    entropy.plot(steps, [sum(_entropy(h[lb]) for lb in labels) / len(labels) for h in history], color="black",
                 marker=marker, markersize=3)
    uniform = sum(math.log(len(history[0][lb])) for lb in labels) / len(labels)
    entropy.axhline(uniform, color="gray", ls=":", lw=1)
    entropy.set_title("mean entropy (nats; dotted: uniform)", fontsize=9)
    for ax, label in zip(flat[1:], shown):
        series = list(zip(*(h[label] for h in history)))
        winner = max(range(len(series)), key=lambda i: series[i][-1])
        count = len(series)
        for i, values in enumerate(series):
            ax.plot(steps, values, marker=marker, markersize=2.5, lw=2.2 if i == winner else 1.0,
                    color=_colour(i, count), label=option_names[label][i])
        ax.set_title(label, fontsize=9)
        if not shared:
            ax.legend(fontsize=6, loc="best", framealpha=0.7)
    for ax in flat[:panels]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)  # values as they are, not "1e-5 + 3.465"
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in flat[panels:]:
        ax.axis("off")
    span = f"steps {steps[0]}-{steps[-1]}" if len(steps) > 1 else f"step {steps[0]}"
    heading = f"{title}, per training step ({span})"
    if shared:  # the heading is the legend's title: constrained layout stacks a suptitle on an outside legend
        texts = option_names[shown[0]]
        handles = [Line2D([], [], color=_colour(i, len(texts)), lw=2) for i in range(len(texts))]
        fig.legend(handles, texts, loc="outside upper center", ncol=min(len(texts), 9), fontsize=8,
                   title=f"{heading}\ncandidates (in each panel, the thick line is the one ahead at the last step)",
                   title_fontsize=10, frameon=False)
    else:
        fig.suptitle(heading)
    xlabel = "training step (batch)"
    if len(shown) < len(labels):
        xlabel += (f"\n{len(labels) - len(shown)} of {len(labels)} labels hidden: shown are the {len(shown)} "
                   "whose weights moved most from the first to the last step")
    fig.supxlabel(xlabel, fontsize=9)
    return fig


def plot_arch_weights(steps: Sequence[int], history: Sequence[Mapping[str, Sequence[float]]],
                      names: Mapping[str, Sequence[str]], path: str | os.PathLike, **kwargs: Any) -> Path:
    return _save(draw_arch_weights(steps, history, names, **kwargs), path)


# -- curves --------------------------------------------------------------------------------------------------
def draw_curves(panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]], title: str,
                xlabel: str) -> Figure:
    """Side by side, one panel per entry of ``panels``: named ``(x, y)`` series (controller reward and
    baseline, entropy; evolution fitness). Each y-axis fits its data."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False, layout="constrained")
    for ax, (name, series) in zip(axes.flat, panels.items()):
        for i, (label, (x, y)) in enumerate(series.items()):
            ax.plot(x, y, marker="o" if len(x) <= 30 else None, markersize=3, lw=1.0 if i == 0 and len(series) > 1
                    and len(x) > 30 else 1.6, alpha=0.6 if i == 0 and len(series) > 1 and len(x) > 30 else 1.0,
                    label=label, color=_colour(i, len(series)))
        ax.set_title(name, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.supxlabel(xlabel, fontsize=9)
    return fig


def plot_curves(panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
                path: str | os.PathLike, title: str, xlabel: str) -> Path:
    return _save(draw_curves(panels, title, xlabel), path)


# -- the cell diagram ----------------------------------------------------------------------------------------
_OP = re.compile(r"^(?P<cell>.+)/op_(?P<node>\d+)_(?P<slot>\d+)$")


def cells_of(arch: Mapping[str, Any]) -> dict[str, list[tuple[int, int, str, int]]]:
    """For each cell label in ``arch``: (node, slot, operator, input) of every operator slot."""
    cells: dict[str, list[tuple[int, int, str, int]]] = {}
    for label, value in arch.items():
        match = _OP.match(label)
        if match is None:
            continue
        inputs = arch.get(f"{match['cell']}/input_{match['node']}_{match['slot']}")
        if not inputs:
            continue
        cells.setdefault(match["cell"], []).append((int(match["node"]), int(match["slot"]), str(value),
                                                    int(inputs[0])))
    return {name: sorted(edges) for name, edges in cells.items()}


_SCALE = 0.95  # inches per data unit: the diagram is drawn to scale, so text sizes are known in data units
_DX, _DY, _RADIUS = 2.4, 1.5, 0.3
_PAD = 3.0  # pixels around a label's text: its frame, and a little air
_T_ORDER = (0.5, 0.4, 0.6, 0.32, 0.68, 0.45, 0.55, 0.25, 0.75, 0.36, 0.64, 0.2, 0.8)


def _layout(edges: list[tuple[int, int, str, int]], inputs: int) -> tuple[dict[Any, tuple[float, float]], int]:
    """Layered positions: the inputs in layer 0, each node one layer right of its deepest input, ``out`` last."""
    layer = {i: 0 for i in range(inputs)}
    for node in sorted({e[0] for e in edges}):
        layer[node] = 1 + max(layer.get(inp, 0) for n, _, _, inp in edges if n == node)
    last = max(layer.values()) + 1
    positions: dict[Any, tuple[float, float]] = {}
    for depth in range(last):
        members = sorted(n for n, d in layer.items() if d == depth)
        for k, node in enumerate(members):
            if len(members) == 1 and depth > 0:  # a lone node sits off the middle, alternately up and down
                y = 0.55 if depth % 2 else -0.55
            else:
                y = (len(members) - 1) / 2 * _DY - k * _DY
            positions[node] = (depth * _DX, y)
    positions["out"] = (last * _DX, 0.0)
    return positions, last


def _bezier(p0: tuple[float, float], p2: tuple[float, float], bend: float) -> tuple[float, float]:
    """The control point of a quadratic curve from p0 to p2, ``bend`` x the chord length off the middle."""
    (x0, y0), (x2, y2) = p0, p2
    return (x0 + x2) / 2 - bend * (y2 - y0), (y0 + y2) / 2 + bend * (x2 - x0)


def _at(p0: Any, c: Any, p2: Any, t: float) -> tuple[float, float]:
    return tuple((1 - t) ** 2 * a + 2 * (1 - t) * t * b + t ** 2 * d for a, b, d in zip(p0, c, p2))  # type: ignore


def draw_cells(arch: Mapping[str, Any], num_predecessors: int | None = None, loose_end: bool = False
               ) -> Figure | None:
    """Every cell of ``arch`` (labels ``{cell}/op_i_k`` and ``{cell}/input_i_k``) as a layered DAG.

    Nodes carry arch.json's indices (``0 .. p-1``: the cell's inputs, ``p ..``: its nodes, where ``p`` is
    ``num_predecessors``, by default the first node's index); each operator slot is a curved edge from
    its input to its node, labelled with the operator at a point of that edge where the label overlaps
    no other label and no node (several edges between the same two nodes bend apart). The output
    concatenates every node, or only the unused ones with ``loose_end``. None when ``arch`` has no cell."""
    cells = cells_of(arch)
    if not cells:
        return None
    layouts = {}
    for name, edges in cells.items():
        inputs = num_predecessors if num_predecessors is not None else min(e[0] for e in edges)
        positions, last = _layout(edges, inputs)
        routes = _routes(edges, positions)
        ys = [y for _, y in positions.values()] + [_apex(positions[inp], positions[node], bend)
                                                    for node, _, _, inp, bend in routes]
        layouts[name] = (positions, last, inputs, routes, min(ys) - _RADIUS - 0.45, max(ys) + _RADIUS + 0.45)
    width = max(layout[1] for layout in layouts.values()) * _DX + 2 * _RADIUS + 1.2
    title_in, note_in = 0.35, 0.3
    fig_h = sum((layout[5] - layout[4]) * _SCALE + title_in for layout in layouts.values()) + note_in
    fig = plt.figure(figsize=(width * _SCALE, fig_h))
    top = fig_h
    for name in sorted(cells):
        positions, last, inputs, routes, low, high = layouts[name]
        top -= title_in + (high - low) * _SCALE
        # drawn to scale (_SCALE inches per unit), so that label sizes in data units are known while placing them
        ax = fig.add_axes((0, top / fig_h, 1, (high - low) * _SCALE / fig_h))
        ax.set_xlim(-_RADIUS - 0.6, width - _RADIUS - 0.6)
        ax.set_ylim(low, high)
        ax.axis("off")
        ax.set_title(f"cell '{name}'", fontsize=10)
        _draw_cell(fig, ax, name, routes, positions, inputs, loose_end)
    inputs = max(layout[2] for layout in layouts.values())
    fig.text(0.01, 0.01, f"nodes as in arch.json: 0-{inputs - 1} the cell's inputs (c_k-{inputs} .. c_k-1), "
             f"then node i of '{{cell}}/op_i_k' and '{{cell}}/input_i_k' (edge label: the operator of slot k); "
             "out: " + ("the unused nodes" if loose_end else "every node") + ", concatenated",
             fontsize=7, color="dimgray")
    return fig


def _routes(edges: list[tuple[int, int, str, int]], positions: dict[Any, Any]
            ) -> list[tuple[int, int, str, int, float]]:
    """Each edge with its bend: long edges bend more (past the nodes between), alternately up and down;
    edges between the same two nodes bend apart."""
    count: dict[tuple[int, int], int] = {}
    for node, _, _, inp in edges:
        count[(inp, node)] = count.get((inp, node), 0) + 1
    seen: dict[tuple[int, int], int] = {}
    routes = []
    for node, slot, op, inp in edges:
        span = round((positions[node][0] - positions[inp][0]) / _DX)
        k = seen.get((inp, node), 0)
        seen[(inp, node)] = k + 1
        if count[(inp, node)] == 1:
            bend = 0.1 * max(1, span) * (1 if (inp + node) % 2 else -1)
        else:
            bend = (0.22 if k % 2 else -0.22) * (1 + k // 2)
        routes.append((node, slot, op, inp, bend))
    return routes


def _apex(p0: tuple[float, float], p2: tuple[float, float], bend: float) -> float:
    """The y of a curve's middle (its farthest point from the chord)."""
    return _at(p0, _bezier(p0, p2, bend), p2, 0.5)[1]


def _draw_cell(fig: Figure, ax: Any, cell: str, routes: list[tuple[int, int, str, int, float]],
               positions: dict[Any, Any], inputs: int, loose_end: bool) -> None:
    renderer = fig.canvas.get_renderer()
    used = {route[3] for route in routes}
    for node in sorted({route[0] for route in routes}):  # to the output first (dashed, beneath the rest)
        if not loose_end or node not in used:
            _edge(ax, positions[node], positions["out"], 0.08 if positions[node][1] >= 0 else -0.08,
                  color="gray", ls="--", lw=0.8, gid=None)
    obstacles = []
    for key, (x, y) in positions.items():
        colour = "lightyellow" if isinstance(key, int) and key < inputs else "lightgreen" if key == "out" \
            else "lightblue"
        r = _RADIUS * (1.3 if key == "out" else 1.0)
        ax.add_patch(Circle((x, y), r, fc=colour, ec="black", lw=0.8, zorder=3))
        ax.text(x, y, str(key), ha="center", va="center", fontsize=9, zorder=4, gid="node")
        obstacles.append(ax.transData.transform([(x - r, y - r), (x + r, y + r)]))
    def curve(p0: Any, p2: Any, bend: float) -> Any:  # points along an edge, in pixels
        control = _bezier(p0, p2, bend)
        return ax.transData.transform([_at(p0, control, p2, i / 40) for i in range(41)])

    bends = [route[4] for route in routes]
    placed: list[Any] = []
    for index, (node, slot, op, inp, base) in enumerate(routes):
        p0, p2 = positions[inp], positions[node]
        others = [curve(positions[r[3]], positions[r[0]], bends[i]) for i, r in enumerate(routes) if i != index]
        text = ax.text(0, 0, op, fontsize=7, ha="center", va="center", zorder=5, color="tab:blue", clip_on=False,
                       bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "tab:blue", "lw": 0.6})
        # the first free spot that covers fewest other edges (a label on a crossing reads as either edge's);
        # free: no other label, no node
        best = None
        for bend in (base, base * 1.6, -base, base * 2.2, -base * 1.6):
            for t in _T_ORDER:
                text.set_position(_at(p0, _bezier(p0, p2, bend), p2, t))
                box = text.get_window_extent(renderer).padded(_PAD)  # the frame drawn around it
                if any(box.overlaps(other) for other in placed) or any(_hits(box, o) for o in obstacles):
                    continue
                covered = sum(bool(box.count_contains(points)) for points in others)
                if best is None or covered < best[0]:
                    best = (covered, bend, t, box)
                if covered == 0:
                    break
            if best is not None and best[0] == 0:
                break
        if best is None:  # crowded beyond the tries: the middle of the first route
            text.set_position(_at(p0, _bezier(p0, p2, base), p2, 0.5))
            best = (0, base, 0.5, text.get_window_extent(renderer).padded(_PAD))
        _, bend, t, box = best
        bends[index] = bend
        text.set_position(_at(p0, _bezier(p0, p2, bend), p2, t))
        text.set_gid(f"edge:{cell}/op_{node}_{slot}")
        placed.append(box)
        _edge(ax, p0, p2, bend, color="tab:blue", lw=1.2, gid=text.get_gid())


def _hits(box: Any, square: Any) -> bool:
    (x0, y0), (x1, y1) = square
    return box.x0 < x1 and box.x1 > x0 and box.y0 < y1 and box.y1 > y0


def _edge(ax: Any, p0: tuple[float, float], p2: tuple[float, float], bend: float, gid: str | None,
          **style: Any) -> None:
    """A quadratic curve from p0 to p2 that stops at the target node's rim with an arrowhead."""
    control = _bezier(p0, p2, bend)
    ax.add_patch(PathPatch(MplPath([p0, control, p2], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3]),
                           fc="none", zorder=1, gid=gid, clip_on=False, **style))
    end = next(t for t in (i / 200 for i in range(200, -1, -1)) if math.dist(_at(p0, control, p2, t), p2) >= _RADIUS)
    tip, tail = _at(p0, control, p2, end), _at(p0, control, p2, max(0.0, end - 0.04))
    ax.annotate("", xy=tip, xytext=tail, zorder=2, annotation_clip=False,
                arrowprops={"arrowstyle": "-|>", "color": style.get("color", "black"), "lw": 0.8,
                            "shrinkA": 0, "shrinkB": 0, "mutation_scale": 9})


def plot_cells(arch: Mapping[str, Any], path: str | os.PathLike, num_predecessors: int | None = None,
               loose_end: bool = False) -> Path | None:
    """Write :func:`draw_cells`'s diagram to ``path``; None (nothing written) when ``arch`` has no cell."""
    fig = draw_cells(arch, num_predecessors, loose_end)
    return None if fig is None else _save(fig, path)


# -- the chosen values -------------------------------------------------------------------------------------
def draw_choices(arch: Mapping[str, Any], max_rows: int = 240, rows_per_column: int = 40) -> Figure:
    """The chosen value of every decision as a table, in several columns when there are many; past
    ``max_rows`` decisions the first ones are shown and the title says how many."""
    items = [(label, _short(value)) for label, value in arch.items()][:max_rows]
    columns = max(1, math.ceil(len(items) / rows_per_column))
    per_column = math.ceil(len(items) / columns) if items else 1
    longest = max([len(a) + len(b) for a, b in items] or [10])
    fig, axes = plt.subplots(1, columns, figsize=(max(4.0, 0.075 * longest + 1.5) * columns,
                                                   0.24 * per_column + 1.0), squeeze=False)
    for c, ax in enumerate(axes.flat):
        ax.axis("off")
        rows = items[c * per_column:(c + 1) * per_column]
        if not rows:
            continue
        table = ax.table(cellText=[list(r) for r in rows], colLabels=["decision", "chosen"], loc="center",
                         cellLoc="left")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.auto_set_column_width([0, 1])
    title = "exported architecture"
    if len(arch) > max_rows:
        title += f" (the first {max_rows} of {len(arch)} decisions; all are in arch.json)"
    fig.suptitle(title)
    return fig


def _short(value: Any, width: int = 40) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def plot_choices(arch: Mapping[str, Any], path: str | os.PathLike, **kwargs: Any) -> Path:
    return _save(draw_choices(arch, **kwargs), path)


# -- TensorBoard ---------------------------------------------------------------------------------------------
def to_tensorboard(writer: Any, paths: Sequence[Path], step: int = 0) -> None:
    """Each picture as a TensorBoard image ``pictures/<file name without .png>``."""
    import matplotlib.image

    for path in paths:
        image = matplotlib.image.imread(str(path))[..., :3]
        writer.add_image(f"pictures/{Path(path).stem}", image, step, dataformats="HWC")
    writer.flush()
