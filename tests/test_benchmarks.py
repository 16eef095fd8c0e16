"""The engine benchmark runs with one command and reports every variant against its baseline."""

from __future__ import annotations

import re

from benchmarks.oneshot import main


def test_benchmark_reports_each_variant_with_ratios_to_its_baseline(tmp_path, capsys):
    out = tmp_path / "bench.md"
    assert main(["--cases", "autoformer", "--steps", "1", "--warmup", "0", "--out", str(out)]) == 0
    report = out.read_text()
    assert "Command: python -m benchmarks.oneshot --cases autoformer" in report
    for variant, baseline in (("path_sampling", "fixed"), ("binary_gate", "path_sampling")):
        row = rf"\| {variant} \| [\d.]+ \| [\d.-]+ \| [\d,]+ \| [\d.]+x \({baseline}\) \| [\d.-]+x \|"
        assert re.search(row, report)
    assert "failed" not in report
