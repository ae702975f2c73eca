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

from utils.files import atomic_write_bytes

# Parameters that may change when a run is resumed: they say how long and how
# often, not what is trained. Anything else differing is a different experiment.
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
}


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
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise RunFolderError(
                f"{self.path.parent} is in use by {holder}; two processes writing "
                "one run would corrupt it. Wait for it to finish, stop it, or "
                "choose another --run_name."
            ) from None
        self.file.truncate(0)
        self.file.write(f"process {os.getpid()}")
        self.file.flush()
        return self

    def release(self):
        if self.file:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


def load_parameters(folder):
    """The parameters saved in a run folder, or None if it has none."""
    path = Path(folder) / "params.json"
    return json.loads(path.read_text()) if path.exists() else None


def check_same_experiment(saved, p, folder):
    """Raise RunFolderError if the saved parameters describe another experiment
    than `p` (beyond how long and how often: RESUMABLE_CHANGES)."""
    if saved is None:
        return
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


def record_parameters(folder, p, params_file):
    """Save params.json, and a copy of params.py the first time."""
    text = json.dumps(p, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(Path(folder) / "params.json", text, durable=True)
    copy = Path(folder) / "params.py"
    if not copy.exists():
        shutil.copyfile(params_file, copy)


def _normal(value):
    """JSON turns tuples into lists and keeps ints: compare like with like."""
    return json.loads(json.dumps(value))
