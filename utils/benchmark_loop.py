"""The benchmark's measure of the real loop (utils/benchmark.py): `python main.py`
in a subprocess, its pace read from the wall times of its own TensorBoard events,
the cost of its validations, checkpoints and images, its start-up and its peak
memory."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from main import steps_in_next_call
from utils import cli

REPO = Path(__file__).resolve().parents[1]


def loop_schedule(p, period):
    """main.py's frequencies, and the window (first, last] of steps measured: one
    period after the first validation, checkpoint and images (their one-time
    tracing and file creation), which a 100k-step run amortises away."""
    names = ("validation_step", "checkpoint_step", "plot_step")
    frequencies = {k: max(1, p[k] * period // p["plot_step"]) for k in names}
    frequencies["log_step"] = p["log_step"]
    last = round(2.1 * period)
    schedule = {**p, "num_steps": last, **frequencies}
    first = min(s for s in call_ends(schedule) if s >= round(1.1 * period))
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


def measure_loop(p, data_dir, predictions, name, sizes):
    schedule, (first, last) = loop_schedule(p, sizes["period"])
    overrides = {
        "dataset": p["dataset"], "data_dir": str(data_dir), "run_name": name,
        "predictions_dir": str(predictions), "metrics_at_end": False,  # after the loop
        "validation_batches": p["validation_batches"],
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

    window_s = times[last] - times[first]
    # What one validation (+ checkpoints), then the images, add: the first
    # validation and the first images in the window.
    validation, plot = (
        (first // schedule[k] + 1) * schedule[k]
        for k in ("validation_step", "plot_step")
    )
    return {
        "images_per_s": (last - first) * p["batch_size"] / window_s,
        "window_s": window_s,
        "window_images": (last - first) * p["batch_size"],
        # How many of each event the window holds.
        **{
            f"window_{name}": last // schedule[key] - first // schedule[key]
            for name, key in (
                ("validations", "validation_step"),
                ("checkpoints", "checkpoint_step"),
                ("plots", "plot_step"),
                ("logs", "log_step"),
            )
        },  # fmt: skip
        "median_step_ms": 1000 * typical,
        # The window's time beyond its steps at their typical pace: validation,
        # checkpoints, images.
        "in_run_extra_s": window_s - typical * (last - first),
        "validation_checkpoint_s": extra(validation),
        "images_s": extra(plot) - extra(validation),
        # The first call's end, less its other steps at the typical pace.
        "first_step_s": times[ends[0]] - start - typical * (ends[0] - 1),
        "process_s": seconds,
        "peak_memory_mib": peak,
        "peak_anonymous_mib": anonymous,
    }
