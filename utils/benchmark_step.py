"""The benchmark's measures inside one process (utils/benchmark.py): main.py's
train step bare and fed by the input pipeline, timed in pairs; the pipeline
alone; and the work around the steps (validation, logs, checkpoints, images)."""

import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from main import NUM_TEST_IMAGES, build_model, build_optimizer
from models import ObjectiveSettings
from utils.checkpoints import Checkpoints
from utils.data import (
    distributed_batches,
    fixed_indices,
    to_float,
    validation_batches,
)
from utils.logs import CsvLog, TensorBoard, log_train_step
from utils.steps import make_steps
from utils.visualize import step_images


def in_process_rates(p, source, steps, rounds):
    """In this process, on the default strategy, with main.py's model, optimizer
    and steps (utils.steps):
    - bare: one batch in memory, `steps` steps in one call: the model alone;
    - fed: the real input pipeline (utils.data) and the loop's calls of
      steps_per_call with their values fetched;
    - fed / bare from `rounds` rounds, each fed run sandwiched between two bare
      ones: this machine's speed wanders by ±20 % within seconds (other tenants'
      load on shared cores), which a short pair cancels and many pairs average
      out; its median, with a bootstrap 90 % interval;
    - bare with each replica's step compiled by XLA (jit_compile=on);
    - the input pipeline alone, with no model;
    - one validation (validation_batches batches), one step's logging, one
      checkpoint save and one set of step images."""
    shape = source.image_shape
    # A real batch (noise images train at another speed on this CPU), held in memory.
    batch = source.read(source.splits["train"][: p["batch_size"]])
    in_memory = iter(tf.data.Dataset.from_tensors(batch).repeat())
    strategy = tf.distribute.get_strategy()
    pipeline = iter(
        distributed_batches(
            strategy, source, source.splits["train"], p["batch_size"], seed=0
        )
    )
    per_call = p["steps_per_call"]  # the loop's calls, between its events
    calls = [per_call] * (steps // per_call) + [steps % per_call] * bool(
        steps % per_call
    )

    def timed(run):
        started = time.perf_counter()
        run()
        return time.perf_counter() - started

    def images_per_s(seconds, count=steps):
        return count * p["batch_size"] / float(np.median(seconds))

    def steps_of(train_steps, batches, counts):
        def run():
            for count in counts:
                values = train_steps(batches, tf.constant(count, tf.int32))
                {k: v.numpy() for k, v in values.items()}

        return run

    (train_steps, validation_losses), trackables = build_steps(p, shape)
    bare, fed = (
        steps_of(train_steps, in_memory, [steps]),
        steps_of(train_steps, pipeline, calls),
    )
    timed(bare), timed(fed)  # tracing, warm-up
    bare_s, fed_s = [timed(bare)], []
    for _ in range(rounds):
        fed_s.append(timed(fed))
        bare_s.append(timed(bare))
    bare_s, fed_s = np.array(bare_s), np.array(fed_s)
    # Each fed run against the mean of the bare runs either side of it.
    paired = (bare_s[:-1] + bare_s[1:]) / 2 / fed_s
    resampled = np.random.default_rng(0).choice(paired, (2000, len(paired)))
    low, high = np.percentile(np.median(resampled, axis=1), [5, 95])
    rates = {
        "bare_images_per_s": images_per_s(bare_s),
        "fed_images_per_s": images_per_s(fed_s),
        "fed_ratio": float(np.median(paired)),
        "fed_ratio_low": float(low),
        "fed_ratio_high": float(high),
        "rounds": rounds,
    }
    # The pipeline alone, as fast as it can go: the headroom a faster device has.
    pulled = max(steps, 200)
    seconds = timed(lambda: [next(pipeline) for _ in range(pulled)])
    rates["pipeline_images_per_s"] = pulled * p["batch_size"] / seconds

    validation = validation_batches(
        strategy, source, p["validation_batches"], p["batch_size"]
    )
    validation_losses(validation)  # tracing
    rates["validation_s"] = float(
        np.median([timed(lambda: validation_losses(validation)) for _ in "abc"])
    )
    rates["log_ms"] = 1000 * log_seconds(p["latent_size"])
    rates["checkpoint_save_s"], rates["step_images_s"] = saving_and_drawing_seconds(
        source, trackables
    )

    (xla_steps, _), _ = build_steps(p, shape, jit_compile=True)
    xla = steps_of(xla_steps, in_memory, [steps])
    timed(xla)  # compiling
    rates["bare_xla_images_per_s"] = images_per_s([timed(xla) for _ in "abc"])
    return rates


def build_steps(p, image_shape, jit_compile=False):
    """main.py's model, optimizer and steps, on the default strategy →
    (train_steps, validation_losses), and the trackables: model, optimizer, step."""
    model = build_model(p, image_shape)
    optimizer = build_optimizer(p)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    steps = make_steps(
        tf.distribute.get_strategy(), model, optimizer, step,
        ObjectiveSettings.of(p), p["batch_size"], 0, jit_compile=jit_compile,
    )  # fmt: skip
    return steps, dict(model=model, optimizer=optimizer, step=step)


def saving_and_drawing_seconds(source, trackables, repeats=5):
    """Medians of: one checkpoint save as main.py makes them (model, optimizer,
    step; `latest`, or `best`, each written in full), and one set of step images
    (the decoder call, then the drawing and the files, here not in the
    background: on two busy cores the drawing thread's time is taken from the
    steps). Both with the weights the timed steps trained."""
    test_images = to_float(
        source.read(fixed_indices(source.splits["test"], NUM_TEST_IMAGES))
    )
    save_s, images_s = [], []
    with tempfile.TemporaryDirectory() as folder:
        checkpoints = Checkpoints(Path(folder) / "checkpoints", **trackables)
        for number in range(repeats + 1):  # the first: tracing, folders
            started = time.perf_counter()
            checkpoints.save(number, best=number % 2 == 1)
            save_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            step_images(trackables["model"], test_images, Path(folder), number)()
            images_s.append(time.perf_counter() - started)
    return float(np.median(save_s[1:])), float(np.median(images_s[1:]))


def log_seconds(latent_size, rows=2000):
    """Seconds per step of main.py's logging at log_step=1: a log.csv row and a
    TensorBoard event of the step's scalars."""
    names = ["loss", "reconstruction_loss", "kl", "beta"]
    latents = [f"kl_z{i}" for i in range(latent_size)]
    values = dict.fromkeys(names, np.float32(1.5)) | {
        "kl_per_latent": np.ones(latent_size, np.float32)
    }
    with tempfile.TemporaryDirectory() as folder:
        log = CsvLog(Path(folder) / "log.csv", ["step", *names, *latents])
        tensorboard = TensorBoard(Path(folder) / "tensorboard")
        started = time.perf_counter()
        for step in range(1, rows + 1):
            log_train_step(log, tensorboard, step, values, names, latents)
        log.flush(), tensorboard.flush()
        seconds = time.perf_counter() - started
        log.close()
    return seconds / rows
