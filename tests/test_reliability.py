"""Reliability: bad input gets a clear error (exit 2), faults lose nothing.

Training here is a real `python main.py` on the tiny CelebA-layout folder of
test_main, stopped by Ctrl-C or SIGTERM, killed, or given a full disk, then resumed.
A run that was interrupted must end exactly like one that was not: the data order
and the noise are functions of the step, so the logged losses must match."""

import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
from test_main import REPO, SMALL, read_csv, run_main

import main
from utils import files
from utils.runs import folder as run_folder
from utils.runs.folder import RunFolderError, RunLock, check_writable

NUM_STEPS = 30  # of the uninterrupted reference run
# Everything but the resumable how-long and how-often parameters must match the
# reference run's for the losses to match.
COMMON = [*SMALL, "--validation_step=5", "--plot_step=5"]
TIMEOUT = 300  # seconds; generous, for a loaded 2-core machine


def arguments(celeba_dir, out, run_name, *extra):
    return [
        *COMMON, f"--data_dir={celeba_dir}", f"--predictions_dir={out}",
        f"--run_name={run_name}", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(celeba_dir, tmp_path_factory):
    """log.csv and validation.csv rows of an uninterrupted run of NUM_STEPS."""
    out = tmp_path_factory.mktemp("reference")
    args = arguments(celeba_dir, out, "straight", f"--num_steps={NUM_STEPS}")
    result = run_main(*args, "--checkpoint_step=10")
    assert result.returncode == 0, result.stderr[-3000:]
    log = read_csv(out / "straight" / "log.csv")[1]
    assert [int(r["step"]) for r in log] == list(range(1, NUM_STEPS + 1))
    return log, read_csv(out / "straight" / "validation.csv")[1]


class Training:
    """`python main.py ARGS` in the background, its output going to files."""

    def __init__(self, logs, *args, script=REPO / "main.py", env=()):
        logs.mkdir(exist_ok=True)
        number = len(list(logs.glob("stdout*")))
        self.stdout_path = logs / f"stdout{number}.txt"
        self.stderr_path = logs / f"stderr{number}.txt"
        quiet = {"CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
        environment = {**os.environ, **quiet, **dict(env)}
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(script), *args], cwd="/",
                stdout=out, stderr=err, env=environment,
            )  # fmt: skip

    @property
    def stdout(self):
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def steps_shown(self):
        """The progress bar's latest step count (tqdm writes "12/100000 [")."""
        return max(map(int, re.findall(r"(\d+)/\d+ \[", self.stderr)), default=0)

    def wait_until(self, condition, poll=0.05):
        """Poll `condition` until true; False if the process ended first."""
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            if self.process.poll() is not None:
                return False
            assert time.monotonic() < deadline, f"timed out: {self.stderr[-2000:]}"
            time.sleep(poll)
        return True

    def wait(self):
        return self.process.wait(timeout=TIMEOUT)


def checkpoint_step(run):
    """The step the latest checkpoint index points at, read without TensorFlow."""
    index = run / "checkpoints" / "latest" / "checkpoint"
    text = index.read_text() if index.exists() else ""
    found = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', text)
    return int(found.group(1)) if found else 0


def assert_same_losses(rows, reference_rows):
    assert [r["step"] for r in rows] == [r["step"] for r in reference_rows]
    for a, b in zip(rows, reference_rows, strict=True):
        for column in ("loss", "reconstruction_loss", "kl"):
            assert float(a[column]) == pytest.approx(float(b[column]), rel=1e-4), (
                f"step {a['step']}, {column}"
            )


def stray_temporaries(run):
    """Temporary files of atomic writes, and TensorFlow's unfinished saves."""
    ours = [p for p in run.rglob(".*.tmp") if files.TEMPORARY_NAME.fullmatch(p.name)]
    return (
        ours
        + list(run.glob("checkpoints/*/*_temp"))
        + list(run.glob("checkpoints/*/checkpoint.tmp*"))
    )


# --- bad environment: a clear message and exit 2, before any work ------------------


def run_in_process(capsys, *args):
    code = main.main(list(args))
    return code, capsys.readouterr().err


