"""The hub table: every space's decisions, size and parameters, and the published networks.

    python -m hub.summary > docs/hub.md
"""

from __future__ import annotations

import sys
import time

from torch import nn

import supernet


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def space_rows() -> list[tuple[str, int, int, int, float]]:
    """(space, decisions, architectures, parameters of the space at its defaults, build seconds)."""
    import hub

    rows = []
    for name in ["NASNet", "ENAS", "AmoebaNet", "PNAS", "DARTS", "ProxylessNAS", "MobileNetV3Space",
                 "ShuffleNetSpace", "AutoformerSpace", "NasBench201", "NasBench101"]:
        start = time.perf_counter()
        space = getattr(hub, name)()
        seconds = time.perf_counter() - start
        ss = supernet.search_space(space)
        rows.append((name, len(ss), ss.size, _params(space), seconds))
    return rows


def searched_rows() -> list[tuple[str, str, str, int, str]]:
    """(published network, its space, its setting, parameters as built here, the authors' figures)."""
    import hub
    from hub.searched import _REGISTRY

    rows = []
    for name in hub.list_searched_models():
        entry = _REGISTRY[name]
        rows.append((name, entry.space.__name__, entry.description, _params(hub.load_searched_model(name)),
                     entry.reported))
    return rows


def main() -> int:
    lines = ["# Hub", "", "Spaces at their default arguments (`python -m hub.summary`). *Parameters* are those of the",
             "space module as built (all LayerChoice candidates, value choices at their defaults); a",
             "supernet holds the largest widths.", "",
             "| space | decisions | architectures | parameters (defaults) | build time (s) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, decisions, size, params, seconds in space_rows():
        size_text = f"{size:,}" if size < 10**15 else f"{size:.3e} ({size})"
        lines.append(f"| {name} | {decisions} | {size_text} | {params:,} | {seconds:.2f} |")
    lines += ["", "Architectures are distinct settings of the decisions that matter (a decision inside an unchosen",
              "candidate or past the chosen depth counts once). NasBench101 counts labelled cell graphs with at most",
              "9 edges and the output reachable, not isomorphism classes (the benchmark's 423k unique cells)."]
    lines += ["", "Published architectures (`hub.load_searched_model(name)`):", "",
              "| name | space | setting | parameters | reported by the authors |",
              "| --- | --- | --- | ---: | --- |"]
    for name, space, setting, params, reported in searched_rows():
        lines.append(f"| {name} | {space} | {setting} | {params:,} | {reported or '-'} |")
    lines += ["", "Every network here has the parameters its authors' own code, checkpoint or training log gives",
              "(to the digit where they print the whole number).",
              "DARTS's networks are this library's unified NASNet-style network (`hub/nasnet.py`), equal to the",
              "authors' DARTS code (whose DARTS_V1 cells give 3.17M, though the paper prints 3.3M for both).",
              "NASNet-A, AmoebaNet-A and PNASNet-5 are built in NASNet's TF-slim network, which their releases",
              "share (the ImageNet ones equal the released checkpoints, the CIFAR-10 ones round to the papers'",
              "figures), and ENAS in its micro-search final network (`hub/nasnet_published.py`) with the cells of",
              "its released training script: at the paper's N=6 it has the paper's 4.6M, and at the script's N=5",
              "the 3,894,372 that the authors' code counts. The ProxylessNAS networks match the parameters and",
              "multiply-adds their released training logs print; spos has the 3,558,464 parameters the authors'",
              "SPOS code builds for the released architecture (their README truncates it to 3.5M) and its 323M",
              "multiply-adds.",
              "The AutoFormer networks include the relative position tables (`rpe=True`) and equal what the",
              "authors' code counts for the released subnets; for AutoFormer-T that is 5.87M, which the paper",
              "prints as 5.7M and the README as 5.8M.",
              "A space's parameters are its search supernet's: the cell spaces and ShuffleNet search with",
              "BatchNorm without scale and shift (the DARTS search network, the SPOS supernet), so the DARTS space",
              "at width 16 with 8 cells has the 1,930,618 parameters of the authors' search network, and",
              "ShuffleNetSpace the 8,388,176 of the authors' supernet; fixed and published networks keep them."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
