"""predictions/<run>/: naming, locking, and the record of a run's parameters.

A run folder is never deleted or overwritten by another run: a new run without a
`run_name` gets a fresh name, and an explicit `run_name` that exists resumes it only
if its parameters agree with the saved ones.
"""

import json
import os
import shlex
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from utils.files import FileLock, atomic_write_bytes, remove_stale_temporaries
from utils.objectives import objective_of

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
    "cluster_timeout",
    "steps_per_call",
    "jit_compile",
    "learning_rate",
    "metrics_protocol",
    "metrics_representation",
    "checkpoint",
    "jobs",
    "print_commands",
    "metrics_step",
}
# Parameters added after runs were made, with the value those runs were trained
# with: an older params.json lacks them and still resumes, evaluates and analyses.
ADDED_LATER = {
    "precision": "float32",
    "factor_gamma": 35.0,
    "lambda_od": 10.0,
    "lambda_d": None,
    "metrics_protocol": "reference",
    "metrics_representation": "mean",
    "checkpoint": "latest",
    "factor_correlation": None,
    "holdout": None,
    "decoder_conv_layers": None,  # the encoder's mirror
    "decoder_dense_layers": None,
    "adam_beta_2": 0.999,  # Keras' defaults, which every earlier run had
    "adam_epsilon": 1e-7,
    "preset": None,
    "jobs": 1,
    "print_commands": False,
    "metrics_step": 0,
}
# Resumable, but they change what is trained from the resume on: a resume says so.
TRAINING_CHANGES = ("learning_rate",)


# Where and how a run is computed, not what it learns: runs that differ only in
# these and in their seed are repeats of one experiment.
BOOKKEEPING = frozenset(
    "run_name mode data_dir predictions_dir strategy cluster_timeout steps_per_call "
    "jit_compile log_step plot_step checkpoint_step metrics_at_end metrics_protocol "
    "metrics_representation checkpoint jobs print_commands metrics_step"
    .split()
)  # fmt: skip


class RunFolderError(Exception):
    """The run folder cannot be used as asked: the message says why and what to do."""


def default_run_name(p):
    """A readable name from what distinguishes the experiment."""
    preset = f"{p['preset']}_" if p.get("preset") else ""
    return f"{p['dataset']}_{preset}{objective_of(p).tag(p)}_seed{p['seed']}"


def rerun_command(run_name, argv=None, **changes) -> str:
    """The command this process was started with (`sys.orig_argv`), naming the run,
    with `changes` ({name: value}) in place of what it gave those names: what
    resumes the run, even one started without a --run_name (a rerun of that would
    start a new run in a new folder)."""
    changes = {"run_name": run_name, **changes}
    given = {f"--{name}" for name in changes} | {
        f"--{name.replace('_', '-')}" for name in changes
    }
    kept, skip = [], False
    for arg in list(sys.orig_argv if argv is None else argv):
        if skip:
            skip = False  # the value of a "--name value" pair that is replaced
        elif arg in given:
            skip = True
        elif arg.split("=", 1)[0] not in given:
            kept.append(arg)
    shown = [f"--{name}={value}" for name, value in changes.items()]
    return shlex.join([*kept, *shown])


