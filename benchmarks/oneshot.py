"""Step time and peak memory of one-shot supernets against plain baselines.

    python -m benchmarks.oneshot                      # every case, CPU, writes docs/benchmarks.md
    python -m benchmarks.oneshot --cases darts --steps 5
    python -m benchmarks.oneshot --device cuda        # on a GPU machine

Step time is measured in one process per case, the variants taking turns step by step
(a round is one step of each), so a variant and its baseline run seconds apart and this
shared machine's drifting speed cancels in their ratio: a ratio is the median over rounds
of the ratio within the round, a step time the median over rounds. A step is forward +
backward + an SGD step on the weights, on one fixed architecture (the same for a supernet
and its fixed subnet). Peak memory is measured in a fresh process per variant, over its
first three steps: the rise of the process's peak resident memory (CPU, reset
through /proc/self/clear_refs) or of ``torch.cuda.max_memory_allocated`` (GPU) over what
was resident before the first.

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


def build_variant(case: str, variant: str, device: str) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
    """The network a variant trains, on ``device`` in train mode, and the weights its optimizer steps."""
    import supernet
    from supernet.oneshot import convert

    torch.manual_seed(0)
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
    return net.to(device).train(), weights


def _training_step(case: str, net: torch.nn.Module, weights: list[torch.nn.Parameter], device: str):
    """One forward + backward + SGD step on a fixed batch, synchronised on CUDA."""
    generator = torch.Generator().manual_seed(0)
    batch = CASES[case]["batch"]
    x = torch.randn(batch, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (batch,), generator=generator).to(device)
    optimizer = torch.optim.SGD(weights, lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = net(x)
        out = out[0] if isinstance(out, tuple) else out
        torch.nn.functional.cross_entropy(out, y).backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def measure_time(case: str, steps: int, warmup: int, device: str) -> dict[str, list[float]]:
    """Seconds per step of every variant, the variants taking turns step by step.

    Taking turns puts a variant and its baseline seconds apart, so the ratio within a
    round survives the drift of a shared machine's speed.
    """
    variants = CASES[case]["variants"]
    runs = {v: _training_step(case, *build_variant(case, v, device), device) for v in variants}
    for _ in range(warmup):
        for step in runs.values():
            step()
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(steps):
        for variant, step in runs.items():
            start = time.perf_counter()
            step()
            times[variant].append(time.perf_counter() - start)
    return times


def measure_memory(case: str, variant: str, device: str, steps: int = 3) -> dict[str, float]:
    """Peak memory of the first ``steps`` steps over what was resident before the first.

    The first step counts: it is where the activations, gradients and optimizer state
    are first allocated; later steps mostly reuse that memory.
    """
    net, weights = build_variant(case, variant, device)
    step = _training_step(case, net, weights, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        _reset_peak()
        before = _rss_kb("VmRSS") * 1024
    for _ in range(steps):
        step()
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _rss_kb("VmHWM") * 1024
    return {"peak_mb": (peak - before) / 2**20, "params": sum(p.numel() for p in weights)}


def _run_subprocess(job: str, args: argparse.Namespace) -> Any:
    """Run ``--job`` in a fresh process (its own allocator and peak memory); its JSON result or the error line."""
    command = [sys.executable, "-m", "benchmarks.oneshot", "--job", job, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ratio(times: dict[str, list[float]], variant: str, baseline: str) -> str:
    """The median over rounds of ``variant / baseline`` step time within the round."""
    return f"{statistics.median(v / b for v, b in zip(times[variant], times[baseline])):.2f}x"


BASELINES = {"path_sampling": "fixed", "binary_gate": "path_sampling", "differentiable": "handwritten"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {list(CASES)}")
    parser.add_argument("--steps", type=int, default=15, help="timed rounds (one step of every variant each)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds before them")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=None, help="write a markdown report here")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        kind, case, *variant = args.job.split(":")
        if kind == "time":
            result: Any = measure_time(case, args.steps, args.warmup, args.device)
        else:
            result = measure_memory(case, variant[0], args.device)
        print(json.dumps(result))
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; cases: {', '.join(CASES)}")
    if args.steps < 1 or args.warmup < 0:
        parser.error(f"--steps must be >= 1 and --warmup >= 0, got {args.steps} and {args.warmup}")
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, device {args.device}"
             + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""),
             f"Command: python -m benchmarks.oneshot --cases {','.join(cases)} --steps {args.steps} "
             f"--warmup {args.warmup} --device {args.device}", ""]
    for case in cases:
        variants = CASES[case]["variants"]
        print(f"[bench] {case}: step time, {len(variants)} variants taking turns ...", file=sys.stderr, flush=True)
        times = _run_subprocess(f"time:{case}", args)
        memory = {}
        for variant in variants:
            print(f"[bench] {case} / {variant}: peak memory ...", file=sys.stderr, flush=True)
            memory[variant] = _run_subprocess(f"memory:{case}:{variant}", args)
        lines += [f"### {CASES[case]['title']}, batch {CASES[case]['batch']}", "",
                  "| variant | step (ms, median) | peak memory (MiB) | weights | time vs baseline "
                  "| memory vs baseline |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for variant in variants:
            if not isinstance(times, dict) or not isinstance(memory[variant], dict):
                failure = times if not isinstance(times, dict) else memory[variant]
                lines.append(f"| {variant} | failed: {failure} | | | | |")
                continue
            baseline = BASELINES.get(variant)
            versus = " | "
            if baseline in variants and isinstance(memory[baseline], dict) and memory[baseline]["peak_mb"] > 0:
                versus = (f"{_ratio(times, variant, baseline)} ({baseline}) | "
                          f"{memory[variant]['peak_mb'] / memory[baseline]['peak_mb']:.2f}x")
            lines.append(f"| {variant} | {1000 * statistics.median(times[variant]):.1f} | "
                         f"{memory[variant]['peak_mb']:.1f} | {memory[variant]['params']:,} | {versus} |")
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
