"""The engine benchmark runs with one command and reports issue 17's table: every row's ratio, measured
in the same run, beside its target; the GPU flags (bf16, channels_last, batch) run on CPU too."""

from __future__ import annotations

import re

import pytest

from benchmarks.oneshot import main


def test_benchmark_reports_each_target_row_and_each_variant_against_its_baseline(tmp_path):
    out = tmp_path / "bench.md"
    assert main(["--cases", "autoformer", "--steps", "1", "--warmup", "0", "--batch", "4", "--out", str(out)]) == 0
    report = out.read_text()
    assert "Command: python -m benchmarks.oneshot --cases autoformer --steps 1 --warmup 0 --device cpu --batch 4" \
        in report
    for row in (r"path sampling vs fixed subnet, step: autoformer \| [\d.]+x \| <= 1.05x \| (yes|no) \|",
                r"path sampling memory rise vs fixed subnet: autoformer \| [\d.-]+x \| <= 1.2x \| (yes|no) \|",
                r"differentiable vs path sampling: autoformer \| [\d.]+x \| <= 2.5x \| (yes|no) \|"):
        assert re.search(row, report), row
    for variant, baseline in (("path_sampling", "fixed"),):
        row = rf"\| {variant} \| [\d.]+ \| [\d.-]+ \| [\d,]+ \| [\d.]+x \({baseline}\) \| [\d.-]+x \|"
        assert re.search(row, report)
    assert "failed" not in report.split("## Notes")[0]
    out.write_text("")  # --render rewrites the report from the measurements saved beside it
    assert main(["--render", str(out)]) == 0
    assert out.read_text() == report


@pytest.mark.slow
def test_benchmark_runs_in_bf16_and_channels_last(capsys):
    assert main(["--cases", "shufflenet", "--steps", "1", "--warmup", "0", "--batch", "2", "--bf16",
                 "--channels-last"]) == 0
    report = capsys.readouterr().out
    assert "--bf16 --channels-last" in report
    assert re.search(r"binary gates \(weight \+ architecture step\) vs fixed subnet: shufflenet \| [\d.]+x", report)
    assert "failed" not in report


@pytest.mark.parametrize("argv, message", [(["--cases", "nope"], "unknown case 'nope'"),
                                           (["--batch", "0"], "--steps, --batch and --threads must be >= 1")])
def test_benchmark_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_torch_compile_takes_a_path_sampling_supernet_across_architectures(capsys):
    # compile_check compares the compiled supernet's outputs with eager ones under two architectures
    assert main(["--compile-check"]) == 0
    assert capsys.readouterr().out.startswith("torch.compile works: 3 steps over 2 architectures")
