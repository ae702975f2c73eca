"""utils/outputs/tensorboard.py: event files read back by record, a full disk, two
threads at once, hparams and metrics; and (slow) a real TensorBoard serving them."""

import errno
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.summary.writer.record_writer import RecordWriter

from utils.outputs import tensorboard
from utils.outputs.tensorboard import TensorBoard, write_hparams, write_metrics

REPO = Path(__file__).resolve().parent.parent
LOSSES = {"loss": 80.5, "reconstruction_loss": 70.25, "kl": 10.25, "beta": 4.0}


def encoded_image(kind, mode="RGB", size=(24, 16), seed=0):
    """`kind` (PNG or JPEG) bytes of a seeded noise image of `size` (width, height)."""
    rng = np.random.default_rng(seed)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, kind)
    return buffer.getvalue()


def read_events(folder):
    """Every event in the event files directly in `folder`, in name order; each
    record's length and both checksums checked, and no byte left over."""
    events = []
    for path in sorted(Path(folder).glob("*tfevents*")):
        data, position = path.read_bytes(), 0
        while position < len(data):
            length = data[position : position + 8]
            assert data[position + 8 : position + 12] == checksum(length), path
            end = position + 12 + struct.unpack("<Q", length)[0]
            assert data[end : end + 4] == checksum(data[position + 12 : end]), path
            events.append(Event.FromString(data[position + 12 : end]))
            position = end + 4
    return events


def checksum(data):
    return struct.pack("<I", masked_crc32c(data))


def summaries(events):
    return [e for e in events if e.HasField("summary")]


def scalars(events):
    return [
        (e.step, {v.tag: v.simple_value for v in e.summary.value})
        for e in summaries(events)
    ]


# --- scalars and images


def test_record_is_framed_as_tensorboards_own_record_writer():
    event = Event(wall_time=1.5, step=7, file_version="brain.Event:2")
    buffer = io.BytesIO()
    RecordWriter(buffer).write(event.SerializeToString())
    assert tensorboard._record(event) == buffer.getvalue()


def test_each_step_is_one_event_after_the_version_and_a_start_at_the_first(
    tmp_path,
):
    board = TensorBoard(tmp_path)
    board.write("train", 5, LOSSES)
    board.write("train", 6, {**LOSSES, "loss": 79.5})
    board.write("validation", 6, {"loss": 90.0})
    board.close()
    train = read_events(tmp_path / "train")
    assert train[0].file_version == "brain.Event:2"
    assert (train[1].step, train[1].session_log.status) == (5, SessionLog.START)
    assert scalars(train) == [(5, LOSSES), (6, {**LOSSES, "loss": 79.5})]
    assert scalars(read_events(tmp_path / "validation")) == [(6, {"loss": 90.0})]


@pytest.mark.parametrize(
    "kind, mode, colorspace", [("PNG", "RGBA", 4), ("JPEG", "L", 1), ("JPEG", "RGB", 3)]
)
def test_images_keep_their_bytes_size_and_colorspace(tmp_path, kind, mode, colorspace):
    encoded = encoded_image(kind, mode, size=(24, 16))
    board = TensorBoard(tmp_path)
    board.image("train", 1000, "images/composite", encoded)
    board.close()
    (event,) = summaries(read_events(tmp_path / "train"))
    (value,) = event.summary.value
    assert (event.step, value.tag) == (1000, "images/composite")
    assert (value.image.width, value.image.height) == (24, 16)
    assert value.image.colorspace == colorspace
    assert value.image.encoded_image_string == encoded


@pytest.mark.parametrize("data", [b"not an image", encoded_image("GIF", "L")])
def test_image_refuses_what_is_not_png_or_jpeg_as_a_value_error(tmp_path, data):
    with pytest.raises(ValueError, match="not a PNG or JPEG"):  # not OSError
        TensorBoard(tmp_path).image("train", 1, "images/composite", data)


