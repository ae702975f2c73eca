"""The work around main.py's steps, each timed in this process with the functions
the loop calls: one validation, one step's logs, one checkpoint save, one set of
step images, and their TensorBoard image summaries."""

import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import tensorflow as tf

from utils.data.pipeline import test_sets, validation_batches
from utils.objectives import logged_terms
from utils.outputs.logs import RunLogs
from utils.outputs.step_images import step_images
from utils.runs.checkpoints import Checkpoints

# main.py's fixed test images (tests/test_benchmark.py checks they agree).


def overhead_seconds(p, source, state, validation_losses, repeats=5):
    """Each part's seconds (logs: milliseconds per step), with the weights the
    timed steps trained."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        logs = RunLogs(folder, logged_terms(p), p["latent_size"], resume_step=0)
        try:
            images_s, tensorboard_s = step_images_seconds(
                source, state.model, logs, folder, repeats
            )
            return {
                "validation_s": validation_seconds(p, source, validation_losses),
                "log_ms": 1000 * log_seconds(logs, p["latent_size"]),
                "checkpoint_save_s": save_seconds(state, folder, repeats),
                "step_images_s": images_s,
                "tensorboard_images_ms": 1000 * tensorboard_s,
            }
        finally:
            logs.close()


def median_after_first(run, repeats):
    """Median seconds of `repeats` runs of run(number) after a first (tracing,
    folders), numbered 1 …"""
    seconds = []
    for number in range(repeats + 1):
        started = time.perf_counter()
        run(number)
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds[1:]))


def validation_seconds(p, source, validation_losses):
    """One validation: validation_batches batches, one forward pass each."""
    strategy = tf.distribute.get_strategy()
    batches = validation_batches(
        strategy, source, p["validation_batches"], p["batch_size"]
    )
    return median_after_first(lambda _: validation_losses(batches), 3)


def log_seconds(logs, latent_size, rows=2000):
    """Seconds per step of main.py's logging at log_step=1: a log.csv row and a
    TensorBoard event of the step's terms, then one flush (as before a save)."""
    values = dict.fromkeys(logs.terms, np.float32(1.5))
    values["kl_per_latent"] = np.ones(latent_size, np.float32)
    started = time.perf_counter()
    for step in range(1, rows + 1):
        logs.train(step, values)
    logs.flush()
    return (time.perf_counter() - started) / rows


def save_seconds(state, folder, repeats):
    """One checkpoint save as main.py makes them: its whole TrainingState, into
    `latest` or `best`, each written in full."""
    checkpoints = Checkpoints(folder / "checkpoints", **state.trackables())
    return median_after_first(
        lambda number: checkpoints.save(number, best=number % 2 == 1), repeats
    )


def step_images_seconds(source, model, logs, folder, repeats):
    """Medians of one plot step's two parts: the step images (the model's part,
    then the drawing and the files: all of them here, though the loop draws in a
    background thread, since on two busy cores that thread's time is taken from
    the steps), and the `then` the loop gives the drawing: both images into
    TensorBoard, flushed to disk."""
    test_images, kl_images = test_sets(source)
    encoded = {}

    def draw(step):
        encoded[step] = step_images(model, test_images, kl_images, folder, step)()

    def write_to_tensorboard(step):
        then = partial(logs.images, step)  # as main.py's draw() passes it
        then(encoded[step])
        logs.flush()

    return (
        median_after_first(draw, repeats),
        median_after_first(write_to_tensorboard, repeats),
    )
