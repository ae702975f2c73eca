"""log.csv and validation.csv (one row per logged step), with the same values as
TensorBoard scalars (utils/outputs/tensorboard.py).

Rows are buffered and flushed (with fsync) right before each checkpoint, so every row
up to the checkpoint's step is complete on disk. On resume, rows after the
checkpoint — trained again from there — are dropped first, so the log has no gap
and no duplicated step.
"""

import csv
import os
from pathlib import Path

import numpy as np

from utils.files import atomic_write_bytes

METRICS_CSV = "metrics_during_training.csv"
TRAINING_METRICS = "during_training"  # their TensorBoard folder: a run of its own


class CsvLog:
    def __init__(self, path, columns, resume_step=0):
        """Open `path` for appending rows with `columns` (the first is "step").
        Existing rows with a step after `resume_step` are removed."""
        self.path, self.columns = Path(path), list(columns)
        self.rows = []
        kept = self._rows_up_to(resume_step) if self.path.exists() else []
        lines = [",".join(self.columns)] + [",".join(row) for row in kept]
        atomic_write_bytes(self.path, "\n".join(lines) + "\n", durable=True)
        self.file = open(self.path, "a", newline="")

    def _rows_up_to(self, last_step):
        rows = whole_rows(self.path)
        if not rows or rows[0] != self.columns:
            # Same experiment (params.json agreed) but another layout: keep the
            # old file rather than mixing columns.
            os.replace(self.path, _unused(self.path))
            return []
        return [
            row
            for row in rows[1:]
            if len(row) == len(self.columns)
            and _is_number(row[0])
            and float(row[0]) <= last_step
        ]

    def append(self, values):
        """`values`: {column: number}; missing columns are left empty."""
        self.rows.append(",".join(_format(values.get(c)) for c in self.columns))

    def flush(self):
        if self.rows:
            self.file.write("\n".join(self.rows) + "\n")
            self.rows = []
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self):
        self.flush()
        self.file.close()


def whole_rows(path):
    """The rows of a CSV log that a kill did not cut: those ended by a newline
    (a cut can fall inside the last number, leaving it short but parseable)."""
    return list(csv.reader(Path(path).read_text().split("\n")[:-1]))


def read_log_csv(path: Path) -> dict[str, np.ndarray]:
    """CSV with a header row → {column: float array} of its whole rows; empty or
    bad cells → nan."""
    try:
        header, *body = whole_rows(path) or [[]]
    except (OSError, UnicodeDecodeError):
        return {}

    def number(cell: str) -> float:
        try:
            return float(cell)
        except ValueError:  # "" from a column a row did not log
            return np.nan

    return {
        name: np.array(
            [number(row[j]) if j < len(row) else np.nan for row in body if row],
            dtype=np.float64,
        )
        for j, name in enumerate(header)
    }


def _unused(path):
    n = 1
    while (old := path.with_suffix(f".old{n}.csv")).exists():
        n += 1
    return old


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _format(value):
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.6g}"


class RunLogs:
    """A run's log.csv, validation.csv and TensorBoard scalars, with the columns
    its objective logs. A non-chief worker of a multi-worker run logs nothing (the
    chief logs the same values)."""

    def __init__(
        self, folder, terms, latent_size, resume_step, chief=True, measured=()
    ):
        """`measured`: the metrics logged during training (metrics_step), if any,
        into metrics_during_training.csv."""
        from utils.outputs.tensorboard import TensorBoard

        self.terms = list(terms)
        self.latents = [f"kl_z{i}" for i in range(latent_size)]
        self.writers = []
        if chief:
            self.train_csv = CsvLog(
                folder / "log.csv", ["step", *self.terms, *self.latents], resume_step
            )
            self.validation_csv = CsvLog(
                folder / "validation.csv", ["step", *self.terms], resume_step
            )
            self.tensorboard = TensorBoard(folder / "tensorboard")
            self.writers = [self.train_csv, self.validation_csv, self.tensorboard]
            if measured:
                self.metrics_csv = CsvLog(
                    folder / METRICS_CSV, ["step", *measured], resume_step
                )
                self.writers.insert(2, self.metrics_csv)

    def train(self, step, values):
        """One step's row: its terms, and the KL of each latent."""
        if self.writers:
            latents = dict(zip(self.latents, values["kl_per_latent"], strict=True))
            self.train_csv.append({"step": step, **values, **latents})
            self.tensorboard.write("train", step, {k: values[k] for k in self.terms})

    def validation(self, step, values):
        if self.writers:
            self.validation_csv.append({"step": step, **values})
            self.tensorboard.write("validation", step, values)

    def metrics(self, step, values):
        """metrics_step's numbers: a row, and TensorBoard's "during_training"."""
        if self.writers:
            self.metrics_csv.append({"step": step, **values})
            self.metrics_csv.flush()  # minutes apart: on disk at once
            self.tensorboard.write(TRAINING_METRICS, step, values)

    def flush(self):
        for writer in self.writers:
            writer.flush()

    def images(self, step, encoded):
        """A step's images ({tag: PNG or JPEG bytes}) in TensorBoard's IMAGES tab;
        called from the drawing thread."""
        for tag, data in encoded.items() if self.writers else ():
            self.tensorboard.image("train", step, tag, data)

    def close(self):
        for writer in self.writers:
            writer.close()
