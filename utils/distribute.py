"""Which devices train: tf.distribute's own strategies, chosen by name.

Keras 3's `fit` cannot train across machines (keras-team/keras#20585), so the loop
in main.py is explicit and runs its step through `strategy.run` on any of these.
"""

import json
import os
import shutil
from pathlib import Path

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker")


class StrategyError(Exception):
    """The requested strategy cannot run here: the message says why. Exit code 2."""


def make_strategy(name):
    """auto: one device, or all local GPUs mirrored when there are several;
    mirrored: all local GPUs (or the CPU); multi_worker: the machines listed in the
    TF_CONFIG environment variable, each with all its local GPUs."""
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise StrategyError(
                "strategy=multi_worker needs the TF_CONFIG environment variable "
                "(the cluster's addresses and this machine's task); see README, "
                "'Several machines'."
            )
        # Must exist before any other TensorFlow op: it starts this worker's server.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Only the chief writes predictions/: logs, images, parameters. With TF_CONFIG,
    the chief is the task of type "chief", or worker 0 when there is none."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get(
        "cluster", {}
    )
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_checkpoint_dir(folder, strategy):
    """Every worker must take part in a checkpoint save (its variables are
    replicated); non-chief workers write theirs to a private scratch folder, which
    `discard_worker_checkpoints` removes, so they never collide with the chief's."""
    if is_chief(strategy):
        return Path(folder)
    resolver = strategy.cluster_resolver
    return Path(folder) / f".worker_{resolver.task_type}{resolver.task_id}"


def discard_worker_checkpoints(folder, strategy):
    if not is_chief(strategy):
        shutil.rmtree(worker_checkpoint_dir(folder, strategy), ignore_errors=True)