def test_unwritable_predictions_dir_is_refused_before_the_data_loads(
    tmp_path, capsys, monkeypatch
):
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a folder")
    nowhere = f"--data_dir={tmp_path / 'no_data'}"  # reported second, if at all
    for predictions in (in_the_way, in_the_way / "predictions"):
        code, err = run_in_process(
            capsys, *SMALL, nowhere, f"--predictions_dir={predictions}"
        )
        assert code == 2
        assert f"cannot write run folder {predictions}/celeba_beta1_seed3" in err
        assert f"{in_the_way} is a file, not a folder" in err
        assert "choose --predictions_dir=" in err
        assert "CelebA not found" not in err

    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: pretend it is not root
        monkeypatch.setattr(run_folder.os, "access", lambda path, mode: False)
    code, err = run_in_process(
        capsys, *SMALL, nowhere, f"--predictions_dir={read_only / 'predictions'}",
        "--run_name=mine",
    )  # fmt: skip
    assert code == 2
    assert f"no permission to write in {read_only}" in err
    assert not (read_only / "predictions").exists()


def test_a_folder_that_cannot_be_created_is_reported_when_locking(tmp_path):
    # What check_writable cannot foresee (say, the disk is full) RunLock reports.
    (tmp_path / "a_file").write_text("")
    with pytest.raises(RunFolderError, match="cannot write run folder .* choose"):
        RunLock(tmp_path / "a_file" / "run").acquire()
    check_writable(tmp_path / "new" / "run")  # fine: it can be created


def test_unusable_data_dir_is_reported_with_exit_2(celeba_dir, tmp_path, capsys):
    out = f"--predictions_dir={tmp_path / 'predictions'}"
    empty = tmp_path / "empty"
    (empty / "img_align_celeba").mkdir(parents=True)
    code, err = run_in_process(capsys, *SMALL, f"--data_dir={empty}", out)
    assert code == 2
    assert f"cannot use data_dir {empty}" in err and "holds no image files" in err

    # The cache cannot be written (a file is in the way of data_dir/cache).
    no_room = tmp_path / "no_room"
    (no_room / "img_align_celeba").mkdir(parents=True)
    for jpeg in sorted((celeba_dir / "img_align_celeba").glob("*.jpg"))[:3]:
        shutil.copy(jpeg, no_room / "img_align_celeba")
    (no_room / "cache").write_text("in the way")
    code, err = run_in_process(capsys, *SMALL, f"--data_dir={no_room}", out)
    assert code == 2
    assert f"cannot use data_dir {no_room}" in err and "File exists" in err
    assert "choose --data_dir=" in err

    if os.geteuid() != 0:  # root reads anything
        unreadable = tmp_path / "unreadable"
        shutil.copytree(no_room / "img_align_celeba", unreadable / "img_align_celeba")
        (unreadable / "img_align_celeba").chmod(0)
        code, err = run_in_process(capsys, *SMALL, f"--data_dir={unreadable}", out)
        (unreadable / "img_align_celeba").chmod(0o755)
        assert code == 2 and "Permission denied" in err
    assert not (tmp_path / "predictions").exists()


# --- faults during a run ------------------------------------------------------------

# Runs main.py with one write failing at step FAULT_STEP, as on a full disk.
FAULTY_MAIN = """
import errno, os, resource, runpy, signal, sys
sys.path.insert(0, {repo!r})
from utils.runs import checkpoints
from utils.outputs import logs

AT = int(os.environ["FAULT_STEP"])
if os.environ["FAULT"] == "log":  # half the rows written, then ENOSPC
    flush = logs.CsvLog.flush

    def flush_on_a_full_disk(self):
        if any(row.split(",")[0] == str(AT) for row in self.rows):
            text = "\\n".join(self.rows)
            self.file.write(text[: len(text) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        flush(self)

    logs.CsvLog.flush = flush_on_a_full_disk
elif os.environ["FAULT"] == "tensorboard":  # the event file cannot grow
    from utils.outputs import tensorboard

    write = tensorboard.TensorBoard.write

    def write_on_a_full_disk(self, split, step, values):
        if step >= AT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "events.out")
        write(self, split, step, values)

    tensorboard.TensorBoard.write = write_on_a_full_disk
elif os.environ["FAULT"] == "validation":  # a bug in validation, at its first call
    import train

    make_steps = train.make_steps

    def failing_validation(*args, **kwargs):
        train_steps, validation_losses = make_steps(*args, **kwargs)

        def validation(batches):
            raise ZeroDivisionError("a bug in validation")

        return train_steps, validation

    train.make_steps = failing_validation
else:  # no file may grow from this checkpoint on: TensorFlow's own write error
    save = checkpoints.Checkpoints.save

    def save_on_a_full_disk(self, step, best=False):
        if step == AT:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        save(self, step, best)

    checkpoints.Checkpoints.save = save_on_a_full_disk
sys.argv = [{main!r}, *sys.argv[1:]]
runpy.run_path({main!r}, run_name="__main__")
"""


