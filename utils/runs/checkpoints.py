"""Checkpoints of everything a resume needs (train.TrainingState): weights, both
optimizers' state, the step, early-stopping state, and the experiment's parameters.
`latest/` keeps the last two saves; `best/` the one with the lowest validation
negative ELBO.

TensorFlow writes a checkpoint's files first and only then points the `checkpoint`
index at them, atomically, so a kill or a full disk mid-save leaves the previous
one in force. A checkpoint damaged later (a file truncated, corrupt or deleted, a
garbled index) is skipped for the newest one that reads whole, said once per
process, and moved aside into `damaged-ckpt-N/`. A run whose checkpoints all fail
is refused (CheckpointError), never restarted from step 0.
"""

import json
import re
import shutil
from pathlib import Path

import tensorflow as tf

from utils.files import atomic_write_bytes
from utils.runs.folder import RunFolderError, unused_name

KEEP = {"latest": 2, "best": 1}  # checkpoints each folder keeps
PARAMETERS_KEY = "parameters/.ATTRIBUTES/VARIABLE_VALUE"
CHECKPOINT_FILE = re.compile(r"ckpt-(\d+)\.(index|data-\d{5}-of-\d{5})")


class CheckpointError(RunFolderError):
    """A run has checkpoints, and none of them can be restored."""


def latest_checkpoint_step(folder, log=print):
    """The step of the checkpoint a resume would restore from `folder`, 0 if none;
    without building a model. CheckpointError if none can be restored."""
    prefix = _newest_readable(Path(folder) / "latest", log)
    return _step_of(prefix) if prefix else 0


def read_state_value(folder, name, log=print):
    """The state variable `name` in the checkpoint a resume would restore from
    `folder`, without building a model; None if there is none, or if it lacks
    `name` (as checkpoints saved before `parameters` was)."""
    prefix = _newest_readable(Path(folder) / "latest", log)
    reader = tf.train.load_checkpoint(prefix) if prefix else None
    key = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
    if reader is None or not reader.has_tensor(key):
        return None
    value = reader.get_tensor(key)
    return json.loads(value) if name == "parameters" else value.item()