class SlowDisk(io.RawIOBase):
    """A new file whose writes take a while, as a busy disk's: another thread
    runs meanwhile."""

    def __init__(self, path):
        self.file = open(path, "xb", buffering=0)

    def writable(self):
        return True

    def write(self, chunk):
        time.sleep(1e-4)
        return self.file.write(chunk)

    def fileno(self):
        return self.file.fileno()


def test_two_threads_writing_at_once_lose_and_tear_no_event(tmp_path, monkeypatch):
    """The training loop's scalars and the drawing thread's images, each event
    written out at once, to a slow disk."""
    monkeypatch.setattr(tensorboard, "WRITE_EVERY_BYTES", 1)
    monkeypatch.setattr(tensorboard, "_open_new", SlowDisk)
    board, picture = TensorBoard(tmp_path), encoded_image("PNG", size=(8, 8))

    def draw():
        for step in range(0, 1000, 10):
            board.image("train", step, "images/traversal", picture)

    with ThreadPoolExecutor(1) as drawing:
        images = drawing.submit(draw)
        for step in range(1, 1001):
            board.write("train", step, LOSSES)
        images.result()
    board.close()
    events = summaries(read_events(tmp_path / "train"))
    tags = [e.summary.value[0].tag for e in events]
    assert (tags.count("loss"), tags.count("images/traversal")) == (1000, 100)


