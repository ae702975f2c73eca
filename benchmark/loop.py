"""`python main.py` measured from outside, as a process: the real loop at the
default frequencies, its pace read from the wall times of its own TensorBoard
events, the cost of its validations, checkpoints and images, its start-up and its
peak memory; and how long `python main.py --help` takes."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from benchmark.memory import RUN_REPORTING_PEAK, status_mib
from train import EventSchedule
from utils.settings import cli

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "main.py"


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
    return EventSchedule.of(p).call_ends()


def run_main(args, log_path):
    """`python main.py ARGS` → (start wall time, seconds, peak resident MiB, peak
    anonymous MiB) of its main process. Resident memory counts the pages of a
    memory-mapped cache that the run has read (clean, given back under pressure);
    anonymous memory is the process's own (a float32 copy of a dataset would show
    there). The peak is the run's own VmHWM (benchmark/memory.py): ru_maxrss would
    report this TensorFlow-loaded process's peak whenever that was higher."""
    peak_file = Path(f"{log_path}.peak")
    with open(log_path, "w") as log:
        start, anonymous = time.time(), 0
        process = subprocess.Popen(
            [sys.executable, "-c", RUN_REPORTING_PEAK, str(peak_file), MAIN, *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
        while process.poll() is None:
            anonymous = max(anonymous, status_mib("RssAnon", process.pid))
            time.sleep(0.2)
    if process.returncode:
        tail = Path(log_path).read_text()[-3000:]
        raise RuntimeError(f"main.py {' '.join(args)} failed:\n{tail}")
    return start, time.time() - start, float(peak_file.read_text()), anonymous


def step_times(run_folder):
    """{step: wall time of its train scalars}, from the TensorBoard events (the
    step images, written later by the drawing thread, are left out)."""
    times = {}
    for path in sorted((run_folder / "tensorboard" / "train").glob("events.out.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            if any(value.HasField("simple_value") for value in event.summary.value):
                times[event.step] = min(event.wall_time, times.get(event.step, 1e30))
    return times


def help_seconds(runs=5):
    """Median wall time of `python main.py --help`, Python's start-up included:
    what a user waits for (it imports no TensorFlow)."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(MAIN), "--help"],
            check=True, capture_output=True, stdin=subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds))


def measure_loop(p, data_dir, predictions, name, sizes):
    """`python main.py` with the parameters `p` at the frequencies of
    loop_schedule, into predictions/name → its figures."""
    schedule, window = loop_schedule(p, sizes["period"])
    overrides = {
        "dataset": p["dataset"], "data_dir": str(data_dir), "run_name": name,
        "predictions_dir": str(predictions), "metrics_at_end": False,  # after the loop
        "validation_batches": p["validation_batches"],
        **schedule,
    }  # fmt: skip
    args = [cli.as_argument(k, v) for k, v in overrides.items()]
    start, seconds, peak, anonymous = run_main(args, predictions / f"{name}.log")
    times = step_times(predictions / name)
    return {
        **pace(times, {**p, **schedule}, window, start),
        **window_counts(schedule, window),
        "process_s": seconds,
        "peak_memory_mib": peak,
        "peak_anonymous_mib": anonymous,
    }


def pace(times, p, window, start):
    """The loop's pace in the window (first, last] of steps, from the wall times of
    its calls' ends, and what its events and its start-up add to it."""
    first, last = window
    ends = call_ends(p)
    inside = [s for s in ends if first <= s <= last]
    typical = float(np.median(np.diff([times[s] for s in inside]) / np.diff(inside)))

    def extra(step):  # what the call after `step` took beyond its steps' share
        after = ends[ends.index(step) + 1]
        return times[after] - times[step] - typical * (after - step)

    # What one validation (+ checkpoints), then the images, add: the first
    # validation and the first images in the window.
    validation, plot = (
        (first // p[k] + 1) * p[k] for k in ("validation_step", "plot_step")
    )
    window_s = times[last] - times[first]
    return {
        "images_per_s": (last - first) * p["batch_size"] / window_s,
        "window_s": window_s,
        "window_images": (last - first) * p["batch_size"],
        "median_step_ms": 1000 * typical,
        # The window's time beyond its steps at their typical pace: validation,
        # checkpoints, images.
        "in_run_extra_s": window_s - typical * (last - first),
        "validation_checkpoint_s": extra(validation),
        "images_s": extra(plot) - extra(validation),
        # The first call's end, less its other steps at the typical pace.
        "first_step_s": times[ends[0]] - start - typical * (ends[0] - 1),
    }


def window_counts(schedule, window):
    """How many of each event the window (first, last] holds."""
    first, last = window
    events = {
        "validations": "validation_step", "checkpoints": "checkpoint_step",
        "plots": "plot_step", "logs": "log_step",
    }  # fmt: skip
    return {
        f"window_{name}": last // schedule[key] - first // schedule[key]
        for name, key in events.items()
    }