def test_a_full_disk_stops_the_run_and_loses_nothing_saved(
    celeba_dir, tmp_path, reference
):
    out = tmp_path / "predictions"
    run = out / "full"
    args = arguments(celeba_dir, out, "full", f"--num_steps={NUM_STEPS}")
    script = tmp_path / "faulty_main.py"
    script.write_text(FAULTY_MAIN.format(repo=str(REPO), main=str(REPO / "main.py")))

    def faulty_run(fault, step):
        return subprocess.run(
            [sys.executable, str(script), *args, "--checkpoint_step=4"],
            capture_output=True, text=True, timeout=TIMEOUT, cwd="/",
            env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "FAULT": fault,
                 "FAULT_STEP": str(step)},
        )  # fmt: skip

    # log.csv cannot be flushed before the checkpoint of step 8.
    result = faulty_run("log", 8)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"cannot write run folder {run}" in result.stderr
    assert (
        "No space left on device" in result.stderr
        and "free on its disk" in result.stderr
    )
    assert "intact up to its last checkpoint (step 4)" in result.stderr
    assert checkpoint_step(run) == 4

    # Resumed from step 4, then the checkpoint of step 12 cannot be written.
    result = faulty_run("checkpoint", 12)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Restored the checkpoint of step 4" in result.stdout
    assert "the checkpoint of step 12 could not be saved" in result.stderr
    assert "intact up to its last checkpoint (step 8)" in result.stderr
    assert checkpoint_step(run) == 8
    assert not stray_temporaries(run)

    # With room again, the same command finishes the run as if nothing happened.
    result = run_main(*args, "--checkpoint_step=4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Restored the checkpoint of step 8" in result.stdout
    log, validation = reference
    assert_same_losses(read_csv(run / "log.csv")[1], log)
    assert_same_losses(read_csv(run / "validation.csv")[1], validation)


@pytest.mark.parametrize("fault", ["tensorboard", "validation"])
def test_a_fault_after_some_steps_keeps_every_row_logged(celeba_dir, tmp_path, fault):
    """A full disk under TensorBoard's event file: README's message and exit 1, no
    traceback from a thread. A crash in validation (a bug): the rows logged
    before it are on disk, not only the header."""
    out = tmp_path / "predictions"
    args = arguments(celeba_dir, out, fault, "--num_steps=12", "--checkpoint_step=4")
    script = tmp_path / "faulty_main.py"
    script.write_text(FAULTY_MAIN.format(repo=str(REPO), main=str(REPO / "main.py")))
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True, text=True, timeout=TIMEOUT, cwd="/",
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "FAULT": fault,
             "FAULT_STEP": "7"},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    rows = read_csv(out / fault / "log.csv")[1]
    if fault == "tensorboard":
        assert "Exception in thread" not in result.stderr
        assert "Traceback" not in result.stderr
        assert "No space left on device" in result.stderr
        assert "intact up to its last checkpoint (step 4)" in result.stderr
        assert [int(r["step"]) for r in rows][:4] == [1, 2, 3, 4]
    else:  # validation at step 5 failed: steps 1-5 were logged
        assert "a bug in validation" in result.stderr
        assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]


# Runs main.py with no file allowed to grow (RLIMIT_FSIZE 0: writes fail as on a
# full disk, with the OS's and TensorFlow's own errors) from the moment one of the
# FULL_FROM functions ("module:function", comma-separated) is called.
FULL_DISK_FROM_MAIN = """
import importlib, os, resource, runpy, signal, sys
sys.path.insert(0, {repo!r})
for target in os.environ["FULL_FROM"].split(","):
    module_name, name = target.split(":")
    module = importlib.import_module(module_name)
    function = getattr(module, name)

    def full_from_here(*args, _function=function, **kwargs):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        return _function(*args, **kwargs)

    setattr(module, name, full_from_here)
sys.argv = [{main!r}, *sys.argv[1:]]
runpy.run_path({main!r}, run_name="__main__")
"""
EXPORT = "utils.outputs.export:export_model,utils.outputs.end_of_run:export_model"
FULL_FROM = {
    "train": EXPORT,  # the export at the end of training
    "export": EXPORT,
    "analyze": "utils.outputs.analysis:analyze_model",
    "evaluate": "utils.outputs.metrics_file:evaluate_metrics",
}