class Checkpoints:
    def __init__(self, folder, write_folder=None, **trackables):
        """Restore from `folder`; save into `write_folder` (default `folder`), which
        differs only for the non-chief workers of a multi-worker run. The caller is
        its only writer (the run lock), so unfinished saves found there are stale."""
        self.folder = Path(folder)
        self.write_folder = Path(write_folder or folder)
        self.checkpoint = tf.train.Checkpoint(**trackables)
        # What a checkpoint saved before `parameters` existed restores into.
        self.without_parameters = tf.train.Checkpoint(
            **{k: v for k, v in trackables.items() if k != "parameters"}
        )
        # Built at the first save: a manager reads the index once, when built, and
        # a restore may rewrite it.
        self.managers = {}
        for which in KEEP:
            _remove_unfinished_saves(self.write_folder / which)

    def restore(self, which="latest", log=print):
        """Load the newest checkpoint of `which` (latest | best) that restores → its
        step; None when there is none. A damaged one is skipped, said through
        `log`, and moved aside; CheckpointError if none restores."""
        directory = self.folder / which
        reasons = {}  # step → why it was skipped
        for prefix in _readable_checkpoints(directory, log, reasons):
            failure = self._load(prefix)
            if failure is None:
                self._make_latest(which, _step_of(prefix), list(reasons), log)
                return _step_of(prefix)
            log(f"Skipping checkpoint {prefix}: {failure}")
            reasons[_step_of(prefix)] = failure
        _refuse_if_any(directory, reasons)
        return None

    def _load(self, prefix):
        """Restore `prefix` → None, or why its files could not be read."""
        try:
            saved = tf.train.load_checkpoint(prefix).has_tensor(PARAMETERS_KEY)
            checkpoint = self.checkpoint if saved else self.without_parameters
            status = checkpoint.restore(prefix)
        except (tf.errors.OpError, IndexError) as error:
            return _why(error)
        status.assert_existing_objects_matched()
        status.expect_partial()  # a model-only restore leaves the optimizer unread
        return None

    def _make_latest(self, which, step, damaged, log):
        """Point the index at the checkpoint restored (and the older ones), and
        move the `damaged` newer ones aside: else the next saves would rotate the
        checkpoint restored away and keep the damaged ones."""
        directory = self.folder / which
        if self.write_folder != self.folder:
            return  # a worker reads the chief's folder, which the chief repairs
        pointed = _index_latest(directory)
        if pointed == step and not damaged:
            return
        if pointed not in (step, *damaged):  # else the skips said it all
            index = directory / "checkpoint"
            fault = _fault_of(index, pointed)
            log(f"Rewriting {index}, which {fault}: ckpt-{step} is the latest")
        kept = [s for s in _steps_on_disk(directory) if s <= step]
        _write_index(directory, [f"ckpt-{s}" for s in kept])
        for damaged_step in damaged:
            _move_aside(directory, damaged_step, log)
        self.managers.pop(which, None)

    def parameters(self):
        """The run's parameters as the latest checkpoint saved them."""
        return read_state_value(self.folder, "parameters")

    def latest_step(self):
        return latest_checkpoint_step(self.folder)

    def save(self, step, best=False):
        """Save as `step`; OSError if it cannot be written (a full disk, say)."""
        manager = self._manager("best" if best else "latest")
        try:
            manager.save(checkpoint_number=step)
        except tf.errors.OpError as error:
            # A full disk is RESOURCE_EXHAUSTED, a file size limit OUT_OF_RANGE, …
            _remove_unfinished_saves(Path(manager.directory))
            reason = error.message or type(error).__name__
            raise OSError(
                f"the checkpoint of step {step} could not be saved in "
                f"{manager.directory}: {reason}"
            ) from error

    def _manager(self, which):
        if which not in self.managers:
            self.managers[which] = tf.train.CheckpointManager(
                self.checkpoint, str(self.write_folder / which), KEEP[which]
            )
        return self.managers[which]

    def discard(self, step):
        """Drop the latest checkpoint if it is of `step`, so that a resume starts
        from the one before it (or from scratch), and return the latest step left.
        For a checkpoint whose weights proved bad: they gave a non-finite loss."""
        directory = self.folder / "latest"
        if self.write_folder == self.folder and _index_latest(directory) == step:
            kept = [s for s in _steps_on_disk(directory) if s < step]
            if kept:  # the index rewritten (atomically) as if `step` was never saved
                _write_index(directory, [f"ckpt-{s}" for s in kept])
            else:
                (directory / "checkpoint").unlink()
            for path in directory.glob(f"ckpt-{step}.*"):
                path.unlink()
            self.managers.pop("latest", None)
        return self.latest_step()


# --- which checkpoints there are, and which can be restored


def _step_of(prefix):
    return int(str(prefix).rsplit("-", 1)[1])


def _steps_on_disk(directory):
    """Steps of the checkpoints whose .index file is in `directory`, oldest first."""
    found = (CHECKPOINT_FILE.fullmatch(path.name) for path in directory.glob("ckpt-*"))
    return sorted({int(m[1]) for m in found if m and m[2] == "index"})


def _candidate_steps(directory):
    """Steps of every checkpoint `directory` shows a trace of, newest first: its
    files, even without an .index, and the index's entries, even without files.
    Read as text, the index keeps what it can where TensorFlow's parser gives up."""
    files = (CHECKPOINT_FILE.fullmatch(path.name) for path in directory.glob("ckpt-*"))
    steps = {int(m[1]) for m in files if m}
    index = directory / "checkpoint"
    if index.exists():
        steps |= {int(s) for s in re.findall(r'ckpt-(\d+)"', _text(index))}
    return sorted(steps, reverse=True)


def _text(path):
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _readable_checkpoints(directory, log, reasons):
    """Prefixes of the checkpoints of `directory` whose files read whole, newest
    first; why each other one cannot be restored goes into `reasons`."""
    for step in _candidate_steps(directory):
        prefix = str(directory / f"ckpt-{step}")
        reason = _damage_said_once(prefix, log)
        if reason is None:
            yield prefix
        else:
            reasons[step] = reason


def _newest_readable(directory, log):
    """The checkpoint a restore of `directory` picks, as its prefix; None if it has
    none. The same choice as `Checkpoints.restore`, whose restore is the final
    judge: files that read whole and match the model always restore."""
    reasons = {}
    prefix = next(_readable_checkpoints(directory, log, reasons), None)
    if prefix is None:
        _refuse_if_any(directory, reasons)
    return prefix


