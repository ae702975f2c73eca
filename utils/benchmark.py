"""Is the model the bottleneck, never the input? `python -m utils.benchmark`.

Images/second of the bare train step on an in-memory batch, and of the real loop:
`python main.py` in a subprocess at the default frequencies, its steady-state rate
read from the wall times of its own TensorBoard events (one per step, exact). Also
the loop with logs, checkpoints and images nearly off, CelebA preprocessing, peak
memory (os.wait4 of each run) and the time from process start to the first step.
Targets (end-to-end ≥ 95 % of bare, logs and images ≤ 3 %) are printed, not tested.
"""

import argparse
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ chatter ("no CUDA")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from main import build_model, build_optimizer, steps_in_next_call  # noqa: E402
from models import ObjectiveSettings  # noqa: E402
from utils import cli  # noqa: E402
from utils.celeba import FOLDER_NAME, PARTITION_FILE, load_celeba  # noqa: E402
from utils.steps import make_steps  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FULL_CELEBA = 202_599  # images in the real img_align_celeba
OUTPUT = REPO / "predictions" / "benchmark.json"
DATA_ROOT = Path(tempfile.gettempdir()) / "beta_vae_benchmark"
TITLE = "Images/s of the bare train step and of python main.py, overheads, memory."
FULL_SIZE_HELP = f"also train on {FULL_CELEBA:,} CelebA-layout images (memory)"
# `period` is the loop's plot_step; validation and checkpoint steps keep the defaults'
# ratio to it (500/1000). --quick divides them by 100, so its overheads are ~100×
# too large: it checks the tool, not the repo.
SIZES = {
    "default": dict(period=1000, bare_steps=50, celeba_images=5000),
    "quick": dict(period=10, bare_steps=4, celeba_images=600, validation_batches=2),
}


def default_params(dataset):
    import params  # the benchmark measures what `python main.py` would train

    return cli.resolve(cli.read_params(params), {"dataset": dataset})


STARTED = time.monotonic()


def say(message):
    print(f"[{time.monotonic() - STARTED:5.0f} s] {message}", file=sys.stderr)


# --- the bare step: no input pipeline, no logs


def bare_rates(p, steps):
    """Images/s of utils.steps' train step (default strategy) on one in-memory
    batch, all `steps` in one call: the model's own speed, with no Python between
    steps. Then the same with each replica's step compiled by XLA (jit_compile=on).
    Each after warm-up, the median of three calls of `steps`, so that a burst of
    other load moves it less."""
    channels = 1 if p["dataset"] == "dsprites" else 3
    shape = (p["image_size"], p["image_size"], channels)
    pixels = np.random.default_rng(0).integers(0, 256, (p["batch_size"], *shape))
    if channels == 1:
        pixels = (pixels >= 128) * 255  # dSprites is binary
    batches = iter(tf.data.Dataset.from_tensors(pixels.astype(np.uint8)).repeat())
    rates = {}
    for key, xla in (("bare", False), ("bare_xla", True)):
        model = build_model(p, shape)
        optimizer = build_optimizer(p)
        optimizer.build(model.trainable_variables)
        cfg, step = ObjectiveSettings.of(p), tf.Variable(0, dtype=tf.int64)
        train_steps, _ = make_steps(
            tf.distribute.get_strategy(), model, optimizer, step, cfg,
            p["batch_size"], 0, jit_compile=xla,
        )  # fmt: skip
        seconds = []
        for count in (5, steps, steps, steps):  # first: tracing (compiling), warm-up
            started = time.perf_counter()
            values = train_steps(batches, tf.constant(count, tf.int32))
            {k: v.numpy() for k, v in values.items()}
            seconds.append(time.perf_counter() - started)
        rates[f"{key}_images_per_s"] = (
            steps * p["batch_size"] / float(np.median(seconds[1:]))
        )
    return rates


# --- the real loop: python main.py in a subprocess


