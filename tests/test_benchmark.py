"""`python -m utils.benchmark --quick`: every figure is measured and reported. Speed
targets are the benchmark's to print, never a test's to assert."""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMON = [
    "images", "bare_images_per_s", "bare_xla_images_per_s", "fed_images_per_s",
    "pipeline_images_per_s",
    "fed_ratio", "fed_ratio_low", "fed_ratio_high", "rounds",
    "loop_images_per_s", "loop_ratio_raw", "ratio", "overhead", "overhead_parts",
    "checkpoint_save_s", "step_images_s",
    "validation_share", "log_ms", "validation_checkpoint_s", "validation_s",
    "images_s", "median_step_ms", "first_step_s", "peak_memory_mib",
    "peak_anonymous_mib",
]  # fmt: skip
COLUMNS = {
    "dsprites": COMMON,
    "celeba": COMMON + [
        "loop_cold_images_per_s", "preprocessing_images_per_s", "first_step_cold_s"
    ],
}  # fmt: skip
# Differences of timings: on a busy machine they can come out negative.
DIFFERENCES = ("overhead", "images_s")
RUNS = {"dsprites": ["default"], "celeba": ["cold", "default"]}


def test_quick_benchmark_reports_every_figure(tmp_path):
    output = tmp_path / "out" / "benchmark.json"
    result = subprocess.run(
        [sys.executable, "-m", "utils.benchmark", "--quick", f"--output={output}",
         f"--data-root={tmp_path / 'data'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["settings"]["quick"] is True
    for dataset, keys in COLUMNS.items():
        figures = results[dataset]
        assert set(keys) <= set(figures), set(keys) - set(figures)
        for key in keys:
            value = figures[key]
            assert isinstance(value, int | float) and math.isfinite(value), key
            if key not in DIFFERENCES:
                assert value > 0, (dataset, key, value)
        assert (
            figures["fed_ratio_low"]
            <= figures["fed_ratio"]
            <= figures["fed_ratio_high"]
        )
        low, high = figures["ratio_interval"]
        assert low <= figures["ratio"] <= high
        assert list(figures["runs"]) == RUNS[dataset]
        for run in figures["runs"].values():
            assert run["images_per_s"] > 0 and run["peak_anonymous_mib"] > 0
            assert run["peak_memory_mib"] >= run["peak_anonymous_mib"]
    assert results["celeba"]["images"] == 600
    assert results["dsprites"]["images"] == 737_280

    table = result.stdout
    labels = ["bare train step", "XLA", "fed by the input pipeline",
              "end-to-end / bare", "logs + checkpoints + images",
              "CelebA preprocessing", "first step", "peak resident memory"]  # fmt: skip
    for label in labels:
        assert label in table, label
    header = next(line for line in table.splitlines() if "dsprites" in line)
    assert header.split()[-2:] == ["dsprites", "celeba"]
    assert f"Wrote {output}" in table
