"""The same training loop on one device, two mirrored devices and two worker
processes: the same losses and weights, and only the chief writes the run.

Each scenario runs in a fresh process: logical devices and TF_CONFIG must be set
before TensorFlow initialises, and this process has already initialised it."""

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import write_celeba_folder

from utils.devices.distribute import (
    StrategyError,
    check_strategy,
    discard_worker_checkpoints,
    is_chief,
    make_strategy,
    worker_checkpoint_dir,
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds for any one scenario: a hung collective fails, not blocks CI
ENV = {
    **os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONPATH": str(REPO),
}  # fmt: skip

# --- one device and two mirrored devices: the same numbers

MIRRORED = """
import json
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
from models import BetaVAE, ObjectiveSettings, build_optimizers
from utils.data.pipeline import distributed_batches
from train import make_steps
sys.path.insert(0, "tests")  # this script runs in a process of its own
from conftest import objective_settings

class FakeSource:  # 36 train images: batches of 8 straddle the epochs
    image_shape = (32, 32, 1)
    images = np.random.default_rng(0).integers(0, 256, (44, 32, 32, 1), np.uint8)
    splits = {"train": np.arange(36), "validation": np.arange(36, 44)}

    def read(self, indices):
        return self.images[np.asarray(indices)]

def train(strategy, objective, initial_weights=None):
    source = FakeSource()
    keras.utils.set_random_seed(1)
    p = {
        "learning_rate": 1e-3, "adam_beta_1": 0.5, "adam_beta_2": 0.999,
        "adam_epsilon": 1e-7, "precision": "float32",
    }  # fmt: skip
    with strategy.scope():
        model = BetaVAE(
            source.image_shape, [[8, 4, 2]] * 4, [[16]], 3,
            discriminator=objective == "factor",
        )
        optimizers = build_optimizers(p, model)
        step = tf.Variable(0, dtype=tf.int64)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    initial = model.get_weights()
    cfg = objective_settings(objective=objective, beta=6.0, lambda_od=2.0, lambda_d=5.0)
    train_steps, validation_losses = make_steps(
        strategy, model, optimizers, step, cfg, 8, 7
    )
    batches = iter(
        distributed_batches(strategy, source, source.splits["train"], 8, seed=5)
    )
    steps = []
    for count in (1, 4, 5):  # 10 steps, in calls of several steps each
        values = train_steps(batches, count)
        steps += [
            {k: np.asarray(v[i]).tolist() for k, v in values.items()}
            for i in range(count)
        ]
    validation = distributed_batches(
        strategy, source, source.splits["validation"], 8, num_steps=1
    )
    return {
        "replicas": strategy.num_replicas_in_sync,
        "steps": steps,
        "validation": validation_losses(validation),
        "initial": [w.tolist() for w in initial],
        "final": [w.tolist() for w in model.get_weights()],
    }

# One strategy of each kind for every objective: a second MirroredStrategy in one
# process would reuse the first one's collective keys.
one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
two_devices = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
runs = {}
for objective in sys.argv[1:]:
    one = train(one_device, objective)
    two = train(
        two_devices, objective, [np.asarray(w, np.float32) for w in one["initial"]]
    )
    runs[objective] = {"one": one, "two": two}
print(json.dumps(runs))
"""


# The batch-level mechanics (all-gather with its gradient: tc, dip2; the global
# permutation: factor; global-batch scalars: dip2, beta) by default; the others,
# which add none, with the slow tests.
DEFAULT_OBJECTIVES = ("beta", "tc", "factor", "dip2")
OTHER_OBJECTIVES = ("capacity", "dip1")


@functools.cache
def trained_on_one_and_two_devices(objectives):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, *objectives], cwd=REPO, env=ENV,
        capture_output=True, text=True, timeout=3 * TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "objective",
    [
        *DEFAULT_OBJECTIVES,
        *(pytest.param(o, marks=pytest.mark.slow) for o in OTHER_OBJECTIVES),
    ],
)
def test_two_mirrored_devices_train_exactly_like_one(objective):
    group = DEFAULT_OBJECTIVES if objective in DEFAULT_OBJECTIVES else OTHER_OBJECTIVES
    runs = trained_on_one_and_two_devices(group)
    one, two = (runs[objective][k] for k in ("one", "two"))
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for a, b in zip(one["initial"], two["initial"], strict=True):
        np.testing.assert_array_equal(a, b)

    # Every logged value, step by step: each replica reads its half of the global
    # batch, uses its slice of the global noise and permutation, sees the global
    # batch where the objective needs it (TC, covariance) and divides by the global
    # batch.
    assert len(one["steps"]) == len(two["steps"]) == 10
    for a, b in zip(one["steps"], two["steps"], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)
    losses = [s["loss"] for s in one["steps"]]
    assert len(set(losses)) == len(losses)  # each step a different batch
    for key in one["validation"]:
        expected = pytest.approx(one["validation"][key], rel=1e-4, abs=1e-5)
        assert two["validation"][key] == expected  # as the steps: KL can be ~1e-4

    moved = 0.0
    for start, a, b in zip(one["initial"], one["final"], two["final"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        moved = max(moved, float(np.max(np.abs(np.subtract(a, start)))))
    assert moved > 1e-3, "the weights barely moved: the comparison proves nothing"


# --- two worker processes on this machine: one run, written by the chief

SMALL = [
    "--dataset=celeba", "--image_size=32", "--latent_size=4", "--batch_size=8",
    "--conv_layers=[[8,4,2],[8,4,2],[8,4,2],[8,4,2]]", "--dense_layers=[[32]]",
    "--validation_batches=1", "--seed=3", "--validation_step=3",
    "--checkpoint_step=3", "--plot_step=100",
]  # fmt: skip

# main.py as `python main.py` runs it, with one observer: after each checkpoint
# save, this process's weights go to $WEIGHTS_DIR, so the test can compare the
# chief's with a worker's (a worker's own checkpoints are discarded by design).
WITH_WEIGHT_DUMPS = """
import json, os, runpy, sys
import numpy as np
from utils.runs.checkpoints import Checkpoints

task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
save = Checkpoints.save

def save_and_dump(self, step, best=False):
    save(self, step, best=best)
    name = f"task{task}_step{step:07d}_{'best' if best else 'latest'}.npz"
    weights = [w.numpy() for w in self.checkpoint.model.weights]
    np.savez(os.path.join(os.environ["WEIGHTS_DIR"], name), *weights)

Checkpoints.save = save_and_dump
sys.argv = sys.argv[1:]  # main.py ARGS
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def celeba_dir(tmp_path_factory):
    """40 images: 24 train, 8 validation, 8 test. No cache yet: the workers build
    it, as on a first run."""
    return write_celeba_folder(tmp_path_factory.mktemp("celeba"), 40, 24, 8)


def free_ports(count):
    """Ports nobody listens on now, all different: bound together, then released."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(args, tmp_path, session):
    """Both workers of a 2-worker cluster on 127.0.0.1, each from its own empty
    working directory → per worker (returncode, stdout, stderr). Fresh ports
    each session: a restarted cluster must not wait for the old ones."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    command = [sys.executable, "-c", WITH_WEIGHT_DUMPS, str(REPO / "main.py"), *args]
    processes, outputs = [], []
    try:
        for index in range(2):
            cwd = tmp_path / f"cwd{index}"
            cwd.mkdir(exist_ok=True)
            task = {"type": "worker", "index": index}
            out, err = (tmp_path / f"{session}.worker{index}.{s}" for s in "oe")
            outputs.append((out, err))
            with open(out, "w") as stdout, open(err, "w") as stderr:
                environment = {
                    **ENV,
                    "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
                    "WEIGHTS_DIR": str(tmp_path / "weights"),
                }
                processes.append(
                    subprocess.Popen(
                        command,
                        cwd=cwd,
                        env=environment,
                        stdout=stdout,
                        stderr=stderr,
                        start_new_session=True,  # a group: kill it with any children
                    )
                )
        deadline = time.monotonic() + TIMEOUT
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                tails = "\n".join(
                    f"--- {path.name}\n{path.read_text()[-1000:]}"
                    for path in (path for paths in outputs for path in paths)
                )
                pytest.fail(f"workers still running after {TIMEOUT} s:\n{tails}")
        return [
            (process.returncode, out.read_text(), err.read_text())
            for process, (out, err) in zip(processes, outputs, strict=True)
        ]
    finally:
        for process in processes:  # and any children left, e.g. a hung pool
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:  # the whole group has exited
                pass
            process.wait()


def read_log(path):
    lines = path.read_text().strip().splitlines()
    header = lines[0].split(",")
    return [
        dict(zip(header, map(float, line.split(",")), strict=True))
        for line in lines[1:]
    ]


def weights(tmp_path, task, step, kind="latest"):
    with np.load(tmp_path / "weights" / f"task{task}_step{step:07d}_{kind}.npz") as f:
        return [f[name] for name in sorted(f.files, key=lambda n: int(n[4:]))]


def assert_same_weights(tmp_path, step):
    chief, worker = weights(tmp_path, 0, step), weights(tmp_path, 1, step)
    assert len(chief) == len(worker) > 10
    for a, b in zip(chief, worker, strict=True):
        np.testing.assert_array_equal(a, b)


def test_two_workers_train_one_run_in_lock_step_and_resume(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    (tmp_path / "weights").mkdir()
    common = [
        *SMALL, f"--data_dir={celeba_dir}", f"--predictions_dir={out}",
        "--strategy=multi_worker", "--run_name=mw",
    ]  # fmt: skip
    first = run_workers([*common, "--num_steps=6"], tmp_path, "first")
    for returncode, stdout, stderr in first:
        assert returncode == 0, stderr[-3000:]
        assert "Starting mw" in stdout and "Step 6: reached num_steps" in stdout

    # Lock-step: after every save, the worker holds exactly the chief's weights.
    dumps = sorted(p.name for p in (tmp_path / "weights").iterdir())
    assert [n for n in dumps if n.startswith("task0")] == [
        n.replace("task1", "task0") for n in dumps if n.startswith("task1")
    ]
    assert "task1_step0000006_latest.npz" in dumps
    for step in (3, 6):
        assert_same_weights(tmp_path, step)
    trained = zip(weights(tmp_path, 0, 3), weights(tmp_path, 0, 6), strict=True)
    assert any(not np.array_equal(a, b) for a, b in trained)

    # Only the chief wrote: one run folder with one set of logs, no worker
    # checkpoints left, nothing in either worker's working directory.
    run = out / "mw"
    assert [p.name for p in out.iterdir()] == ["mw"]
    assert sorted(p.name for p in run.iterdir()) == sorted([
        "params.json", "params.py", "status.json", "log.csv", "validation.csv",
        "checkpoints", "tensorboard", "composites", "traversals", "training.gif",
        "loss_curves.png", "kl_per_latent.png", "model",
    ])  # fmt: skip
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best", "latest",
    ]  # fmt: skip
    for split in ("train", "validation"):
        assert len(list((run / "tensorboard" / split).iterdir())) == 1
    assert not list(out.rglob(".worker_*")) and not list(out.rglob("*.tmp"))
    assert not list((tmp_path / "cwd0").iterdir())
    assert not list((tmp_path / "cwd1").iterdir())
    assert [r["step"] for r in read_log(run / "log.csv")] == [1, 2, 3, 4, 5, 6]

    # A restart of both with more steps resumes: the log continues, no gap, no dup.
    second = run_workers([*common, "--num_steps=9"], tmp_path, "second")
    for returncode, stdout, stderr in second:
        assert returncode == 0, stderr[-3000:]
        assert "Resuming mw" in stdout and "Step 9: reached num_steps" in stdout
    assert_same_weights(tmp_path, 9)
    rows = read_log(run / "log.csv")
    assert [r["step"] for r in rows] == list(range(1, 10))
    assert [r["step"] for r in read_log(run / "validation.csv")] == [3, 6, 9]
    assert not list(out.rglob(".worker_*"))

    # Two workers with 4 images each are one process with 8: the same numbers.
    single = subprocess.run(
        [sys.executable, str(REPO / "main.py"), *common[:-2], "--run_name=single",
         "--num_steps=9"], cwd=tmp_path / "cwd0", env=ENV,
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    for a, b in zip(rows, read_log(out / "single" / "log.csv"), strict=True):
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (key, a, b)


# --- utils/devices/distribute.py: who is the chief, and clear errors


def fake_strategy(task_type, task_id):
    resolver = SimpleNamespace(task_type=task_type, task_id=task_id)
    return SimpleNamespace(cluster_resolver=resolver)


def set_tf_config(monkeypatch, cluster, task_type="worker", index=0):
    config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))


WORKERS = {"worker": ["a:1", "b:1"]}
WITH_CHIEF = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}


def test_is_chief_without_a_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief(SimpleNamespace())  # e.g. the default strategy
    assert is_chief(fake_strategy(None, None))  # a resolver without TF_CONFIG


@pytest.mark.parametrize(
    "cluster, task_type, task_id, chief",
    [
        (WORKERS, "worker", 0, True),  # no chief task: worker 0 is the chief
        (WORKERS, "worker", 1, False),
        (WITH_CHIEF, "chief", 0, True),
        (WITH_CHIEF, "worker", 0, False),
        (WITH_CHIEF, "worker", 1, False),
    ],
)
def test_is_chief_in_a_cluster(monkeypatch, cluster, task_type, task_id, chief):
    set_tf_config(monkeypatch, cluster, task_type, task_id)
    assert is_chief(fake_strategy(task_type, task_id)) is chief


def test_only_non_chief_workers_checkpoint_apart_and_discard_it(monkeypatch, tmp_path):
    set_tf_config(monkeypatch, WORKERS)
    chief, worker = fake_strategy("worker", 0), fake_strategy("worker", 1)
    assert worker_checkpoint_dir(tmp_path, chief) == tmp_path
    scratch = worker_checkpoint_dir(tmp_path, worker)
    assert scratch == tmp_path / ".worker_worker1"
    (scratch / "latest").mkdir(parents=True)
    (tmp_path / "latest").mkdir()
    discard_worker_checkpoints(tmp_path, chief)  # the chief's are never discarded
    assert scratch.exists()
    discard_worker_checkpoints(tmp_path, worker)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_multi_worker_without_tf_config_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(StrategyError, match="needs the TF_CONFIG environment"):
        make_strategy("multi_worker")
    with pytest.raises(StrategyError, match="TF_CONFIG"):
        check_strategy("multi_worker")  # what main.py asks before loading data
    check_strategy("auto")  # one machine needs no TF_CONFIG


@pytest.mark.parametrize(
    "tf_config",
    [
        "not json",
        '{"cluster": {"worker": ["a:1"]}}',  # no task
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}',
    ],
)
def test_multi_worker_with_a_wrong_tf_config_says_so(monkeypatch, tf_config):
    # Refused before TensorFlow would start a server in this process.
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(StrategyError, match="TF_CONFIG=.*expected e.g."):
        make_strategy("multi_worker")


@pytest.mark.parametrize(
    "tf_config",
    [
        '{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}',
        '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
        '{"cluster": {"worker": ["a:port"]}, "task": {"type": "worker", "index": 0}}',
        '{"cluster": {"worker": ["a:70000"]}, "task": {"type": "worker", "index": 0}}',
        '{"cluster": {"worker": [":1"]}, "task": {"type": "worker", "index": 0}}',
        '{"cluster": {"worker": [1]}, "task": {"type": "worker", "index": 0}}',
        '{"cluster": {"worker": ["a:1"], "ps": ["b:1"]},'
        ' "task": {"type": "ps", "index": 0}}',
        '{"cluster": {"worker": ["a:1"], "chief": "c:1"},'
        ' "task": {"type": "worker", "index": 0}}',  # another job than the task's
        '{"cluster": [], "task": {"type": "worker", "index": 0}}',
    ],
)
def test_a_tf_config_tensorflow_would_reject_is_refused_before_the_data_loads(
    monkeypatch, tf_config
):
    # Each of these passed main.py's check, then failed after the data load with
    # a TensorFlow traceback, or waited for a worker that cannot exist (25.8).
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(StrategyError, match="TF_CONFIG=.*expected e.g."):
        check_strategy("multi_worker")


@pytest.mark.parametrize(
    "cluster",
    [
        {"worker": ["a:1", "b.example.org:65535"]},
        {"chief": ["10.0.0.1:2222"], "worker": ["[::1]:2223"]},  # IPv6 in brackets
    ],
)
def test_a_well_formed_tf_config_passes_the_check(monkeypatch, cluster):
    task = {"type": "worker", "index": 0}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    check_strategy("multi_worker")


def test_xla_auto_is_on_only_with_one_gpu():
    import tensorflow as tf

    from utils.devices.distribute import use_xla

    default = tf.distribute.get_strategy()
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    assert use_xla("auto", default) == has_gpu  # off on this CPU: 2× slower
    assert not use_xla("auto", tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert use_xla("on", default) and not use_xla("off", default)


@pytest.mark.parametrize("ending", ["timeout", "SIGINT"])
def test_a_worker_whose_peer_never_comes_says_so_and_ends(celeba_dir, tmp_path, ending):
    """Issue 25.6: it waited forever in TensorFlow's C++, silent and deaf to
    SIGTERM and Ctrl-C (886 s until SIGKILL). SIGTERM TensorFlow keeps for itself
    meanwhile (its preemption notifier): the timeout still ends the wait."""
    me, peer = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{me}", f"127.0.0.1:{peer}"]}
    task = {"type": "worker", "index": 0}
    waiting = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "--dataset=celeba", "--image_size=32",
         f"--data_dir={celeba_dir}", f"--predictions_dir={tmp_path}", "--run_name=mw",
         "--strategy=multi_worker", "--num_steps=2", "--cluster_timeout=8",
         "--batch_size=8"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/",
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "",
             "TF_CONFIG": json.dumps({"cluster": cluster, "task": task})},
    )  # fmt: skip
    try:
        lines = []  # read in a thread: the code before this fix said nothing, forever
        threading.Thread(
            target=lambda: lines.extend(waiting.stdout), daemon=True
        ).start()
        deadline = time.monotonic() + 120
        while (
            not any("Joining" in line for line in lines) and time.monotonic() < deadline
        ):
            if waiting.poll() is not None:
                break
            time.sleep(0.1)
        said = "".join(lines)
        assert f"waiting for worker 1 (127.0.0.1:{peer})" in said, said
        assert "giving up after 8 s with exit code 2 (--cluster_timeout)" in said
        started = time.monotonic()
        if ending == "SIGINT":  # Ctrl-C
            waiting.send_signal(signal.SIGINT)
        code = waiting.wait(timeout=60)
        took = time.monotonic() - started
        if ending == "SIGINT":
            assert code == -signal.SIGINT and took < 5
        else:
            assert code == 2 and 4 < took < 30, "".join(lines)[-3000:]
    finally:  # the code before this fix waits for good, deaf to SIGTERM
        waiting.kill()
    assert not (tmp_path / "mw" / "checkpoints").exists()
