"""Is the model the bottleneck, never the input? `python -m utils.benchmark`.

Images/second of the bare train step on an in-memory batch, of the same step fed
by the real input pipeline (the two interleaved in one process), and of the real
loop: `python main.py` in a subprocess at the default frequencies, its
steady-state rate read from the wall times of its own TensorBoard events (one per
step, written after each call of several steps). Also CelebA preprocessing, peak
memory (os.wait4 of each run) and the time from process start to the first step.
Targets (end-to-end ≥ 95 % of bare, logs, checkpoints and images ≤ 3 %) are
printed, not tested: each ratio is built from figures timed side by side, since
this machine's speed drifts by ±20 % over minutes (other load). The measures
are in utils/benchmark_step.py (in this process) and utils/benchmark_loop.py
(main.py's loop); here, the data they need, the ratios and the table.
"""

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ chatter ("no CUDA")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from utils import cli  # noqa: E402
from utils.benchmark_loop import REPO, loop_schedule, measure_loop  # noqa: E402
from utils.benchmark_step import in_process_rates  # noqa: E402
from utils.celeba import FOLDER_NAME, PARTITION_FILE, load_celeba  # noqa: E402
from utils.data import load_source  # noqa: E402

FULL_CELEBA = 202_599  # images in the real img_align_celeba
OUTPUT = REPO / "predictions" / "benchmark.json"
DATA_ROOT = Path(tempfile.gettempdir()) / "beta_vae_benchmark"
TITLE = "Images/s of the bare train step and of python main.py, overheads, memory."
FULL_SIZE_HELP = f"also train on {FULL_CELEBA:,} CelebA-layout images (memory)"
# `period` is the loop's plot_step; validation and checkpoint steps keep the defaults'
# ratio to it (500/1000). --quick divides them by 100, so its overheads are ~100×
# too large: it checks the tool, not the repo.
SIZES = {
    "default": dict(period=1000, bare_steps=20, rounds=40, celeba_images=5000),
    "quick": dict(
        period=10, bare_steps=4, rounds=3, celeba_images=600, validation_batches=2
    ),
}


def default_params(dataset):
    import params  # the benchmark measures what `python main.py` would train

    return cli.resolve(cli.read_params(params), {"dataset": dataset})


STARTED = time.monotonic()


def say(message):
    print(f"[{time.monotonic() - STARTED:5.0f} s] {message}", file=sys.stderr)


# --- a CelebA-layout folder of synthetic JPEGs


