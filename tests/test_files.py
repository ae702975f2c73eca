"""Atomic writes: a failure at any point leaves the old file and no debris. The
file lock: one holder at a time, never stale, no file left behind."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from utils import files
from utils.files import FileLock, atomic_write_bytes, atomic_writer
from utils.runs.folder import RunFolderError, RunLock


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "image.png"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(path.parent) == ["image.png"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "image.png"
    path.write_bytes(b"old image")

    def half_written_then_crash(src, dst):
        # The new bytes are already in the temp file; the crash comes before rename.
        assert open(src, "rb").read() == b"new image"
        raise OSError("killed")

    monkeypatch.setattr(files.os, "replace", half_written_then_crash)
    with pytest.raises(OSError, match="killed"):
        atomic_write_bytes(path, b"new image")
    assert path.read_bytes() == b"old image"
    assert os.listdir(tmp_path) == ["image.png"]


def test_atomic_write_failure_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "image.png"
    path.write_bytes(b"old image")
    real_open = open

    class DiskFullHalfway:
        def __init__(self, *args):
            self.file = real_open(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            raise OSError("no space left on device")

    # Shadows the builtin open for utils.files only.
    monkeypatch.setattr(files, "open", DiskFullHalfway, raising=False)
    with pytest.raises(OSError, match="no space"):
        atomic_write_bytes(path, b"new image bytes")
    assert path.read_bytes() == b"old image"
    assert os.listdir(tmp_path) == ["image.png"]


def test_text_and_durable_writes(tmp_path):
    path = tmp_path / "params.json"
    atomic_write_bytes(path, "{}\n", durable=True)
    assert path.read_text() == "{}\n"


def test_atomic_writer_streams_into_a_temporary_then_renames(tmp_path):
    path = tmp_path / "cache.npy"
    with atomic_writer(path, durable=True) as file:
        file.write(b"first half, ")
        assert not path.exists()  # readers see nothing until the block ends
        assert [p.name for p in files.temporaries_of(path)] == [Path(file.name).name]
        assert files.TEMPORARY_NAME.fullmatch(Path(file.name).name)
        file.write(b"second half")
    assert path.read_bytes() == b"first half, second half"
    assert os.listdir(tmp_path) == ["cache.npy"]


def test_atomic_writer_failure_keeps_old_file(tmp_path):
    path = tmp_path / "cache.npy"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_writer(path) as file:
        file.write(b"half of the new")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["cache.npy"]


def test_a_failed_cleanup_does_not_hide_the_write_error(tmp_path, monkeypatch):
    def disk_full(src, dst):
        raise OSError("no space left on device")

    def read_only(self, missing_ok=False):  # root may delete anywhere: pretend
        raise PermissionError(f"read-only file system: {self}")

    monkeypatch.setattr(files.os, "replace", disk_full)
    monkeypatch.setattr(files.Path, "unlink", read_only)
    with pytest.raises(OSError, match="no space left") as caught:
        atomic_write_bytes(tmp_path / "params.json", "{}")
    assert "could not be removed: read-only" in "".join(caught.value.__notes__)


# --- FileLock and RunLock


def start_holder(path):
    """Another process holding FileLock(path) until it reads a line, then
    releasing it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline() == "locked\n"
    return holder


REPO = Path(__file__).parents[1]
HOLDER = """
import sys
from utils.files import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_a_released_lock_leaves_no_file(tmp_path):
    path = tmp_path / ".lock"
    lock = FileLock(path)
    assert lock.acquire(wait=False)
    assert path.read_text() == f"process {os.getpid()}"
    lock.release()
    assert os.listdir(tmp_path) == []
    with FileLock(path):  # and it can be taken again
        assert path.exists()
    assert os.listdir(tmp_path) == []


def test_a_second_process_is_refused_or_waits(tmp_path):
    path = tmp_path / ".lock"
    holder = start_holder(path)
    try:
        refused = FileLock(path)
        assert refused.acquire(wait=False) is False
        assert refused.holder == f"process {holder.pid}"
        waiter, acquired = FileLock(path), threading.Event()
        thread = threading.Thread(target=lambda: waiter.acquire() and acquired.set())
        thread.start()
        assert not acquired.wait(0.5)  # it waits for the holder
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert acquired.wait(10)  # and takes it once released
        assert path.read_text() == f"process {os.getpid()}"
        waiter.release()
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(tmp_path) == []


def test_a_killed_holders_lock_is_free_again(tmp_path):
    path = tmp_path / ".lock"
    holder = start_holder(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert path.read_text() == f"process {holder.pid}"  # it could not clean up
    lock = FileLock(path)
    assert lock.acquire(wait=False)
    assert path.read_text() == f"process {os.getpid()}"
    lock.release()
    assert os.listdir(tmp_path) == []


def test_removing_the_file_on_release_never_lets_two_hold_it(tmp_path, monkeypatch):
    """The classic race: B opens the lock file, A removes it and unlocks, B locks
    the removed file while C creates a new one and locks that too."""
    path = tmp_path / ".lock"
    a, b, c = FileLock(path), FileLock(path), FileLock(path)
    a.acquire()
    b_opened, real_flock = threading.Event(), files._flock

    def flock_after_signal(file, wait):
        if threading.current_thread() is b_thread:
            b_opened.set()
        return real_flock(file, wait)

    monkeypatch.setattr(files, "_flock", flock_after_signal)
    b_thread = threading.Thread(target=b.acquire)
    b_thread.start()
    assert b_opened.wait(10)  # B has the file open, about to lock it
    a.release()
    b_thread.join(10)
    assert b.file is not None  # B holds it...
    assert c.acquire(wait=False) is False  # ...so C may not
    b.release()
    assert c.acquire(wait=False)
    c.release()
    assert os.listdir(tmp_path) == []


def test_run_lock_refuses_a_second_process_and_leaves_no_file(tmp_path):
    run = tmp_path / "run"
    first = RunLock(run).acquire()
    with pytest.raises(RunFolderError) as refused:
        RunLock(run).acquire()
    assert str(refused.value) == (
        f"{run} is in use by process {os.getpid()}; two processes writing one run "
        "would corrupt it. Wait for it to finish, stop it, or choose another "
        "--run_name."
    )
    first.release()
    assert os.listdir(run) == []
    RunLock(run).acquire().release()  # free again
    assert os.listdir(run) == []


def test_run_lock_gives_the_callers_advice(tmp_path):
    first = RunLock(tmp_path).acquire()
    advice = "Wait for it to finish, or stop it."
    with pytest.raises(RunFolderError, match=f"would corrupt it. {advice}$"):
        RunLock(tmp_path).acquire(busy_advice=advice)
    first.release()
