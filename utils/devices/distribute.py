"""Which devices train: tf.distribute's own strategies, chosen by name.

Keras 3's `fit` cannot train across machines (keras-team/keras#20585), so the loop
in main.py is explicit and runs its step through `strategy.run` on any of these.
"""

import json
import os
import shutil
import signal
import socket
from pathlib import Path

import tensorflow as tf

from utils.processes import ExitAfter

# The TF_CONFIG checks need no TensorFlow, so they live in utils.settings.config, where
# main.py runs them before TensorFlow loads; both names stay importable from here.
from utils.settings.config import StrategyError as StrategyError
from utils.settings.config import check_strategy as check_strategy


def make_strategy(name, cluster_timeout=600):
    """auto: one device, or all local GPUs mirrored when there are several;
    mirrored: all local GPUs (or the CPU); multi_worker: the machines listed in the
    TF_CONFIG environment variable, each with all its local GPUs, once all are up
    (the process ends with exit code 2 after `cluster_timeout` seconds)."""
    check_strategy(name)
    if name == "multi_worker":
        # Must exist before any other TensorFlow op: it starts this worker's gRPC
        # server. Nothing may fork after that (gRPC is not fork-safe, grpc#14055).
        return join_cluster(cluster_timeout)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def join_cluster(timeout):
    """MultiWorkerMirroredStrategy(), which waits for every worker of TF_CONFIG
    inside TensorFlow's C++ with the GIL held: no Python code runs meanwhile, no
    signal handler, no timer of Python's. Forever, deaf to Ctrl-C and SIGTERM, if a
    worker never comes. So: say which workers are not up yet; while waiting, let
    Ctrl-C end the process at once (nothing is trained yet: exit 130); and after
    `timeout` seconds a POSIX timer ends it with exit code 2 (utils/processes.py),
    as the message said it would. SIGTERM cannot end it sooner: TensorFlow's
    coordination service installs a SIGTERM handler of its own as it joins (its
    preemption notifier), which only takes note."""
    stops = (signal.SIGINT, signal.SIGTERM)
    handlers = {signum: signal.signal(signum, signal.SIG_DFL) for signum in stops}
    missing = unreachable_peers()
    print(
        f"Joining the cluster of TF_CONFIG: waiting for "
        f"{', '.join(missing) or 'no one (all are up)'}; giving up after "
        f"{timeout:g} s with exit code 2 (--cluster_timeout); Ctrl-C stops at once",
        flush=True,
    )
    deadline = ExitAfter(timeout, code=2)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        deadline.cancel()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def unreachable_peers():
    """The other tasks of TF_CONFIG's cluster whose address takes no connection
    yet, as "worker 1 (host:port)": their process has not started its server."""
    config = json.loads(os.environ["TF_CONFIG"])
    me = (config["task"]["type"], config["task"]["index"])
    missing = []
    for job, addresses in config["cluster"].items():
        for index, address in enumerate(addresses):
            if (job, index) == me or job == "evaluator":  # it trains apart
                continue
            host, port = address.rsplit(":", 1)
            try:
                socket.create_connection((host.strip("[]"), int(port)), 0.5).close()
            except OSError:
                missing.append(f"{job} {index} ({address})")
    return missing


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