def celeba_folder(data_root, count, distinct=300):
    """data_root/celeba_<count> in CelebA's layout, kept for later runs (the
    partition file, written last, says it is complete). `distinct` 178×218 JPEGs of
    colour fields with grain, ~9 KB as CelebA's 7 KB (their decoding cost is what
    counts), are cycled, which makes 202,599 of them quick to write."""
    root = data_root / f"celeba_{count}"
    if (root / PARTITION_FILE).is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / FOLDER_NAME).mkdir(parents=True)
    rng, jpegs = np.random.default_rng(0), []
    for _ in range(min(distinct, count)):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((178, 218), Image.BICUBIC), np.float32)
        picture = np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255)
        buffer = io.BytesIO()
        Image.fromarray(picture.astype(np.uint8)).save(buffer, "JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    # Official proportions, but at least the 20 × 64 images one validation reads.
    held_out = [min(count // 3, max(count // 10, 1280)), count // 10]  # val, test
    lines = []
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        (root / FOLDER_NAME / name).write_bytes(jpegs[i % len(jpegs)])
        split = (i >= count - sum(held_out)) + (i >= count - held_out[1])
        lines.append(f"{name} {split}")
    (root / PARTITION_FILE).write_text("\n".join(lines) + "\n")
    return root


def preprocessing_rate(root, p, count, builds=3):
    """Images/s of load_celeba building its cache (decode, crop, resize), cold: the
    median of `builds` builds, since one takes seconds and the machine drifts."""
    rates = []
    for _ in range(builds):
        shutil.rmtree(root / "cache", ignore_errors=True)
        started = time.perf_counter()
        load_celeba(root, p["image_size"], p["crop_size"], log=lambda message: None)
        rates.append(count / (time.perf_counter() - started))
    return float(np.median(rates))


# --- one column of the table


def measure(dataset, sizes, data_root, predictions, count=0, full_size=False):
    """In-process rates, then python main.py "cold" (CelebA's cache rebuilt first)
    and "default" (caches built; its figures are the column's)."""
    p = default_params(dataset)
    p["validation_batches"] = sizes.get("validation_batches", p["validation_batches"])
    if dataset == "dsprites":
        from utils.dsprites import NUM_IMAGES

        result, data_dir = {"images": NUM_IMAGES}, data_root / "dsprites"
        runs = ("default",)
    else:
        say(f"{dataset}: {count:,} JPEGs (written once), preprocessed")
        result, data_dir = {"images": count}, celeba_folder(data_root, count)
        result["preprocessing_images_per_s"] = preprocessing_rate(data_dir, p, count)
        runs = ("default",) if full_size else ("cold", "default")
    if not full_size:
        say(f"{dataset}: in this process: bare step, fed by the pipeline, XLA")
        source = load_source(
            dataset, data_dir, p["image_size"], p["crop_size"], log=lambda m: None
        )  # also generates dSprites if absent, before main.py is timed
        result |= in_process_rates(p, source, sizes["bare_steps"], sizes["rounds"])
        del source
    loops = {}
    for run in runs:
        if run == "cold":
            shutil.rmtree(data_dir / "cache")
        say(f"{dataset}: python main.py, {run}")
        name = f"{dataset}{count or ''}_{run}"
        loops[run] = measure_loop(p, data_dir, predictions, name, sizes)
    default = loops["default"]
    result |= {
        k: v for k, v in default.items() if k not in ("images_per_s", "process_s")
    }
    for run, loop in loops.items():
        name = "loop" if run == "default" else f"loop_{run}"
        result[f"{name}_images_per_s"] = loop["images_per_s"]
    if "cold" in loops:
        result["first_step_cold_s"] = loops["cold"]["first_step_s"]
    for key in ("peak_memory_mib", "peak_anonymous_mib"):
        result[key] = max(loop[key] for loop in loops.values())
    if not full_size:
        result |= shares(result)
    return result | {"runs": loops}


def shares(result):
    """The targets' ratios, each from figures measured side by side in one
    process or one run, so that the machine's speed changing between the bare
    step and the loop (other load) does not enter them:
    end-to-end / bare = (fed / bare, interleaved in one process)
                        × (the loop's steps at its own typical pace / its time),
    with the interval of the first factor (the second is one run's sum);
    the cost of logs, checkpoints and images twice: from their parts, each timed
    in process, as many as the loop's window holds, against the window's steps at
    the bare pace (`overhead_parts`, the target's figure); and from the loop's own
    times (`overhead`, a cross-check that nothing else costs: the loop's time
    beyond its steps' typical pace, less its validations, plus the logs, which are
    inside every step; it also counts the machine's bursts of other load); and
    validation's share."""
    window_s = result["window_s"]
    validation_s = result["window_validations"] * result["validation_s"]
    logs_s = result["window_logs"] * result["log_ms"] / 1000
    in_pace = 1 - result["in_run_extra_s"] / window_s
    # The same costs from their parts, each timed in process: as many as the window
    # holds (a best checkpoint at every validation, as while the loss falls),
    # against the window's steps at the bare step's pace.
    parts_s = logs_s + result["step_images_s"] * result["window_plots"]
    parts_s += result["checkpoint_save_s"] * (
        result["window_checkpoints"] + result["window_validations"]
    )
    steps_s = result["window_images"] / result["bare_images_per_s"]
    return {
        "overhead_parts": parts_s / (steps_s + validation_s + parts_s),
        "loop_ratio_raw": result["loop_images_per_s"] / result["bare_images_per_s"],
        "ratio": result["fed_ratio"] * in_pace,
        "ratio_interval": [
            result["fed_ratio_low"] * in_pace,
            result["fed_ratio_high"] * in_pace,
        ],
        "overhead": (result["in_run_extra_s"] - validation_s + logs_s) / window_s,
        "validation_share": validation_s / window_s,
    }


# --- report

ROWS = [  # (JSON key, label); rates in images/s
    ("images", "images in the dataset"),
    ("bare_images_per_s", "bare train step (in-memory batch)"),
    ("bare_xla_images_per_s", "bare train step, XLA (jit_compile=on)"),
    ("fed_images_per_s", "same step fed by the input pipeline"),
    ("pipeline_images_per_s", "input pipeline alone (no model)"),
    ("loop_images_per_s", "end-to-end: python main.py"),
    ("loop_cold_images_per_s", "end-to-end, first pass (cache cold)"),
    ("loop_ratio_raw", "end-to-end / bare, timed minutes apart"),
    ("ratio", "end-to-end / bare, side by side (≥ 95 %)"),
    ("ratio_interval", "  its 90 % interval"),
    ("overhead_parts", "logs + checkpoints + images (≤ 3 %)"),
    ("overhead", "  the same, from the loop's own times"),
    ("validation_share", "validation, at its default frequency"),
    ("log_ms", "  logs, per step (ms)"),
    ("checkpoint_save_s", "  one checkpoint save (s)"),
    ("step_images_s", "  one set of step images, in full (s)"),
    ("validation_checkpoint_s", "  one validation + checkpoints, loop (s)"),
    ("validation_s", "  one validation alone (s)"),
    ("images_s", "  one set of step images, loop's share (s)"),
    ("median_step_ms", "median step in the loop (ms)"),
    ("preprocessing_images_per_s", "CelebA preprocessing into the cache"),
    ("first_step_s", "start → first step, caches built (s)"),
    ("first_step_cold_s", "start → first step, cache cold (s)"),
    ("peak_memory_mib", "peak resident memory of a run (MiB)"),
    ("peak_anonymous_mib", "peak anonymous memory, main process (MiB)"),
]


def cell(key, value):
    if key == "ratio_interval":
        return f"{value[0]:.0%}–{value[1]:.0%}"
    if key in ("ratio", "loop_ratio_raw", "overhead", "overhead_parts",
               "validation_share"):  # fmt: skip
        return f"{value:.1%}"
    whole = key.endswith(("images", "per_s", "_mib"))
    return f"{value:,.0f}" if whole else f"{value:.2f}" if value < 1 else f"{value:.1f}"


def table(results):
    columns = [c for c in ("dsprites", "celeba", "celeba_full") if c in results]
    lines = [f"{'images/s unless said':<42}" + "".join(f"{c:>13}" for c in columns)]
    for key, label in ROWS:
        cells = [cell(key, results[c][key]) if key in results[c] else "—"
                 for c in columns]  # fmt: skip
        lines.append(f"{label:<42}" + "".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser("python -m utils.benchmark", description=TITLE)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test")
    parser.add_argument("--full-size", action="store_true", help=FULL_SIZE_HELP)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--data-root", type=Path, default=DATA_ROOT, help="generated data, kept"
    )
    args = parser.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "default"]
    schedule, window = loop_schedule(default_params("celeba"), sizes["period"])
    settings = dict(
        quick=args.quick, cores=len(os.sched_getaffinity(0)), tensorflow=tf.__version__,
        sizes=sizes, loop=schedule, measured_steps=f"({window[0]}, {window[1]}]",
    )  # fmt: skip
    results = {"settings": settings}
    args.data_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as predictions:
        predictions, count = Path(predictions), sizes["celeba_images"]
        results["dsprites"] = measure("dsprites", sizes, args.data_root, predictions)
        results["celeba"] = measure("celeba", sizes, args.data_root, predictions, count)
        if args.full_size:
            results["celeba_full"] = measure(
                "celeba", sizes, args.data_root, predictions, FULL_CELEBA, True
            )
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