def loop_schedule(p, period, off=False):
    """main.py's frequencies, and the window (first, last] of steps measured: one
    period after the first validation, checkpoint and images (their one-time
    tracing and file creation), which a 100k-step run amortises away. "off" keeps
    validation (and its best checkpoint) and drops the logs, latest checkpoints
    and images to the last step, a log row just often enough to time the run."""
    names = ("validation_step", "checkpoint_step", "plot_step")
    frequencies = {k: max(1, p[k] * period // p["plot_step"]) for k in names}
    frequencies["log_step"] = p["log_step"]
    last = round(2.1 * period)
    schedule = {**p, "num_steps": last, **frequencies}
    ends = call_ends(schedule)  # first: the first step a call ends at after 1.1 periods
    first = min(s for s in ends if s >= round(1.1 * period))
    if off:
        frequencies |= {"checkpoint_step": last, "plot_step": last}
        frequencies["log_step"] = math.gcd(*call_ends({**schedule, **frequencies}))
    return {"num_steps": last, **frequencies}, (first, last)


def call_ends(p):
    """The steps at which main.py's calls of several steps end (it logs each call's
    steps together, so only these have distinct wall times)."""
    ends, current = [], 0
    while current < p["num_steps"]:
        current += steps_in_next_call(current, p)
        ends.append(current)
    return ends


def run_main(args, log_path):
    """`python main.py ARGS` → (start wall time, seconds, peak resident MiB, peak
    anonymous MiB). Resident memory counts the pages of a memory-mapped cache that
    the run has read (clean, given back under pressure); anonymous memory is the
    process's own (a float32 copy of a dataset would show there)."""
    with open(log_path, "w") as log:
        start, anonymous = time.time(), 0
        process = subprocess.Popen(
            [sys.executable, str(REPO / "main.py"), *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
        while not (reaped := os.wait4(process.pid, os.WNOHANG))[0]:
            anonymous = max(anonymous, anonymous_mib(process.pid))
            time.sleep(0.2)
        # The child's own rusage: its largest process, pool workers included.
        _, status, usage = reaped
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        tail = Path(log_path).read_text()[-3000:]
        raise RuntimeError(f"main.py {' '.join(args)} failed:\n{tail}")
    return start, time.time() - start, usage.ru_maxrss / 1024, anonymous  # KiB


def anonymous_mib(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # just exited
        return 0
    line = next(
        (line for line in status.splitlines() if line.startswith("RssAnon")), ""
    )
    return int(line.split()[1]) / 1024 if line else 0  # "RssAnon:  1234 kB"


def step_times(run_folder):
    """{step: wall time of its first train scalar}, from the TensorBoard events."""
    times = {}
    for path in sorted((run_folder / "tensorboard" / "train").glob("events.out.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            if event.summary.value:
                times[event.step] = min(event.wall_time, times.get(event.step, 1e30))
    return times


def measure_loop(p, data_dir, predictions, name, sizes, off=False):
    schedule, (first, last) = loop_schedule(p, sizes["period"], off)
    overrides = {
        "dataset": p["dataset"], "data_dir": str(data_dir), "run_name": name,
        "predictions_dir": str(predictions), "metrics_at_end": False,  # after the loop
        "validation_batches": sizes.get("validation_batches", p["validation_batches"]),
        **schedule,
    }  # fmt: skip
    args = [cli.as_argument(k, v) for k, v in overrides.items()]
    start, seconds, peak, anonymous = run_main(args, predictions / f"{name}.log")
    times = step_times(predictions / name)
    ends = call_ends({**p, **schedule})
    window = [s for s in ends if first <= s <= last]
    typical = float(np.median(np.diff([times[s] for s in window]) / np.diff(window)))

    def extra(step):  # what the call after `step` took beyond its steps' share
        after = ends[ends.index(step) + 1]
        return times[after] - times[step] - typical * (after - step)

    result = {
        "images_per_s": (last - first) * p["batch_size"] / (times[last] - times[first]),
        "median_step_ms": 1000 * typical,
        "process_s": seconds,
        "peak_memory_mib": peak,
        "peak_anonymous_mib": anonymous,
    }
    if not off:  # what one validation (+ checkpoints), then the images, add to a step
        # The first validation, and the first images, in the window.
        validation, plot = (
            (first // schedule[k] + 1) * schedule[k]
            for k in ("validation_step", "plot_step")
        )
        result["validation_checkpoint_s"] = extra(validation)
        result["images_s"] = extra(plot) - extra(validation)
        # The first call's end, less its other steps at the typical rate.
        result["first_step_s"] = times[ends[0]] - start - typical * (ends[0] - 1)
    return result


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


def preprocessing_rate(root, p, count):
    """Images/s of load_celeba building its cache (decode, crop, resize), cold."""
    shutil.rmtree(root / "cache", ignore_errors=True)
    started = time.perf_counter()
    load_celeba(root, p["image_size"], p["crop_size"], log=lambda message: None)
    return count / (time.perf_counter() - started)


# --- one column of the table


def measure(dataset, sizes, data_root, predictions, count=0, full_size=False):
    """The loop runs "cold" (CelebA's cache rebuilt first), "default" (caches
    built; its figures are the column's) and "off" (logs, checkpoints, images)."""
    p = default_params(dataset)
    if dataset == "dsprites":
        from utils.dsprites import NUM_IMAGES

        result, data_dir = {"images": NUM_IMAGES}, data_root / "dsprites"
        runs = ("off", "default")  # "off" first: it generates dSprites if absent
    else:
        say(f"{dataset}: {count:,} JPEGs (written once), preprocessed")
        result, data_dir = {"images": count}, celeba_folder(data_root, count)
        result["preprocessing_images_per_s"] = preprocessing_rate(data_dir, p, count)
        runs = ("default",) if full_size else ("cold", "default", "off")
    if not full_size:
        say(f"{dataset}: bare step, then with XLA")
        result |= bare_rates(p, sizes["bare_steps"])
    loops = {}
    for run in runs:
        if run == "cold":
            shutil.rmtree(data_dir / "cache")
        say(f"{dataset}: python main.py, {run}")
        name = f"{dataset}{count or ''}_{run}"
        loops[run] = measure_loop(p, data_dir, predictions, name, sizes, run == "off")
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
        result["ratio"] = result["loop_images_per_s"] / result["bare_images_per_s"]
        off = result["loop_off_images_per_s"]
        result["overhead"] = 1 - result["loop_images_per_s"] / off
    return result | {"runs": loops}


# --- report

ROWS = [  # (JSON key, label); rates in images/s
    ("images", "images in the dataset"),
    ("bare_images_per_s", "bare train step"),
    ("bare_xla_images_per_s", "bare train step, XLA (jit_compile)"),
    ("loop_images_per_s", "end-to-end: python main.py"),
    ("loop_cold_images_per_s", "end-to-end, first pass (cache cold)"),
    ("ratio", "end-to-end / bare (target ≥ 95 %)"),
    ("loop_off_images_per_s", "end-to-end, logs/checkpoints/images off"),
    ("overhead", "cost of those (target ≤ 3 %)"),
    ("validation_checkpoint_s", "  one validation + checkpoints (s)"),
    ("images_s", "  one set of step images (s)"),
    ("median_step_ms", "median step in the loop (ms)"),
    ("preprocessing_images_per_s", "CelebA preprocessing into the cache"),
    ("first_step_s", "start → first step, caches built (s)"),
    ("first_step_cold_s", "start → first step, cache cold (s)"),
    ("peak_memory_mib", "peak resident memory of a run (MiB)"),
    ("peak_anonymous_mib", "peak anonymous memory, main process (MiB)"),
]


def cell(key, value):
    if key in ("ratio", "overhead"):
        return f"{value:.1%}"
    whole = key.endswith(("images", "per_s", "_mib"))
    return f"{value:,.0f}" if whole else f"{value:.1f}"


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