def unused_name(predictions, base):
    """`base`, or `base-2`, `base-3` … whichever does not exist yet."""
    name, n = base, 1
    while (predictions / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


class RunLock:
    """An exclusive lock on a run folder, held while a process writes into it: a
    files.FileLock on <folder>/.lock, so it never goes stale and leaves no file."""

    DEFAULT_BUSY_ADVICE = (
        "Wait for it to finish, stop it, or choose another --run_name."
    )

    def __init__(self, folder):
        self.folder = Path(folder)
        self.lock = FileLock(self.folder / ".lock")

    def acquire(self, busy_advice=DEFAULT_BUSY_ADVICE):
        """Create the folder if need be and lock it, or raise RunFolderError, whose
        message ends with `busy_advice` if another process holds it. Being the only
        writer, it then removes the temporary files a killed one left."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            locked = self.lock.acquire(wait=False)
            if locked:
                remove_stale_temporaries(self.folder)
        except OSError as error:
            self.release()
            raise RunFolderError(
                f"{cannot_write(self.folder, error)}; choose --predictions_dir=<a "
                "folder you can write>"
            ) from None
        if not locked:
            raise RunFolderError(
                f"{self.folder} is in use by {self.lock.holder or 'another process'}"
                f"; two processes writing one run would corrupt it. {busy_advice}"
            )
        return self

    def release(self):
        self.lock.release()


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
    """The parameters saved in a run folder, or None if it has none; RunFolderError
    if its params.json is not a JSON object (a hand edit gone wrong, say)."""
    path = Path(folder) / "params.json"
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except ValueError as error:  # bad JSON (with its line and column), or not UTF-8
        problem = str(error)
    else:
        if isinstance(saved, dict):
            return {**ADDED_LATER, **saved}
        problem = f"not a JSON object but {json.dumps(saved)[:40]}"
    raise RunFolderError(
        f"cannot read the run's parameters from {path}: {problem}. Fix it, or "
        "delete it: a training rerun restores it from the run's latest checkpoint"
    )


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


def lost_checkpoint_problem(folder, checkpoint_step) -> str | None:
    """Why training `folder` again would overwrite what it holds, or None: a run
    whose checkpoints are gone, although its files say one was written: it
    finished (its last checkpoint comes first), it logged past `checkpoint_step`
    (rows after a checkpoint reach the file only once it is written), or it has
    metrics.json or model/. It would start again at step 0 and write over them. A
    run killed or stopped twice before its first checkpoint was complete has
    nothing to lose: it restarts."""
    folder = Path(folder)
    if any((folder / "checkpoints").rglob("ckpt-*.index")):
        return None
    status, logged = read_status(folder), _last_logged_step(folder / "log.csv")
    results = [name for name in ("metrics.json", "model") if (folder / name).exists()]
    saved = status.get("state") == "finished" or logged > checkpoint_step
    if not (saved or results):
        return None
    holds = [f"a log up to step {logged}"] * bool(logged) + results
    return (
        f"run {folder.name} holds {', '.join(holds) or 'its results'} but no "
        f"checkpoint to resume from ({folder / 'checkpoints'} is missing or empty): "
        "training it would start again at step 0 and write over them. Leave it as "
        "it is (evaluate, analyze and compare need no training), or train anew "
        "under another --run_name, or move the folder away first"
    )


def _last_logged_step(path) -> int:
    try:
        lines = Path(path).read_text().strip().splitlines()
        return int(float(lines[-1].split(",")[0])) if len(lines) > 1 else 0
    except (OSError, ValueError, UnicodeDecodeError):
        return 0


def read_status(folder) -> dict:
    """status.json as write_status wrote it; {} if there is none (or it is bad)."""
    try:
        status = json.loads((Path(folder) / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def write_status(folder, state, step, num_steps, reason):
    """status.json: where the run stands, for the compare page and for a user
    reading the folder. `state`: training | evaluating (the metrics at its end)
    | finished | stopped | diverged | failed. A run killed while training keeps
    "training" (or "evaluating") with no process holding its lock."""
    status = {
        "state": state,
        "step": int(step),
        "num_steps": int(num_steps),
        "reason": reason,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_bytes(Path(folder) / "status.json", json.dumps(status, indent=1))


def check_seed_group(runs, mode):
    """Several runs (UDR) must differ only in their seed (and bookkeeping)."""
    if len(runs) > 1 and mode != "evaluate":
        raise RunFolderError(f"--mode={mode} takes one run; only evaluate takes a,b,c")
    ignored = BOOKKEEPING | {"seed", "run_name"}
    differ = sorted(
        k
        for k in runs[0]
        if k not in ignored and len({repr(r.get(k)) for r in runs}) > 1
    )
    if differ:
        raise RunFolderError(
            "UDR compares runs that differ only in their seed; these differ in "
            f"{', '.join(differ)}: list the runs of one seed group"
        )
