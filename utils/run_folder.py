"""predictions/<run>/: naming, locking, and the record of a run's parameters.

A run folder is never deleted or overwritten by another run: a new run without a
`run_name` gets a fresh name, and an explicit `run_name` that exists resumes it only
if its parameters agree with the saved ones.
"""

import fcntl
import json
import os
import shutil
from pathlib import Path

from utils.files import atomic_write_bytes, remove_stale_temporaries

# Parameters that may change when a run is resumed: they say how long and how
# often, not what is trained, except learning_rate, which a run that diverged needs
# lowered to go on. Anything else differing is a different experiment.
RESUMABLE_CHANGES = {
    "num_steps",
    "validation_step",
    "validation_batches",
    "checkpoint_step",
    "plot_step",
    "log_step",
    "metrics_at_end",
    "mode",
    "run_name",
    "early_stopping_patience",
    "data_dir",
    "predictions_dir",
    "strategy",
    "steps_per_call",
    "jit_compile",
    "learning_rate",
}
# Parameters added after runs were made, with the value those runs were trained
# with: an older params.json lacks them and still resumes, evaluates and analyses.
ADDED_LATER = {"precision": "float32"}
# Resumable, but they change what is trained from the resume on: a resume says so.
TRAINING_CHANGES = ("learning_rate",)


class RunFolderError(Exception):
    """The run folder cannot be used as asked: the message says why and what to do."""


def default_run_name(p):
    """A readable name from what distinguishes the experiment."""
    if p["objective"] == "capacity":
        what = f"capacity{p['capacity_max']:g}_gamma{p['gamma']:g}"
    elif p["beta_schedule"] == "constant":
        what = f"beta{p['beta']:g}"
    elif p["beta_schedule"] == "warmup":
        what = f"beta{p['beta']:g}_warmup{p['beta_steps']}"
    else:
        what = f"beta{p['beta_start']:g}to{p['beta']:g}_over{p['beta_steps']}"
    return f"{p['dataset']}_{what}_seed{p['seed']}"


def unused_name(predictions, base):
    """`base`, or `base-2`, `base-3` … whichever does not exist yet."""
    name, n = base, 1
    while (predictions / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


class RunLock:
    """An exclusive lock on a run folder, held while a process writes into it. The
    OS releases it when the process dies, even by SIGKILL, so it never goes stale."""

    def __init__(self, folder):
        self.path = Path(folder) / ".lock"
        self.file = None

    def acquire(self):
        """Create the folder if need be and lock it, or raise RunFolderError. Being
        the only writer, it then removes the temporary files a killed one left."""
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a+")
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.file.truncate(0)
            self.file.write(f"process {os.getpid()}")
            self.file.flush()
            remove_stale_temporaries(folder)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise RunFolderError(
                f"{folder} is in use by {holder}; two processes writing one run "
                "would corrupt it. Wait for it to finish, stop it, or choose another "
                "--run_name."
            ) from None
        except OSError as error:
            self.release()
            raise RunFolderError(
                f"{cannot_write(folder, error)}; choose --predictions_dir=<a folder "
                "you can write>"
            ) from None
        return self

    def release(self):
        if self.file:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


def check_writable(folder):
    """Raise RunFolderError if the run folder `folder` (which may not exist yet)
    could not be created and written. Writes nothing, so it can come before a long
    data load rather than after."""
    folder = Path(folder)
    existing = folder
    try:
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            reason = f"{existing} is a file, not a folder"
        elif os.statvfs(existing).f_flag & os.ST_RDONLY:
            reason = f"{existing} is on a read-only filesystem"
        elif not os.access(existing, os.W_OK | os.X_OK):
            reason = f"no permission to write in {existing}"
        else:
            return
    except OSError as error:
        reason = f"{error.strerror}: {error.filename}"
    raise RunFolderError(
        f"cannot write run folder {folder}: {reason}; choose "
        "--predictions_dir=<a folder you can write>"
    )


def cannot_write(folder, error):
    """The message for an OSError met writing into `folder`: what and why, with the
    space left on its disk, since a full disk is the usual cause."""
    reason = f"{error.strerror}: {error.filename}" if error.filename else str(error)
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = f" ({_size(shutil.disk_usage(existing).free)} free on its disk)"
    except OSError:
        free = ""
    return f"cannot write run folder {folder}: {reason}{free}"


def _size(count):
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000


def load_parameters(folder):
    """The parameters saved in a run folder, or None if it has none."""
    path = Path(folder) / "params.json"
    return {**ADDED_LATER, **json.loads(path.read_text())} if path.exists() else None


def check_same_experiment(saved, p, folder):
    """Raise RunFolderError if the saved parameters describe another experiment
    than `p` (beyond how long and how often: RESUMABLE_CHANGES). Returns a note for
    each of the TRAINING_CHANGES that differ, for the user to see."""
    if saved is None:
        return []
    differing = sorted(
        k
        for k in set(saved) | set(p)
        if k not in RESUMABLE_CHANGES and _normal(saved.get(k)) != _normal(p.get(k))
    )
    if differing:
        changes = ", ".join(f"{k}: {saved.get(k)!r} → {p.get(k)!r}" for k in differing)
        raise RunFolderError(
            f"run {Path(folder).name} exists with other parameters ({changes}). "
            "Resuming it would mix two experiments: pick a new --run_name, or rerun "
            "with the saved values (see its params.json)."
        )
    return [
        f"{k} changes from {saved.get(k)!r} to {p.get(k)!r} on this resume "
        "(params.json keeps the new value)"
        for k in TRAINING_CHANGES
        if k in saved and _normal(saved[k]) != _normal(p.get(k))
    ]


def record_parameters(folder, p, params_file):
    """Save params.json, and a copy of params.py the first time."""
    text = json.dumps(p, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(Path(folder) / "params.json", text, durable=True)
    copy = Path(folder) / "params.py"
    if not copy.exists():  # atomic too: a kill mid-copy would keep half a file
        atomic_write_bytes(copy, Path(params_file).read_bytes())


def _normal(value):
    """JSON turns tuples into lists and keeps ints: compare like with like."""
    return json.loads(json.dumps(value))
