"""main.py's train step timed in this process: bare (one batch in memory) and fed
by the real input pipeline, in pairs; with XLA; and the pipeline alone."""

import time

import numpy as np
import tensorflow as tf

from train import build_training
from utils.data.pipeline import distributed_batches


def training(p, image_shape, jit_compile=None):
    """What main.py trains with, on the default strategy (train.build_training):
    its TrainingState (model, both optimizers, step …) and its (train_steps,
    validation_losses). `jit_compile`: None for main.py's choice."""
    built = build_training(p, image_shape, tf.distribute.get_strategy(), jit_compile)
    return built.state, (built.train_steps, built.validation_losses)


def in_memory_batches(p, source):
    """A real batch (noise images train at another speed on this CPU), repeated."""
    batch = source.read(source.splits["train"][: p["batch_size"]])
    return iter(tf.data.Dataset.from_tensors(batch).repeat())


def pipeline_batches(p, source):
    strategy = tf.distribute.get_strategy()
    train = source.splits["train"]
    return iter(distributed_batches(strategy, source, train, p["batch_size"], seed=0))


def timed(run):
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def steps_of(train_steps, batches, counts):
    """A run of len(counts) calls of train_steps, as the loop makes them."""

    def run():
        for count in counts:
            train_steps(batches, count)

    return run


def loop_calls(steps, per_call):
    """`steps` steps in the loop's calls of `per_call` (between its events)."""
    return [per_call] * (steps // per_call) + [steps % per_call] * bool(
        steps % per_call
    )


def step_rates(p, source, train_steps, steps, rounds):
    """Images/s of the bare step (`steps` in one call: the model alone) and of the
    fed step (the loop's calls of steps_per_call, values fetched), and fed / bare
    over `rounds` rounds, each fed run sandwiched between two bare ones: this
    machine's speed wanders by ±20 % within seconds (other tenants' load), which a
    short pair cancels and many pairs average out. Its median, with a bootstrap
    90 % interval. Then the pipeline alone: the headroom a faster device has."""
    in_memory, pipeline = in_memory_batches(p, source), pipeline_batches(p, source)
    bare = steps_of(train_steps, in_memory, [steps])
    fed = steps_of(train_steps, pipeline, loop_calls(steps, p["steps_per_call"]))
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
    images = steps * p["batch_size"]
    pulled = max(steps, 200)
    pipeline_s = timed(lambda: [next(pipeline) for _ in range(pulled)])
    return {
        "bare_images_per_s": images / float(np.median(bare_s)),
        "fed_images_per_s": images / float(np.median(fed_s)),
        "fed_ratio": float(np.median(paired)),
        "fed_ratio_low": float(low),
        "fed_ratio_high": float(high),
        "rounds": rounds,
        "pipeline_images_per_s": pulled * p["batch_size"] / pipeline_s,
    }


def xla_rate(p, source, steps):
    """Images/s of the bare step with each replica's step compiled by XLA
    (jit_compile=on), on a model of its own."""
    _, (train_steps, _) = training(p, source.image_shape, jit_compile=True)
    bare = steps_of(train_steps, in_memory_batches(p, source), [steps])
    timed(bare)  # compiling
    seconds = np.median([timed(bare) for _ in range(3)])
    return {"bare_xla_images_per_s": steps * p["batch_size"] / float(seconds)}
