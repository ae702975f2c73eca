"""Checkpoints of everything a resume needs: weights, optimizer state, the step, and
early-stopping state. `latest/` keeps the last two saves; `best/` the one with the
lowest validation loss.

TensorFlow writes a checkpoint's files first and only then points the `checkpoint`
index at them, atomically, so a kill or a full disk mid-save leaves the previous
one in force.
"""

import shutil
from pathlib import Path

import tensorflow as tf


def latest_checkpoint_step(folder):
    """The step of the last complete checkpoint under `folder`, 0 if none; read
    from the checkpoint index alone, without building a model."""
    path = tf.train.latest_checkpoint(str(Path(folder) / "latest"))
    return int(path.rsplit("-", 1)[1]) if path else 0


class Checkpoints:
    def __init__(self, folder, write_folder=None, **trackables):
        """Restore from `folder`; save into `write_folder` (default `folder`), which
        differs only for the non-chief workers of a multi-worker run. The caller is
        its only writer (the run lock), so unfinished saves found there are stale."""
        self.folder = Path(folder)
        write_folder = Path(write_folder or folder)
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.latest = tf.train.CheckpointManager(
            self.checkpoint, str(write_folder / "latest"), max_to_keep=2
        )
        self.best = tf.train.CheckpointManager(
            self.checkpoint, str(write_folder / "best"), max_to_keep=1
        )
        for manager in (self.latest, self.best):
            _remove_unfinished_saves(Path(manager.directory))

    def restore(self, which="latest"):
        """Load the latest (or best) checkpoint; False when there is none."""
        path = tf.train.latest_checkpoint(str(self.folder / which))
        if path is None:
            return False
        status = self.checkpoint.restore(path)
        status.assert_existing_objects_matched()
        status.expect_partial()  # a model-only restore leaves the optimizer unread
        return True

    def latest_step(self):
        return latest_checkpoint_step(self.folder)

    def save(self, step, best=False):
        """Save as `step`; OSError if it cannot be written (a full disk, say)."""
        manager = self.best if best else self.latest
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

    def discard(self, step):
        """Drop the latest checkpoint if it is of `step`, so that a resume starts
        from the one before it (or from scratch), and return the latest step left.
        For a checkpoint whose weights proved bad: they gave a non-finite loss."""
        directory = self.folder / "latest"
        state = tf.train.get_checkpoint_state(str(directory))
        mine = Path(self.latest.directory) == directory  # not a worker's scratch
        bad = f"ckpt-{step}"
        if mine and state and Path(state.model_checkpoint_path).name == bad:
            names = [Path(path).name for path in state.all_model_checkpoint_paths]
            times = list(state.all_model_checkpoint_timestamps)
            kept = [i for i, name in enumerate(names) if name != bad]
            if kept:  # the index rewritten (atomically) as if `step` was never saved
                tf.compat.v1.train.update_checkpoint_state(
                    str(directory),
                    names[kept[-1]],
                    [names[i] for i in kept],
                    all_model_checkpoint_timestamps=[times[i] for i in kept]
                    if len(times) == len(names)
                    else None,
                    last_preserved_timestamp=state.last_preserved_timestamp,
                )
            else:
                (directory / "checkpoint").unlink()
            for path in directory.glob(f"{bad}.*"):
                path.unlink()
        return self.latest_step()


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
