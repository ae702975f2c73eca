"""Which devices train: tf.distribute's own strategies, chosen by name.

Keras 3's `fit` cannot train across machines (keras-team/keras#20585), so the loop
in main.py is explicit and runs its step through `strategy.run` on any of these.
"""

import json
import os
import shutil
from pathlib import Path

import tensorflow as tf

# The TF_CONFIG checks need no TensorFlow, so they live in utils.settings.config, where
# main.py runs them before TensorFlow loads; both names stay importable from here.
from utils.settings.config import StrategyError as StrategyError
from utils.settings.config import check_strategy as check_strategy


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