def test_events_wait_in_memory_until_enough_bytes_or_seconds_or_a_flush(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(tensorboard, "WRITE_EVERY_SECONDS", 3600)
    board = TensorBoard(tmp_path)
    board.write("train", 1, LOSSES)  # the first goes out at once
    assert len(scalars(read_events(tmp_path / "train"))) == 1
    for step in range(2, 11):
        board.write("train", step, LOSSES)
    assert len(scalars(read_events(tmp_path / "train"))) == 1
    board.flush()
    assert len(scalars(read_events(tmp_path / "train"))) == 10
    monkeypatch.setattr(tensorboard, "WRITE_EVERY_BYTES", 1)
    board.write("train", 11, LOSSES)
    assert len(scalars(read_events(tmp_path / "train"))) == 11
    monkeypatch.setattr(tensorboard, "WRITE_EVERY_BYTES", 1 << 30)
    monkeypatch.setattr(tensorboard, "WRITE_EVERY_SECONDS", 0)
    board.write("train", 12, LOSSES)
    assert len(scalars(read_events(tmp_path / "train"))) == 12


def test_flush_puts_every_split_on_disk(tmp_path, monkeypatch):
    board = TensorBoard(tmp_path)
    board.write("train", 1, LOSSES)
    board.write("validation", 1, LOSSES)
    synced = []
    monkeypatch.setattr(
        os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
    )
    board.flush()
    assert sorted(Path(p).parent.name for p in synced) == ["train", "validation"]


# --- a full disk


def test_a_full_disk_raises_oserror_naming_the_file_in_the_writing_thread(
    tmp_path, monkeypatch, capfd
):
    """/dev/full refuses every write with ENOSPC, as a full disk does."""
    opened = []

    def full_disk(path):
        opened.append(path)
        return open("/dev/full", "wb", buffering=0)

    monkeypatch.setattr(tensorboard, "_open_new", full_disk)
    threads = threading.active_count()
    board = TensorBoard(tmp_path)
    calls = [
        lambda: board.write("train", 1, LOSSES),
        lambda: board.write("train", 2, LOSSES),  # each call tries again
        lambda: board.flush(),
        lambda: board.close(),
    ]
    with ThreadPoolExecutor(1) as drawing:  # the step images' thread
        picture = encoded_image("JPEG")
        calls.append(
            drawing.submit(board.image, "train", 3, "images/composite", picture).result
        )
        for call in calls:
            with pytest.raises(OSError) as raised:
                call()
            assert raised.value.errno == errno.ENOSPC
            assert raised.value.filename == str(opened[0])
    assert opened[0].parent == tmp_path / "train"
    assert threading.active_count() == threads
    assert capfd.readouterr().err == ""


class FillingDisk(io.RawIOBase):
    """A file on a disk with `room` bytes left: a write takes what fits, then
    ENOSPC, as write(2) does."""

    def __init__(self, room):
        self.data, self.room = bytearray(), room

    def writable(self):
        return True

    def write(self, chunk):
        if self.room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        taken = bytes(chunk[: self.room])
        self.data += taken
        self.room -= len(taken)
        return len(taken)

    def fileno(self):
        raise OSError(errno.EBADF, "not a real file")


def test_after_a_full_disk_frees_up_nothing_is_lost_or_torn(tmp_path, monkeypatch):
    disk = FillingDisk(room=300)  # the file's header and a step and a half
    monkeypatch.setattr(tensorboard, "_open_new", lambda path: disk)
    monkeypatch.setattr(tensorboard, "WRITE_EVERY_BYTES", 1)
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    board = TensorBoard(tmp_path)
    failed = []
    for step in range(1, 6):
        try:
            board.write("train", step, LOSSES)
        except OSError:
            failed.append(step)
    disk.room = 1 << 20  # room made
    board.write("train", 6, LOSSES)
    assert failed == [3, 4, 5]
    (tmp_path / "events.out.tfevents.1").write_bytes(disk.data)
    assert [step for step, _ in scalars(read_events(tmp_path))] == [1, 2, 3, 4, 5, 6]


# --- hparams and metrics

PARAMS = {
    "beta": 4.0,
    "seed": 3,
    "objective": "beta",
    "conv_layers": [[32, 4, 2], [32, 4, 2]],
    "metrics_at_end": True,
    "capacity_max": None,
}


def hparams_plugin_data(folder):
    """{tag: content} of the hparams summaries in the event files of `folder`."""
    return {
        value.tag: value.metadata.plugin_data.content
        for event in summaries(read_events(folder))
        for value in event.summary.value
    }


def test_hparams_name_every_param_and_metric_in_the_folder_above_the_splits(
    tmp_path,
):
    write_hparams(
        tmp_path, PARAMS, ["validation/loss", "metrics/beta_vae"], varying=["seed"]
    )
    content = hparams_plugin_data(tmp_path)  # the folder itself, not a split
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    assert start.group_name == ""  # one row per run, even with equal params
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert hparams == {
        "beta": 4.0,
        "seed": 3.0,
        "objective": "beta",
        "conv_layers": "[[32, 4, 2], [32, 4, 2]]",
        "metrics_at_end": True,
    }
    experiment = hparams_metadata.parse_experiment_plugin_data(
        content[hparams_metadata.EXPERIMENT_TAG]
    )
    infos = {i.name: (i.type, i.differs) for i in experiment.hparam_infos}
    assert infos == {
        "beta": (api_pb2.DATA_TYPE_FLOAT64, False),
        "seed": (api_pb2.DATA_TYPE_FLOAT64, True),
        "objective": (api_pb2.DATA_TYPE_STRING, False),
        "conv_layers": (api_pb2.DATA_TYPE_STRING, False),
        "metrics_at_end": (api_pb2.DATA_TYPE_BOOL, False),
    }
    metrics = [(m.name.group, m.name.tag) for m in experiment.metric_infos]
    assert metrics == [("validation", "loss"), ("metrics", "beta_vae")]


def test_hparams_refuse_a_value_of_another_type(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        write_hparams(tmp_path, {"beta": {"a": 1}}, [])


def test_rewritten_metrics_replace_the_old_file_whole(tmp_path):
    write_hparams(tmp_path, PARAMS, ["metrics/mig"])
    write_metrics(tmp_path, 16000, {"mig": 0.125, "beta_vae": 0.875})
    write_metrics(tmp_path, 16000, {"mig": 0.25, "beta_vae": 0.75})
    folder = tmp_path / tensorboard.METRICS
    assert len(list(folder.iterdir())) == 1  # no older file, no temporary
    events = read_events(folder)
    assert events[0].file_version == "brain.Event:2"
    assert (events[1].step, events[1].session_log.status) == (0, SessionLog.START)
    assert scalars(events) == [(16000, {"mig": 0.25, "beta_vae": 0.75})]
    assert len(list(tmp_path.glob("*tfevents*"))) == 1  # the hparams stay


def test_a_failed_metrics_rewrite_keeps_the_old_values(tmp_path, monkeypatch):
    write_metrics(tmp_path, 100, {"mig": 0.12})

    def full_disk(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError) as raised:
        write_metrics(tmp_path, 100, {"mig": 0.25})
    folder = tmp_path / tensorboard.METRICS
    assert raised.value.errno == errno.ENOSPC
    assert Path(raised.value.filename).parent == folder
    assert len(list(folder.iterdir())) == 1  # no temporary left
    assert scalars(read_events(folder)) == [(100, {"mig": pytest.approx(0.12)})]


def test_writing_imports_no_tensorflow(tmp_path):
    """Importing TensorFlow takes seconds: a tool reading a run must not pay it."""
    script = (
        "import sys; from utils.outputs.tensorboard import TensorBoard, write_metrics; "
        f"b = TensorBoard({str(tmp_path)!r}); b.write('train', 1, {{'loss': 1}}); "
        f"b.close(); write_metrics({str(tmp_path)!r}, 1, {{'mig': 0.5}}); "
        "assert 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True)


# --- a real TensorBoard


HPARAMS_METRICS = ["validation/loss", "metrics/mig"]
STEP_IMAGES = [
    ("images/composite", "JPEG", (64, 48)),
    ("images/traversal", "PNG", (40, 80)),
]


def write_run(folder, beta, metrics):
    """A small run as training writes it, resumed once: a first process killed
    after step 15 (its last checkpoint at step 10), then one from step 11. Scalars
    every step (the killed steps' loss of −1 must vanish), a validation and images
    (JPEG composite, PNG traversal) every 10; hparams and metrics. Returns what
    TensorBoard should show: see `predictions`."""
    shown = {"scalars": {"train": {}, "validation": {}}, "images": {}}
    for steps, killed in [(range(1, 16), True), (range(11, 21), False)]:
        board = TensorBoard(folder / "tensorboard")
        for step in steps:
            losses = {**LOSSES, "loss": -1.0 if killed and step > 10 else 100.0 - step}
            board.write("train", step, {**losses, "beta": beta})
            if step % 10 == 0:
                board.write("validation", step, {"loss": 110.0 - step})
                for tag, kind, size in STEP_IMAGES:
                    image = encoded_image(kind, "RGB", size, seed=step)
                    board.image("train", step, tag, image)
                    shown["images"].setdefault(tag, {})[step] = image
        board.flush()  # and the killed one is never closed
    for step in range(1, 21):
        values = {**LOSSES, "loss": 100.0 - step, "beta": beta}
        for tag, value in values.items():
            shown["scalars"]["train"].setdefault(tag, []).append((step, value))
    shown["scalars"]["validation"]["loss"] = [(10, 100.0), (20, 90.0)]
    params = {**PARAMS, "beta": beta, "run_name": folder.name}
    write_hparams(folder / "tensorboard", params, HPARAMS_METRICS, varying=["beta"])
    write_metrics(folder / "tensorboard", 20, metrics)
    return {**shown, "hparams": {"beta": beta, "objective": "beta"}, "metrics": metrics}


@pytest.fixture
def predictions(tmp_path_factory):
    """A predictions folder of two runs, and what TensorBoard should show of each:
    {run: {"scalars": {split: {tag: [(step, value)]}}, "images": {tag: {step:
    bytes}}, "hparams": {name: value}, "metrics": {name: value}}}. To check main.py
    instead, train two tiny runs here (metrics at the end) and fill this from their
    log.csv, validation.csv, image files, params.json and metrics.json."""
    folder = tmp_path_factory.mktemp("predictions")
    runs = {
        name: write_run(folder / name, beta, {"mig": mig})
        for name, beta, mig in [("beta1", 1.0, 0.125), ("beta4", 4.0, 0.5)]
    }
    return folder, runs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`tensorboard --logdir <folder>` on a free local port, and its HTTP API."""

    def __init__(self, folder, load_fast):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [
            str(Path(sys.executable).parent / "tensorboard"), f"--logdir={folder}",
            "--host=127.0.0.1", f"--port={port}", "--reload_interval=1",
            f"--load_fast={load_fast}",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def get(self, path, **query):
        url = f"{self.url}{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    def json(self, path, body=None, **query):
        if body is None:
            return json.loads(self.get(path, **query))
        request = urllib.request.Request(
            self.url + path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},  # else read as a form
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_for(self, check, seconds=90):
        """The first truthy `check()`, polled until TensorBoard has loaded."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                result = check()
                if result:
                    return result
            except OSError:  # not serving yet
                pass
            assert self.process.poll() is None, "tensorboard exited"
            assert time.monotonic() < deadline, "tensorboard never served it"
            time.sleep(0.5)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def session_groups(server):
    request = {
        "experimentName": "",
        "allowedStatuses": [
            "STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"
        ],
        "colParams": [],
        "startIndex": 0,
        "sliceSize": 100,
        "includeMetrics": True,
    }  # fmt: skip
    groups = server.json("/data/plugin/hparams/session_groups", request)
    return {
        group["name"].split("/")[0]: {
            "hparams": group["hparams"],
            "metrics": {
                f"{m['name']['group']}/{m['name']['tag']}": m["value"]
                for m in group["metricValues"]
            },
        }
        for group in groups.get("sessionGroups", [])
    }


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", ["true", "false"])  # the Rust and Python loaders
def test_tensorboard_serves_scalars_images_hparams_and_rewritten_metrics(
    predictions, load_fast
):
    folder, runs = predictions
    server = Server(folder, load_fast)
    try:
        expected_runs = {
            f"{name}/tensorboard{split}"
            for name in runs
            for split in ["", "/train", "/validation", "/metrics"]
        }
        server.wait_for(lambda: expected_runs <= set(server.json("/data/runs")))
        groups = server.wait_for(
            lambda: len(session_groups(server)) == len(runs) and session_groups(server)
        )
        for name, run in runs.items():
            check_scalars(server, f"{name}/tensorboard", run["scalars"])
            check_images(server, f"{name}/tensorboard/train", run["images"])
            check_hparams(groups[name], run)
        experiment = server.json(
            "/data/plugin/hparams/experiment", {"experimentName": ""}
        )
        assert experiment["hparamInfos"][0]["name"] == "beta"  # `varying` first
        metric_names = [m["name"] for m in experiment["metricInfos"]]
        assert [f"{m['group']}/{m['tag']}" for m in metric_names] == HPARAMS_METRICS

        name = next(iter(runs))  # `--mode=evaluate` again, with another result
        write_metrics(folder / name / "tensorboard", 20, {"mig": 0.75})
        server.wait_for(
            lambda: session_groups(server)[name]["metrics"]["metrics/mig"] == 0.75
        )
        points = server.json(
            "/data/plugin/scalars/scalars", run=f"{name}/tensorboard/metrics", tag="mig"
        )
        assert [(step, value) for _, step, value in points] == [(20, 0.75)]
    finally:
        server.stop()


def check_scalars(server, session, expected):
    tags = server.json("/data/plugin/scalars/tags")
    for split, series in expected.items():
        run = f"{session}/{split}"
        assert set(tags[run]) == set(series)
        for tag, points in series.items():
            served = server.json("/data/plugin/scalars/scalars", run=run, tag=tag)
            steps, values = zip(*points, strict=True)
            assert [step for _, step, _ in served] == list(steps), (run, tag)
            assert [value for _, _, value in served] == pytest.approx(values)


def check_images(server, run, expected):
    assert set(server.json("/data/plugin/images/tags")[run]) == set(expected)
    for tag, images in expected.items():
        listing = server.json("/data/plugin/images/images", run=run, tag=tag, sample=0)
        assert [image["step"] for image in listing] == list(images)
        query = dict(urllib.parse.parse_qsl(listing[-1]["query"]))
        served = server.get("/data/plugin/images/individualImage", **query)
        assert served == images[listing[-1]["step"]]


def check_hparams(group, run):
    for name, value in run["hparams"].items():
        assert group["hparams"][name] == value
    _, last_validation_loss = run["scalars"]["validation"]["loss"][-1]
    assert group["metrics"]["validation/loss"] == last_validation_loss
    for name, value in run["metrics"].items():
        assert group["metrics"][f"metrics/{name}"] == pytest.approx(value)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny dSprites runs trained by `python main.py` (β = 1 and 4), with the
    fast metrics at their end: the predictions folder."""
    root = tmp_path_factory.mktemp("real")
    repo = Path(__file__).resolve().parents[1]
    for beta in (1, 4):
        result = subprocess.run(
            [sys.executable, str(repo / "main.py"), "--dataset=dsprites",
             f"--data_dir={root / 'data'}", f"--predictions_dir={root / 'runs'}",
             f"--run_name=beta{beta}", f"--beta={beta}", "--latent_size=4",
             "--batch_size=16", "--conv_layers=[[8,4,2],[8,4,2],[8,4,2],[8,4,2]]",
             "--dense_layers=[[32]]", "--validation_batches=2", "--num_steps=20",
             "--validation_step=10", "--plot_step=10", "--metrics_protocol=fast"],
            capture_output=True, text=True, timeout=900, cwd="/",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    return root / "runs"


@pytest.mark.slow
def test_tensorboard_serves_what_main_py_writes(trained):
    server = Server(trained, "true")
    try:
        server.wait_for(
            lambda: (
                {"beta1/tensorboard/train", "beta4/tensorboard/metrics"}
                <= set(server.json("/data/runs"))
            )
        )
        groups = server.wait_for(
            lambda: len(session_groups(server)) == 2 and session_groups(server)
        )
        tags = server.json("/data/plugin/scalars/tags")
        for beta in (1, 4):
            run, group = f"beta{beta}", groups[f"beta{beta}"]
            log = (trained / run / "log.csv").read_text().splitlines()
            assert set(tags[f"{run}/tensorboard/train"]) == set(
                log[0].split(",")[1:6]  # loss … negative_elbo, beta
            )
            served = server.json(
                "/data/plugin/scalars/scalars", run=f"{run}/tensorboard/train",
                tag="loss",
            )  # fmt: skip
            assert [step for _, step, _ in served] == list(range(1, 21))
            images = server.json("/data/plugin/images/tags")[f"{run}/tensorboard/train"]
            assert set(images) == {"images/composite", "images/traversal"}
            listing = server.json(
                "/data/plugin/images/images", run=f"{run}/tensorboard/train",
                tag="images/traversal", sample=0,
            )  # fmt: skip
            assert [image["step"] for image in listing] == [10, 20]
            assert group["hparams"]["beta"] == beta
            metrics = json.loads((trained / run / "metrics.json").read_text())
            served_mig = group["metrics"]["metrics/mig_fast"]
            assert served_mig == pytest.approx(metrics["mig_fast"])
            validation = (trained / run / "validation.csv").read_text().splitlines()
            last = dict(zip(validation[0].split(","), validation[-1].split(","),
                            strict=True))  # fmt: skip
            assert group["metrics"]["validation/negative_elbo"] == pytest.approx(
                float(last["negative_elbo"]), rel=1e-5
            )
    finally:
        server.stop()
