"""Checkpoints of everything a resume needs: weights, optimizer state, the step, and
early-stopping state. `latest/` keeps the last two saves; `best/` the one with the
lowest validation loss.

TensorFlow writes a checkpoint's files first and only then points the `checkpoint`
index at them, atomically, so a kill mid-save leaves the previous one in force.
"""

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
        differs only for the non-chief workers of a multi-worker run."""
        self.folder = Path(folder)
        write_folder = Path(write_folder or folder)
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.latest = tf.train.CheckpointManager(
            self.checkpoint, str(write_folder / "latest"), max_to_keep=2
        )
        self.best = tf.train.CheckpointManager(
            self.checkpoint, str(write_folder / "best"), max_to_keep=1
        )

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
        (self.best if best else self.latest).save(checkpoint_number=step)
