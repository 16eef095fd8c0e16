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
    lines += ["", "DARTS's networks are this library's unified NASNet-style network (`hub/nasnet.py`). NASNet-A,",
              "AmoebaNet-A and PNASNet-5 are built in NASNet's TF-slim network, which their releases share, and",
              "ENAS in its micro-search final network (`hub/nasnet_published.py`); the ImageNet NASNet-A and",
              "PNASNet-5 networks equal the released checkpoints' parameter counts exactly, the CIFAR-10 ones the",
              "papers' at their precision. ENAS, built from its released code with the paper's cells, has 3.44M",
              "against the reported 4.6M (the arc in the released training script gives 3.89M): the difference",
              "is not explained. The AutoFormer networks include the",
              "relative position tables (`rpe=True`), as the released ones do: -S and -B agree with the reported",
              "figures at their precision; -T, built from the released configuration, has 0.17M more than reported."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
