"""Step time and peak memory of one-shot supernets against plain baselines.

    python -m benchmarks.oneshot                      # every case, CPU, writes docs/benchmarks.md
    python -m benchmarks.oneshot --cases darts --steps 10
    python -m benchmarks.oneshot --device cuda        # on a GPU machine

Each (case, variant) runs in its own process, in ``--rounds`` interleaved rounds, so a
variant and its baseline are measured minutes, not a whole run, apart; a ratio is the
median over rounds of the ratio within a round, other figures are medians over rounds. A
step is forward + backward + an SGD step on the weights, on one fixed architecture (the
same for a supernet and its fixed subnet).
Time is the median over the timed steps. Peak memory is the rise of the process's peak
resident memory (CPU, reset through /proc/self/clear_refs before the steps) or of
``torch.cuda.max_memory_allocated`` (GPU) over what was resident before the first step.

Variants: ``fixed`` (the frozen subnet of the architecture), ``path_sampling``,
``differentiable``, ``binary_gate`` (an architecture step: the baseline's path and one other
per label, binary-gate gradients on), and for DARTS cells ``handwritten`` (benchmarks/darts_reference.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

CASES: dict[str, dict[str, Any]] = {
    "darts": {"title": "DARTS cells (C=16, 8 cells, 32x32)", "batch": 32,
              "variants": ["fixed", "path_sampling", "binary_gate", "differentiable", "handwritten"]},
    "mobilenetv3": {"title": "MobileNetV3Space (32x32, 10 classes, width x0.5/x1, expand 3/6)", "batch": 32,
                    "variants": ["fixed", "path_sampling", "binary_gate", "differentiable"]},
    "shufflenet": {"title": "ShuffleNetSpace (32x32, 10 classes)", "batch": 32,
                   "variants": ["fixed", "path_sampling", "binary_gate", "differentiable"]},
    "autoformer": {"title": "AutoformerSpace (32x32, patch 4, embed 64/96, 1-2 heads, depth 4-5, 10 classes)",
                   "batch": 16,
                   "variants": ["fixed", "path_sampling", "binary_gate", "differentiable"]},
}


def build_space(case: str) -> torch.nn.Module:
    import hub

    if case == "darts":
        return hub.DARTS(width=16, num_cells=8, dataset="cifar", num_labels=10)
    if case == "mobilenetv3":
        return hub.MobileNetV3Space(num_labels=10, width_multipliers=(0.5, 1.0), expand_ratios=(3.0, 6.0))
    if case == "shufflenet":
        return hub.ShuffleNetSpace(num_labels=10)
    if case == "autoformer":
        return hub.AutoformerSpace(search_embed_dim=(64, 96), search_num_heads=(1, 2), search_depth=(4, 5),
                                   img_size=32, patch_size=4, num_classes=10)
    raise ValueError(f"unknown case {case!r}; cases: {list(CASES)}")


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _second_paths(state: Any, arch: dict[str, Any]) -> dict[str, list[Any]]:
    """Per label with architecture weights: the active value and one other, drawn with a fixed seed."""
    generator = torch.Generator().manual_seed(0)
    paths, labels = {}, state.labels()
    for label in sorted(arch):
        if label not in labels:
            continue
        others = [v for v in state.alpha_values(label) if v != arch[label]]
        if others:
            paths[label] = [arch[label], others[int(torch.randint(len(others), (1,), generator=generator))]]
    return paths


def run_one(case: str, variant: str, steps: int, warmup: int, device: str) -> dict[str, float]:
    import supernet
    from supernet.oneshot import convert

    torch.manual_seed(0)
    batch = CASES[case]["batch"]
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if variant == "handwritten":
        from benchmarks.darts_reference import DartsSearchNetwork

        net = DartsSearchNetwork(16, 10, 8)
        weights = [p for n, p in net.named_parameters() if not n.startswith("alphas")]
    else:
        space = build_space(case)
        arch = supernet.sample(space, seed=0)
        if variant == "fixed":
            net = supernet.freeze(space, arch)
        else:
            net, state = convert(space, variant)
            state.set_arch(arch)
            if variant == "binary_gate":  # the same active path as the baseline, plus a second sampled one
                state.arch_gradients = True
                state.gate_paths = _second_paths(state, arch)
        weights = list(net.parameters())
    net = net.to(device).train()
    optimizer = torch.optim.SGD(weights, lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = net(x)
        out = out[0] if isinstance(out, tuple) else out
        torch.nn.functional.cross_entropy(out, y).backward()
        optimizer.step()

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        _reset_peak()
        before = _rss_kb("VmRSS") * 1024
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _rss_kb("VmHWM") * 1024
    return {"ms": 1000 * statistics.median(times), "peak_mb": (peak - before) / 2**20,
            "params": sum(p.numel() for p in weights)}


def _run_subprocess(case: str, variant: str, args: argparse.Namespace) -> dict[str, float] | str:
    command = [sys.executable, "-m", "benchmarks.oneshot", "--one", f"{case}:{variant}", "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ratio(rounds: list[dict[str, Any]], variant: str, baseline: str, key: str) -> str:
    """The median over rounds of ``variant / baseline`` (both measured in the same round)."""
    ratios = [r[variant][key] / r[baseline][key] for r in rounds
              if isinstance(r.get(variant), dict) and isinstance(r.get(baseline), dict) and r[baseline][key] > 0]
    return f"{statistics.median(ratios):.2f}x" if ratios else "n/a"


BASELINES = {"path_sampling": "fixed", "binary_gate": "path_sampling", "differentiable": "handwritten"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {list(CASES)}")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="run every variant this many times, interleaved; ratios are medians over rounds")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=None, help="write a markdown report here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.one:
        case, variant = args.one.split(":")
        print(json.dumps(run_one(case, variant, args.steps, args.warmup, args.device)))
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; cases: {', '.join(CASES)}")
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, device {args.device}"
             + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""),
             f"Command: python -m benchmarks.oneshot --cases {','.join(cases)} --steps {args.steps} "
             f"--warmup {args.warmup} --rounds {args.rounds} --device {args.device}", ""]
    for case in cases:
        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            rounds.append({})
            for variant in CASES[case]["variants"]:
                print(f"[bench] {case} / {variant} (round {r + 1}/{args.rounds}) ...", file=sys.stderr, flush=True)
                rounds[-1][variant] = _run_subprocess(case, variant, args)
        lines += [f"### {CASES[case]['title']}, batch {CASES[case]['batch']}", "",
                  "| variant | step (ms, median) | peak memory (MiB) | weights | time vs baseline "
                  "| memory vs baseline |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for variant in CASES[case]["variants"]:
            done = [r[variant] for r in rounds if isinstance(r[variant], dict)]
            if not done:
                lines.append(f"| {variant} | failed: {rounds[-1][variant]} | | | | |")
                continue
            baseline = BASELINES.get(variant)
            versus = " | "
            if baseline in CASES[case]["variants"]:
                versus = (f"{_ratio(rounds, variant, baseline, 'ms')} ({baseline}) | "
                          f"{_ratio(rounds, variant, baseline, 'peak_mb')}")
            lines.append(f"| {variant} | {statistics.median(d['ms'] for d in done):.1f} | "
                         f"{statistics.median(d['peak_mb'] for d in done):.1f} | {done[0]['params']:,} | {versus} |")
        lines.append("")
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# One-shot engine benchmark\n\n" + __doc__.split("\n\n", 1)[1].split("Variants:")[0]
                    + "\n" + report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