@pytest.fixture(scope="module")
def trained_dsprites(tmp_path_factory):
    """A 4-step dSprites run (it has factors: evaluate needs them), exported."""
    out = tmp_path_factory.mktemp("full_disk")
    args = [
        "--dataset=dsprites", f"--data_dir={out / 'data'}", "--run_name=r",
        "--batch_size=8", "--latent_size=4", "--validation_batches=2",
        "--metrics_at_end=False",
    ]  # fmt: skip
    result = run_main(*args, f"--predictions_dir={out}", "--num_steps=4")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, args


def files_of(run):
    return {
        path.relative_to(run): path.read_bytes()
        for path in sorted(run.rglob("*"))
        if path.is_file() and path.name not in ("status.json", ".lock")
    }


@pytest.mark.parametrize("mode", ["train", "export", "analyze", "evaluate"])
def test_a_full_disk_at_the_end_or_in_a_mode_is_reported_and_changes_nothing(
    trained_dsprites, tmp_path, mode
):
    """README's full-disk message and exit 1, never a traceback, from every phase
    that writes after training: the export at its end, --mode=export, analyze and
    evaluate (issue 25.9). What the run held stays as it was."""
    out, args = trained_dsprites
    run = tmp_path / "r"
    shutil.copytree(out / "r", run)  # each mode its own copy
    args = [*args, f"--predictions_dir={tmp_path}"]
    args += ["--num_steps=6"] if mode == "train" else [f"--mode={mode}"]
    args += ["--metrics_protocol=fast"] if mode == "evaluate" else []
    before = files_of(run)
    script = tmp_path / "full_disk_main.py"
    script.write_text(
        FULL_DISK_FROM_MAIN.format(repo=str(REPO), main=str(REPO / "main.py"))
    )
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True, text=True, timeout=TIMEOUT, cwd="/",
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "FULL_FROM": FULL_FROM[mode]},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"cannot write run folder {run}" in result.stderr
    assert "free on its disk" in result.stderr and "make room, then rerun" in (
        result.stderr
    )
    assert not stray_temporaries(run)
    after = files_of(run)
    if mode == "train":  # trained on to step 6 and checkpointed: kept, not undone
        assert checkpoint_step(run) == 6
    else:
        assert after == before
    # With room again, the same command writes what was missing.
    started = time.time()
    result = run_main(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    written = {
        "train": "model/encoder.keras", "export": "model/encoder.keras",
        "analyze": "analysis/analysis.json", "evaluate": "metrics.json",
    }[mode]  # fmt: skip
    assert (run / written).stat().st_mtime >= started


def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(
    celeba_dir, tmp_path, reference
):
    out = tmp_path / "predictions"
    run = out / "diverging"
    args = arguments(celeba_dir, out, "diverging")
    result = run_main(*args, "--num_steps=4", "--checkpoint_step=2")
    assert result.returncode == 0, result.stderr[-3000:]

    def checkpoint_files():
        return {p: p.stat().st_mtime_ns for p in (run / "checkpoints").rglob("*")}

    saved = checkpoint_files()
    # An enormous learning rate: weights ~1e3 after one step, then exp() overflows.
    too_fast = [
        *args, f"--num_steps={NUM_STEPS}", "--learning_rate=1000",
        "--validation_step=1000", "--plot_step=1000",  # no other file written
    ]  # fmt: skip
    result = run_main(*too_fast, "--checkpoint_step=1000")
    assert result.returncode == 1
    found = re.search(
        r"error: the loss became (nan|-?inf) at step (\d+)", result.stderr
    )
    assert found and int(found.group(2)) > 4, result.stderr[-3000:]
    assert "last good checkpoint (step 4)" in result.stderr
    advice = result.stderr.split("to resume from there: ")[1].splitlines()[0]
    assert advice.endswith("--run_name=diverging --learning_rate=100")
    assert "--learning_rate=1000" not in advice  # the lower rate replaces it
    assert checkpoint_files() == saved  # not one file written, touched or removed
    # The rows that show why it diverged are kept, up to the step before the bad one
    # (they were dropped, unflushed).
    logged = [int(r["step"]) for r in read_csv(run / "log.csv")[1]]
    assert logged == list(range(1, int(found.group(2)))), logged[-3:]

    # Saving every step, the checkpoint before the non-finite loss holds the weights
    # that produced it: it is discarded, so the resume does not start from it.
    result = run_main(*too_fast, "--checkpoint_step=1")
    assert result.returncode == 1
    assert "last good checkpoint (step 4)" in result.stderr, result.stderr[-3000:]
    assert checkpoint_step(run) == 4
    latest = sorted(p.name for p in (run / "checkpoints" / "latest").iterdir())
    # (ckpt-2 made room for ckpt-5: two are kept)
    assert latest == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    for path, mtime in saved.items():
        if path.name.startswith("ckpt-4."):
            assert path.stat().st_mtime_ns == mtime

    # The same command with a sane learning rate resumes from step 4.
    result = run_main(*args, "--num_steps=8", "--checkpoint_step=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "learning_rate changes from 1000.0 to 0.0005" in result.stdout
    assert "Restored the checkpoint of step 4" in result.stdout
    assert_same_losses(read_csv(run / "log.csv")[1], reference[0][:8])


@pytest.mark.parametrize("kept", [0, 20])
def test_a_divergence_says_where_the_rerun_starts(tmp_path, capsys, kept):
    """Issue 25.18: a loss that diverged before any checkpoint cited "its last
    good checkpoint (step 0)", a checkpoint that does not exist."""
    import train

    checkpoints = type("Kept", (), {"discard": lambda self, step: kept})()
    p = {"num_steps": 30, "learning_rate": 1e-3, "run_name": "d"}
    train.diverged(p, tmp_path, checkpoints, 25, float("nan"))
    said = capsys.readouterr().err
    assert "the loss became nan at step 25" in said and "--learning_rate=0.0001" in said
    if kept:
        assert "its last good checkpoint (step 20)" in said
    else:
        assert "checkpoint (step 0)" not in said
        assert "before its first checkpoint: rerun with a lower learning rate to" in (
            said
        )
        assert "start again from step 0" in said


def test_discarding_a_bad_checkpoint_falls_back_to_the_one_before(tmp_path):
    import tensorflow as tf

    from utils.runs.checkpoints import Checkpoints

    weights = tf.Variable([1.0, 2.0])
    checkpoints = Checkpoints(tmp_path, weights=weights)
    checkpoints.save(1)
    checkpoints.save(2)
    assert checkpoints.discard(5) == 2  # not the latest: kept
    assert checkpoints.discard(2) == 1
    assert sorted(p.name for p in (tmp_path / "latest").glob("ckpt-*")) == [
        "ckpt-1.data-00000-of-00001", "ckpt-1.index",
    ]  # fmt: skip
    weights.assign([0.0, 0.0])
    again = Checkpoints(tmp_path, weights=weights)  # as a resume would
    assert again.restore() and weights.numpy().tolist() == [1.0, 2.0]
    again.save(3)
    again.save(4)  # ckpt-1 is still managed: it makes room
    assert sorted(p.name for p in (tmp_path / "latest").glob("*.index")) == [
        "ckpt-3.index", "ckpt-4.index",
    ]  # fmt: skip
    assert again.discard(4) == 3
    assert again.discard(3) == 0  # none left: a resume starts from scratch
    assert not Checkpoints(tmp_path, weights=weights).restore()


# --- stopping: Ctrl-C, SIGTERM, a second process, SIGKILL ---------------------------


def assert_stopped_cleanly(training, run, signal_name):
    """Exit 0, a checkpoint at the step it stopped, the log up to it, the artifacts."""
    assert training.wait() == 0, training.stderr[-3000:]
    found = re.search(rf"Step (\d+): stopped by {signal_name}", training.stdout)
    assert found, training.stdout[-3000:]
    stopped = int(found.group(1))
    assert checkpoint_step(run) == stopped
    rows = read_csv(run / "log.csv")[1]
    assert [int(r["step"]) for r in rows] == list(range(1, stopped + 1))
    assert list((run / "composites").glob("step_*.jpg"))  # drawn when it stopped
    for name in ("training.gif", "loss_curves.png", "kl_per_latent.png"):
        assert (run / name).stat().st_size > 0, name
    return stopped


def test_ctrl_c_saves_and_a_second_process_is_refused(celeba_dir, tmp_path, reference):
    out = tmp_path / "predictions"
    run = out / "interrupted"
    args = arguments(celeba_dir, out, "interrupted", "--checkpoint_step=1000")
    training = Training(tmp_path / "logs", *args, "--num_steps=100000")
    assert training.wait_until(lambda: training.steps_shown() >= 1), training.stderr

    # While it trains, the same run in another process is refused, untouched.
    second = run_main(*args, "--num_steps=100000")
    assert second.returncode == 2, second.stderr[-3000:]
    assert f"is in use by process {training.process.pid}" in second.stderr
    assert training.process.poll() is None

    training.process.send_signal(signal.SIGINT)
    stopped = assert_stopped_cleanly(training, run, "SIGINT")

    # Rerunning resumes from there, and the whole log is that of one long run.
    num_steps = max(stopped + 2, NUM_STEPS)
    result = run_main(*args, f"--num_steps={num_steps}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Restored the checkpoint of step {stopped}" in result.stdout
    rows = read_csv(run / "log.csv")[1]
    assert [int(r["step"]) for r in rows] == list(range(1, num_steps + 1))
    assert_same_losses(rows[:NUM_STEPS], reference[0])


def test_sigterm_saves_like_ctrl_c(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    args = arguments(celeba_dir, out, "terminated", "--checkpoint_step=1000")
    training = Training(tmp_path / "logs", *args, "--num_steps=100000")
    assert training.wait_until(lambda: training.steps_shown() >= 1), training.stderr
    training.process.send_signal(signal.SIGTERM)
    assert_stopped_cleanly(training, out / "terminated", "SIGTERM")


def kill_and_resume(celeba_dir, tmp_path, reference, kills, seed):
    """Run, SIGKILL at seeded random moments, rerun the same command each time, then
    finish: the run must end exactly like the uninterrupted reference run."""
    out = tmp_path / "predictions"
    run = out / "killed"
    # checkpoint_step=1: every step writes the logs and a checkpoint, so kills land
    # in the middle of writes.
    args = arguments(
        celeba_dir, out, "killed", f"--num_steps={NUM_STEPS}", "--checkpoint_step=1"
    )
    rng = random.Random(seed)
    for kill in kills:
        started = checkpoint_step(run)
        training = Training(tmp_path / "logs", *args)
        if kill == "in a checkpoint save":  # aim: TensorFlow's temporary shards
            training.wait_until(lambda s=started: checkpoint_step(run) > s)
            training.wait_until(
                lambda: list(run.glob("checkpoints/latest/*_temp")), poll=0.001
            )
        elif kill == "while training":
            training.wait_until(lambda s=started: checkpoint_step(run) > s)
            time.sleep(rng.uniform(0, 0.5))
        else:  # any time from the start: importing, loading, restoring, training
            time.sleep(rng.uniform(0, 8))
        training.process.kill()
        training.wait()
    # What kills can leave, planted too: our temporary files and TensorFlow's.
    stale = [
        run / ".params.json.4242.0123abcd.tmp",
        run / "composites" / ".step_0000005.jpg.4242.89abcdef.tmp",
        run / "checkpoints" / "latest" / "ckpt-999_temp" / "part-00000-of-00001",
    ]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    (run / "notes.tmp").write_text("not ours: kept")

    result = run_main(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    log, validation = reference
    assert_same_losses(read_csv(run / "log.csv")[1], log)  # no gap, no duplicate
    assert_same_losses(read_csv(run / "validation.csv")[1], validation)
    assert checkpoint_step(run) == NUM_STEPS
    assert not stray_temporaries(run)
    assert (run / "notes.tmp").exists()


def test_killed_at_random_moments_ends_like_an_uninterrupted_run(
    celeba_dir, tmp_path, reference
):
    kills = ["in a checkpoint save", "while training", "while training"]
    kill_and_resume(celeba_dir, tmp_path, reference, kills, seed=0)


@pytest.mark.slow
def test_killed_many_times_ends_like_an_uninterrupted_run(
    celeba_dir, tmp_path, reference
):
    kills = ["in a checkpoint save", "any time", "while training"] * 3
    kill_and_resume(celeba_dir, tmp_path, reference, kills, seed=1)


# main.py killed (SIGKILL) as the drawing of step KILL_AT's images begins: just
# after that step's checkpoint, before its images reach the disk.
KILLED_WHILE_DRAWING = """
import os, runpy, signal, sys
sys.path.insert(0, {repo!r})
from utils.outputs import step_images

draw = step_images.StepImages.__call__

def killed_at_the_step(self):
    if self.step == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return draw(self)

step_images.StepImages.__call__ = killed_at_the_step
sys.argv = [{main!r}, *sys.argv[1:]]
runpy.run_path({main!r}, run_name="__main__")
"""


def drawn_files(run):
    return sorted(
        str(path.relative_to(run))
        for folder in ("composites", "traversals")
        for path in (run / folder).iterdir()
    )


@pytest.mark.parametrize("kill_at", [10, NUM_STEPS])
def test_a_kill_after_a_drawing_steps_checkpoint_keeps_its_images(
    celeba_dir, tmp_path, kill_at
):
    """Issue 25.2: the checkpoint of a plot step is saved before its images are
    drawn (in a thread); a kill between the two lost them for good, as the
    resume starts after that step (at the last, with nothing to train)."""
    out = tmp_path / "predictions"
    run = out / "drawing"
    args = arguments(celeba_dir, out, "drawing", f"--num_steps={NUM_STEPS}")
    script = tmp_path / "killed_main.py"
    script.write_text(
        KILLED_WHILE_DRAWING.format(repo=str(REPO), main=str(REPO / "main.py"))
    )
    killed = subprocess.run(
        [sys.executable, str(script), *args, "--checkpoint_step=10"],
        capture_output=True, text=True, timeout=TIMEOUT, cwd="/",
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "KILL_AT": str(kill_at)},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert checkpoint_step(run) == kill_at
    assert f"composites/step_{kill_at:07d}.jpg" not in drawn_files(run)
    result = run_main(*args, "--checkpoint_step=10")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Restored the checkpoint of step {kill_at}" in result.stdout
    assert (run / "training.gif").exists()
    # As an uninterrupted run: the images of every plot step (COMMON's 5), once.
    steps = range(5, NUM_STEPS + 1, 5)
    assert drawn_files(run) == [f"composites/step_{s:07d}.jpg" for s in steps] + [
        f"traversals/traversal_{s:07d}.png" for s in steps
    ]


# --- the end of a run: stopped or killed while writing its results ------------------

# main.py with an export that takes minutes: the end-of-run phase, made long enough
# to stop in.
SLOW_EXPORT = """
import os, runpy, sys, time
sys.path.insert(0, {repo!r})
from utils.outputs import export

real_export = export.export_model

def slow_export(model, folder, *args):
    print("exporting now", flush=True)
    time.sleep(float(os.environ["EXPORT_SECONDS"]))
    return real_export(model, folder, *args)

export.export_model = slow_export
sys.argv = [{main!r}, *sys.argv[1:]]
runpy.run_path({main!r}, run_name="__main__")
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=str)
def test_a_stop_while_writing_the_results_is_finished_by_the_rerun(
    celeba_dir, tmp_path, stop
):
    out = tmp_path / "predictions"
    run = out / "ending"
    args = arguments(celeba_dir, out, "ending", "--num_steps=6")
    script = tmp_path / "slow_export.py"
    script.write_text(SLOW_EXPORT.format(repo=str(REPO), main=str(REPO / "main.py")))
    training = Training(
        tmp_path / "logs", *args, script=script, env={"EXPORT_SECONDS": "600"}
    )
    assert training.wait_until(lambda: "exporting now" in training.stdout)
    asked = time.monotonic()
    training.process.send_signal(stop)
    code = training.wait()
    assert time.monotonic() - asked < 20  # not the 600 s the export would take
    if stop == signal.SIGTERM:  # stopped at once, quietly
        assert code == 128 + signal.SIGTERM, training.stderr[-3000:]
        assert "Traceback" not in training.stderr
        assert "to resume: " in training.stderr and "--run_name=ending" in (
            training.stderr
        )
    assert not (run / "model").exists()
    assert checkpoint_step(run) == 6

    # The rerun does not say "nothing to do": it writes what is missing, only.
    drawn = (run / "loss_curves.png").stat().st_mtime_ns
    result = run_main(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing to do" not in result.stdout
    assert (run / "model" / "saved_model").is_dir()
    assert (run / "model" / "encoder.keras").is_file()
    assert (run / "loss_curves.png").stat().st_mtime_ns == drawn
    assert [int(r["step"]) for r in read_csv(run / "log.csv")[1]] == list(range(1, 7))
    again = run_main(*args)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_a_second_stop_request_exits_at_once_and_quietly(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    args = arguments(celeba_dir, out, "insisted", "--checkpoint_step=1000")
    training = Training(tmp_path / "logs", *args, "--num_steps=100000")
    assert training.wait_until(lambda: training.steps_shown() >= 1), training.stderr
    training.process.send_signal(signal.SIGTERM)
    assert training.wait_until(lambda: "stopping after this step" in training.stderr)
    training.process.send_signal(signal.SIGTERM)
    code = training.wait()
    assert code in (0, 128 + signal.SIGTERM)  # the first may have finished first
    assert "Traceback" not in training.stderr and "KeyboardInterrupt" not in (
        training.stderr
    )
    # Whatever it had saved resumes: the same command goes on.
    result = run_main(*args, "--num_steps=4", "--checkpoint_step=2")
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_stopped_run_without_a_name_says_the_command_that_resumes_it(
    celeba_dir, tmp_path
):
    """ "Rerun the same command" started a new run at step 0 in a new folder when
    the run had no --run_name: the advice is now the exact command, with it."""
    out = tmp_path / "predictions"
    args = [*COMMON, f"--data_dir={celeba_dir}", f"--predictions_dir={out}"]
    training = Training(tmp_path / "logs", *args, "--num_steps=100000")
    assert training.wait_until(lambda: training.steps_shown() >= 1), training.stderr
    training.process.send_signal(signal.SIGTERM)
    assert training.wait() == 0, training.stderr[-3000:]
    (folder,) = out.iterdir()
    advice = [line for line in training.stdout.splitlines() if "resume:" in line]
    assert advice, training.stdout[-2000:]
    command = shlex.split(advice[-1].split("resume: ", 1)[1])
    assert command[:2] == [sys.executable, str(REPO / "main.py")]
    assert f"--run_name={folder.name}" in command
    stopped_at = json.loads((folder / "status.json").read_text())["step"]
    result = subprocess.run(
        [*command, f"--num_steps={stopped_at + 2}"],  # the same run, a little longer
        capture_output=True, text=True, timeout=600, cwd="/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming" in result.stdout
    assert [p.name for p in out.iterdir()] == [folder.name]  # no second run


def test_a_run_whose_checkpoints_are_gone_is_never_trained_over(celeba_dir, tmp_path):
    """A finished run with checkpoints/ deleted was retrained from step 0: its logs
    cut to their headers at once, then every picture, metrics and model/ rewritten."""
    out = tmp_path / "predictions"
    run = out / "gone"
    args = arguments(celeba_dir, out, "gone", "--num_steps=4", "--checkpoint_step=2")
    first = run_main(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.rmtree(run / "checkpoints")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    again = run_main(*args)
    assert again.returncode == 2, again.stderr[-3000:]
    assert "no checkpoint to resume from" in again.stderr
    assert "a log up to step 4" in again.stderr and "model" in again.stderr
    assert "Data:" not in again.stdout  # refused before the data load
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before
    # A run killed before its first checkpoint was complete has nothing to lose:
    # it restarts. Rows up to the checkpoint's step are on disk before it.
    early = out / "early"
    early.mkdir()
    (early / "log.csv").write_text("step,loss\n1,5.0\n2,4.0\n")
    (early / "status.json").write_text('{"state": "stopped", "step": 2}')
    assert run_folder.lost_checkpoint_problem(early, checkpoint_step=2) is None
    (early / "log.csv").write_text("step,loss\n1,5.0\n2,4.0\n3,3.0\n")
    assert "no checkpoint" in run_folder.lost_checkpoint_problem(early, 2)


# --- a run folder whose params.json is lost or damaged --------------------------------


def test_a_lost_params_json_is_checked_against_the_checkpoint_and_restored(
    celeba_dir, tmp_path
):
    out = tmp_path / "predictions"
    run = out / "lost"
    args = arguments(celeba_dir, out, "lost", "--checkpoint_step=2")
    first = run_main(*args, "--num_steps=4")
    assert first.returncode == 0, first.stderr[-3000:]
    (run / "params.json").unlink()

    # Another experiment under the run's name: refused before any work, and
    # params.json is not rewritten with its values.
    for changed, named in (("--latent_size=5", "latent_size"), ("--beta=4", "beta")):
        result = run_main(*args, "--num_steps=6", changed)
        assert result.returncode == 2, result.stderr[-3000:]
        assert named in result.stderr and "other parameters" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (run / "params.json").exists()

    # The run's own command resumes it, and gets params.json back.
    result = run_main(*args, "--num_steps=6")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Restored the checkpoint of step 4" in result.stdout
    assert json.loads((run / "params.json").read_text())["latent_size"] == 4


@pytest.mark.parametrize("mode", ["train", "evaluate", "analyze"])
def test_invalid_params_json_is_refused_before_the_data_loads(tmp_path, mode):
    run = tmp_path / "predictions" / "broken"
    run.mkdir(parents=True)
    (run / "params.json").write_text('{"dataset": "celeba",\n "beta": 1.0,,}')
    result = run_main(
        f"--mode={mode}", "--run_name=broken", f"--data_dir={tmp_path / 'no_data'}",
        f"--predictions_dir={tmp_path / 'predictions'}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{run / 'params.json'}" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr and "CelebA" not in result.stdout
