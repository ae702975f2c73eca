"""`python -m benchmark --quick --reference-metrics`: every figure is measured
and reported (slow: `pytest -m slow`). Speed targets are the benchmark's to print,
never a test's to assert. The fast tests check its arithmetic and its place in the
repo."""

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.memory import RUN_REPORTING_PEAK

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "benchmark"
COMMON = [
    "images", "bare_images_per_s", "bare_xla_images_per_s", "fed_images_per_s",
    "pipeline_images_per_s",
    "fed_ratio", "fed_ratio_low", "fed_ratio_high", "rounds",
    "loop_images_per_s", "loop_ratio_raw", "ratio", "overhead", "overhead_parts",
    "checkpoint_save_s", "step_images_s", "tensorboard_images_ms", "export_s",
    "validation_share", "log_ms", "validation_checkpoint_s", "validation_s",
    "images_s", "median_step_ms", "first_step_s", "peak_memory_mib",
    "peak_anonymous_mib",
]  # fmt: skip
METRICS = [
    f"metrics_{protocol}_{figure}"
    for protocol in ("fast", "reference")
    for figure in (
        "s",
        "beta_vae_s",
        "factor_vae_s",
        "mig_s",
        "dci_s",
        "encoding_s",
        "images_encoded",
    )  # fmt: skip
]
COLUMNS = {
    "dsprites": COMMON + METRICS,
    "celeba": COMMON + [
        "loop_cold_images_per_s", "preprocessing_images_per_s", "first_step_cold_s"
    ],
}  # fmt: skip
# Differences of timings: on a busy machine they can come out negative.
DIFFERENCES = ("overhead", "images_s")
RUNS = {"dsprites": ["default"], "celeba": ["cold", "default"]}


@pytest.mark.slow
def test_quick_benchmark_reports_every_figure(tmp_path):
    output = tmp_path / "out" / "benchmark.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmark", "--quick", "--reference-metrics",
         f"--output={output}", f"--data-root={tmp_path / 'data'}"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["settings"]["quick"] is True
    assert results["settings"]["sizes"]["metrics"] == ["fast", "reference"]
    assert 0 < results["main"]["help_s"] < 60
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
    assert not any(key.startswith("metrics_") for key in results["celeba"])

    table = result.stdout
    labels = ["bare train step", "XLA", "fed by the input pipeline",
              "end-to-end / bare", "logs + checkpoints + images",
              "TensorBoard summaries", "one export", "fast protocol",
              "reference protocol", "DCI, gradient boosting", "DCI, extra-trees",
              "CelebA preprocessing", "first step", "peak resident memory",
              "python main.py --help"]  # fmt: skip
    for label in labels:
        assert label in table, label
    header = next(line for line in table.splitlines() if "dsprites" in line)
    assert header.split()[-2:] == ["dsprites", "celeba"]
    assert f"Wrote {output}" in table


def test_the_benchmark_never_imports_main():
    """It calls what main.py calls; main.py depends on utils, never the reverse."""
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module]
            else:
                continue
            assert "main" not in names, path.name


def test_logs_checkpoints_and_images_count_as_many_as_the_window_holds():
    from benchmark.report import shares

    result = {
        # The window: 64,000 images at 1,000 images/s (64 s), 2 validations of
        # 1 s, 1,000 log rows of 1 ms, 2 + 2 saves of 0.5 s, one plot step of
        # 0.9 s + 100 ms: 4 s of parts.
        "window_s": 70.0, "window_images": 64_000, "bare_images_per_s": 1000.0,
        "window_validations": 2, "validation_s": 1.0,
        "window_logs": 1000, "log_ms": 1.0,
        "window_checkpoints": 2, "checkpoint_save_s": 0.5,
        "window_plots": 1, "step_images_s": 0.9, "tensorboard_images_ms": 100.0,
        "in_run_extra_s": 7.0, "loop_images_per_s": 900.0,
        "fed_ratio": 1.0, "fed_ratio_low": 0.9, "fed_ratio_high": 1.1,
    }  # fmt: skip
    figures = shares(result)
    assert figures["overhead_parts"] == pytest.approx(4 / (64 + 2 + 4))
    assert figures["validation_share"] == pytest.approx(2 / 70)
    assert figures["overhead"] == pytest.approx((7 - 2 + 1) / 70)
    assert figures["ratio"] == pytest.approx(0.9)
    assert figures["ratio_interval"] == pytest.approx([0.81, 0.99])
    assert figures["loop_ratio_raw"] == pytest.approx(0.9)


def test_a_child_started_from_a_large_process_reports_its_own_peak(tmp_path):
    """ru_maxrss survives exec: a small program started from a 1.5 GB process
    "peaked" at 1.5 GB, and a memory test failed in the full suite only (pytest had
    grown to 4.5 GB). RUN_REPORTING_PEAK reports the program's own VmHWM."""
    (tmp_path / "small.py").write_text("import sys; sys.exit(0)\n")
    parent = (
        "import subprocess, sys\n"
        "held = bytearray(1536 << 20)\n"  # zeroed, so resident: the parent is large
        "subprocess.run([sys.executable, '-c', sys.argv[1], *sys.argv[2:]], check=True)"
    )  # fmt: skip
    peak_file = tmp_path / "peak"
    subprocess.run(
        [sys.executable, "-c", parent, RUN_REPORTING_PEAK, str(peak_file),
         str(tmp_path / "small.py")],
        check=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert float(peak_file.read_text()) < 500  # the 1.5 GB was the parent's