def _refuse_if_any(directory, reasons):
    """CheckpointError if `directory` has a trace of checkpoints, none restorable:
    training from step 0 would overwrite them."""
    index = directory / "checkpoint"
    if not reasons and not index.exists():
        return
    found = "; ".join(f"ckpt-{s}: {why}" for s, why in reasons.items())
    raise CheckpointError(
        f"no checkpoint in {directory} can be restored "
        f"({found or f'{index} names none that is there'}). They are left as they "
        "are: to train this run again from step 0, move its folder away, or choose "
        "another --run_name"
    )


_VERDICTS = {}  # (prefix, its files' identity) → why it cannot be restored, or None


def _damage_said_once(prefix, log):
    """_damage(prefix), read and said once per process while its files stay the
    same: main.py asks before the data load, and again when it restores."""
    key = (prefix, _identity(prefix))
    if key not in _VERDICTS:
        _VERDICTS[key] = _damage(prefix)
        if _VERDICTS[key]:
            log(f"Skipping checkpoint {prefix}: {_VERDICTS[key]}")
    return _VERDICTS[key]


def _identity(prefix):
    """What changes when a file of the checkpoint is rewritten, replaced or gone."""
    identity = []
    for path in sorted(Path(prefix).parent.glob(f"{Path(prefix).name}.*")):
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved aside meanwhile, by the chief
            continue
        identity.append((path.name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(identity)


def _damage(prefix):
    """Why the checkpoint `prefix` cannot be restored, or None. Every value is read,
    as a restore reads them: the index alone (names, shapes, dtypes) does not show
    a truncated, corrupt or missing data file."""
    if not Path(f"{prefix}.index").exists():
        left = list(Path(prefix).parent.glob(f"{Path(prefix).name}.*"))
        return "its .index file is missing" if left else "its files are missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for key in reader.get_variable_to_dtype_map():
            reader.get_tensor(key)  # checks each value's length and checksum
    except (tf.errors.OpError, IndexError) as error:
        return _why(error)
    return None


def _why(error):
    # The first line, without the "{{function_node …}}" of an op's error.
    message = re.sub(r"^\{\{.*?\}\}\s*", "", str(error).strip()).splitlines()[0]
    if isinstance(error, IndexError):  # what TensorFlow raises for a short file
        return f"a file is truncated ({message})"
    return message


# --- the index and the files, rewritten


def _index_latest(directory):
    """The step the index points at; None if it is missing or unreadable."""
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except ValueError:  # an empty index
        return None
    name = Path(state.model_checkpoint_path).name if state else ""
    found = re.fullmatch(r"ckpt-(\d+)", name)
    return int(found[1]) if found else None


def _fault_of(index, pointed):
    if not index.exists():
        return "was missing"
    return f"pointed at ckpt-{pointed}" if pointed else "was unreadable"


def _write_index(directory, names):
    """Point the `checkpoint` index at `names` (oldest first), atomically. Their
    save times are their files', after the last preserved time, so that a manager
    rotates them as if it had saved them."""
    times = [(directory / f"{name}.index").stat().st_mtime for name in names]
    state = tf.compat.v1.train.generate_checkpoint_state_proto(
        str(directory),
        names[-1],
        names,
        all_model_checkpoint_timestamps=times,
        last_preserved_timestamp=min(times) - 1,
    )
    atomic_write_bytes(directory / "checkpoint", str(state), durable=True)


def _move_aside(directory, step, log):
    """Keep a damaged checkpoint's files, out of the way, in damaged-ckpt-N/."""
    files = sorted(directory.glob(f"ckpt-{step}.*"))
    if not files:
        return
    aside = directory / unused_name(directory, f"damaged-ckpt-{step}")
    aside.mkdir()
    for path in files:
        path.rename(aside / path.name)
    log(f"Moved the damaged checkpoint ckpt-{step} to {aside}")


def _remove_unfinished_saves(folder):
    """What a save cut short leaves: TensorFlow's `ckpt-N_temp/` shards (merged into
    ckpt-N.* at the end of a save) and `checkpoint.tmp…` (the index before its
    rename). Neither is ever read; a later save of step N overwrites ckpt-N.*."""
    for pattern in ("ckpt-*_temp", "checkpoint.tmp*"):
        for path in folder.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
