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
TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


class StrategyError(Exception):
    """The requested strategy cannot run here: the message says why. Exit code 2."""


def make_strategy(name):
    """auto: one device, or all local GPUs mirrored when there are several;
    mirrored: all local GPUs (or the CPU); multi_worker: the machines listed in the
    TF_CONFIG environment variable, each with all its local GPUs."""
    check_strategy(name)
    if name == "multi_worker":
        # Must exist before any other TensorFlow op: it starts this worker's gRPC
        # server. Nothing may fork after that (gRPC is not fork-safe, grpc#14055).
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def use_xla(jit_compile, strategy):
    """jit_compile = auto | on | off → whether XLA compiles the train step. auto,
    as Keras's own: on with a GPU and one device, where fusing the element-wise
    work around the small convolutions pays; off on CPU (2× slower here, README,
    Performance) and under a multi-device strategy, whose all-reduce inside an
    XLA cluster not every setup supports. on forces it."""
    if jit_compile == "auto":
        one_device = strategy is tf.distribute.get_strategy()  # the default one
        return one_device and bool(tf.config.list_logical_devices("GPU"))
    return jit_compile == "on"


def check_strategy(name):
    """Raise StrategyError if `make_strategy(name)` cannot work, without starting
    TensorFlow: cheap enough to call before a long data load."""
    if name == "multi_worker":
        read_tf_config()


def read_tf_config():
    """TF_CONFIG as a dict, checked: this task must be one of the cluster's."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise StrategyError(
            "strategy=multi_worker needs the TF_CONFIG environment variable "
            "(the cluster's addresses and this machine's task), e.g. "
            f"TF_CONFIG='{TF_CONFIG_EXAMPLE}'; see README, 'Several machines'."
        )
    try:
        config = json.loads(text)
        task = config["task"]
        addresses = config["cluster"][task["type"]]
        index = task["index"]
        if not isinstance(index, int) or not 0 <= index < len(addresses):
            raise IndexError(f"task index {index!r} is not one of the {task['type']}s")
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise StrategyError(
            f"TF_CONFIG={text!r} is not a cluster with this task in it "
            f"({type(error).__name__}: {error}); expected e.g. {TF_CONFIG_EXAMPLE}"
        ) from None
    return config


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
