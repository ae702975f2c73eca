"""TensorBoard event files of a run, under predictions/<run>/tensorboard/:

    train/, validation/   scalars (one event per step) and the step images
    metrics/              the final metrics: one file, replaced whole
    (the folder itself)   the hyperparameters, for the HPARAMS tab: one file too

Protobuf events written by this process, without TensorFlow ops or a background
thread: a full disk raises OSError, naming the file, in the thread that writes.
"""

import io
import itertools
import numbers
import os
import socket
import struct
import threading
import time
import uuid
from pathlib import Path

import google_crc32c
from PIL import Image
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from utils.files import atomic_writer

METRICS = "metrics"  # write_metrics' folder, so "metrics/<name>" in the HPARAMS tab
# Events wait in memory until this many bytes or seconds have gathered (or flush):
# one system call per ~1,000 steps, and a running TensorBoard still sees them soon.
WRITE_EVERY_BYTES = 64 * 1024
WRITE_EVERY_SECONDS = 5.0
COLORSPACES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}  # Summary.Image's codes
_file_numbers = itertools.count()  # two writers of one split in one second


class TensorBoard:
    """Scalars and images of a run, one event file per split (train, validation)
    under `folder`. Thread-safe: the step images come from a drawing thread while
    the training loop writes scalars.

    After a resume, the steps trained again replace the killed process's: each
    file starts with a SessionLog START at its first step, from which TensorBoard
    drops the older events (its "orphaned data" purge; the fast loader does the
    same for any step that goes back)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.files = {}
        self.lock = threading.Lock()

    def write(self, split, step, values):
        """`values`: {tag: number}, all in one event (four: ~25 µs of CPU)."""
        scalars = [
            Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()
        ]
        self._add(split, step, Summary(value=scalars))

    def image(self, split, step, tag, encoded):
        """`encoded`: PNG or JPEG bytes, shown in the IMAGES tab under `tag`."""
        value = Summary.Value(tag=tag, image=_summary_image(encoded))
        self._add(split, step, Summary(value=[value]))

    def _add(self, split, step, summary):
        event = Event(wall_time=time.time(), step=int(step), summary=summary)
        record = _record(event)  # outside the lock: an image's checksum takes ms
        with self.lock:
            if split not in self.files:
                self.files[split] = EventFile(self.folder / split, int(step))
            self.files[split].append(record)

    def flush(self):
        """Everything written so far, on disk (fsync), as before each checkpoint."""
        with self.lock:
            for file in self.files.values():
                file.flush()

    def close(self):
        try:
            self.flush()
        finally:
            with self.lock:
                for file in self.files.values():
                    file.file.close()
                self.files = {}


class EventFile:
    """A new event file in `folder`, its records gathered in memory and written in
    one system call (WRITE_EVERY_*), through a file object with no buffer of its
    own: what failed to reach the file is known, kept, and written first next time,
    so the file never has a gap or a torn record."""

    def __init__(self, folder, first_step):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / _event_file_name()
        self.file = _open_new(self.path)
        start = Event(wall_time=time.time(), step=first_step, session_log=_START)
        self.pending = [_record(_file_version()), _record(start)]
        self.gathered = sum(map(len, self.pending))
        self.written_at = -float("inf")  # the first event goes out at once

    def append(self, record):
        self.pending.append(record)
        self.gathered += len(record)
        waited = time.monotonic() - self.written_at
        if self.gathered >= WRITE_EVERY_BYTES or waited >= WRITE_EVERY_SECONDS:
            self.write_out()

    def write_out(self):
        unwritten = memoryview(b"".join(self.pending))
        try:
            while unwritten:
                unwritten = unwritten[self.file.write(unwritten) :]
        except OSError as error:
            # Every later call tries again, and raises again while there is no room.
            self.pending, self.gathered = [bytes(unwritten)], len(unwritten)
            self.written_at = -float("inf")
            raise _naming(self.path, error) from error
        self.pending, self.gathered, self.written_at = [], 0, time.monotonic()

    def flush(self):
        self.write_out()
        try:
            os.fsync(self.file.fileno())
        except OSError as error:
            raise _naming(self.path, error) from error


def write_hparams(folder, params, metrics, varying=()):
    """The run's hyperparameters for the HPARAMS tab: one row per run, with a column
    per name in `params` ({name: str, number or bool}; a list becomes its text, a
    None is left out) and per scalar in `metrics`, named "<split>/<tag>"
    ("validation/loss", "metrics/mig"). The tab shows five hyperparameters until
    more are ticked: the names in `varying` (a sweep's) first, then by name.

    Written in `folder` itself, the parent of the splits: TensorBoard looks for a
    run's metrics in the folders under the one holding its hyperparameters. A new
    call replaces the previous one's (a resume may change the learning rate)."""
    values = {k: v for k, v in params.items() if v is not None}
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in values.items():
        _set_hparam(start.hparams[name], value)
    experiment = api_pb2.Experiment(
        hparam_infos=[_hparam_info(k, v, k in varying) for k, v in values.items()],
        metric_infos=[_metric_info(name) for name in metrics],
    )
    summary = Summary(
        value=[
            _hparams_value(metadata.EXPERIMENT_TAG, experiment=experiment),
            _hparams_value(metadata.SESSION_START_INFO_TAG, session_start_info=start),
        ]
    )
    _replace_events(Path(folder), [Event(wall_time=time.time(), summary=summary)])


def write_metrics(folder, step, metrics):
    """The run's final metrics ({name: number}) at `step`, as scalars under
    folder/metrics, which the HPARAMS tab shows as "metrics/<name>". A new call
    replaces the earlier values, in a running TensorBoard too: see _replace_events."""
    scalars = [Summary.Value(tag=k, simple_value=float(v)) for k, v in metrics.items()]
    wall_time = time.time()
    events = [
        # The legacy loader drops the old values at this START (step 0: all of
        # them); the fast one replaces each value written again at its step.
        Event(wall_time=wall_time, step=0, session_log=_START),
        Event(wall_time=wall_time, step=int(step), summary=Summary(value=scalars)),
    ]
    _replace_events(Path(folder) / METRICS, events)


def _replace_events(folder, events):
    """A complete event file of `events` in `folder`, in place of the ones before.
    A new name, renamed into place once whole, then the old files deleted: a running
    TensorBoard keeps reading the file it opened under a name and would never see
    new contents under that name, but it does read a new file."""
    folder.mkdir(parents=True, exist_ok=True)
    data = b"".join(_record(event) for event in [_file_version(), *events])
    path = folder / _event_file_name()
    # No "tfevents" in the temporary name, or TensorBoard would read it half-done.
    temporary = folder / f".events.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with atomic_writer(path, durable=True, temporary=temporary) as file:
            file.write(data)
    except OSError as error:
        raise _naming(path, error) from error
    for old in folder.glob("*tfevents*"):
        if old != path:
            old.unlink(missing_ok=True)


# --- protobufs and records

_START = SessionLog(status=SessionLog.START)


def _file_version():
    return Event(wall_time=time.time(), file_version="brain.Event:2")


def _record(event):
    """One TFRecord, as tensorboard's RecordWriter frames it: the length, its
    masked CRC-32C, the serialized event, its masked CRC-32C."""
    data = event.SerializeToString()
    length = struct.pack("<Q", len(data))
    return b"".join((length, _checksum(length), data, _checksum(data)))


def _checksum(data):
    """TFRecord's masked CRC-32C. google_crc32c's C code: TensorBoard's own
    pure-Python one took 0.27 s for a CelebA step's traversal PNG (0.9 MB)."""
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _summary_image(encoded):
    """Summary.Image of PNG or JPEG bytes, its size read from their header. Bytes
    that are no such image are a ValueError: PIL's OSError would read as a full
    disk to the caller."""
    try:
        with Image.open(io.BytesIO(encoded)) as picture:
            kind, (width, height), mode = picture.format, picture.size, picture.mode
    except OSError as error:
        raise ValueError(f"not a PNG or JPEG image: {error}") from None
    if kind not in ("PNG", "JPEG"):
        raise ValueError(f"not a PNG or JPEG image: {kind}")
    return Summary.Image(
        width=width,
        height=height,
        colorspace=COLORSPACES.get(mode, 0),
        encoded_image_string=bytes(encoded),
    )


def _set_hparam(value, python_value):
    """Fill a google.protobuf.Value; bool before number, since a bool is an int."""
    if isinstance(python_value, bool):
        value.bool_value = python_value
    elif isinstance(python_value, numbers.Real):
        value.number_value = float(python_value)
    elif isinstance(python_value, (str, list, tuple)):
        value.string_value = str(python_value)
    else:
        raise TypeError(f"hyperparameter of type {type(python_value).__name__}")


def _hparam_info(name, value, differs):
    """A column of the table. No domain for numbers and text: one run cannot know
    the others' values, and a domain of its own would filter them out."""
    info = api_pb2.HParamInfo(name=name, differs=differs)
    if isinstance(value, bool):
        info.type = api_pb2.DATA_TYPE_BOOL
        info.domain_discrete.extend([False, True])
    elif isinstance(value, numbers.Real):
        info.type = api_pb2.DATA_TYPE_FLOAT64
    else:
        info.type = api_pb2.DATA_TYPE_STRING
    return info


def _metric_info(name):
    """Metric "validation/loss": the scalar "loss" of the folder "validation"."""
    group, tag = name.split("/", 1) if "/" in name else ("", name)
    return api_pb2.MetricInfo(name=api_pb2.MetricName(group=group, tag=tag))


def _hparams_value(tag, **plugin_data):
    content = plugin_data_pb2.HParamsPluginData(**plugin_data)
    return Summary.Value(
        tag=tag,
        metadata=metadata.create_summary_metadata(content),
        tensor=metadata.NULL_TENSOR,
    )


# --- files


def _event_file_name():
    """TensorBoard reads the files of a folder in name order: nanoseconds since the
    epoch put a newer file after an older one, even within a second."""
    host, pid, number = socket.gethostname(), os.getpid(), next(_file_numbers)
    return f"events.out.tfevents.{time.time_ns()}.{host}.{pid}.{number}"


def _open_new(path):
    return open(path, "xb", buffering=0)


def _naming(path, error):
    """The OSError to raise: the system's reason, and the event file as filename."""
    return OSError(error.errno, error.strerror or str(error), str(path))
