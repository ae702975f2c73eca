"""Atomic writes: a failure at any point leaves the old file and no debris."""

import os

import pytest

from utils import files
from utils.files import atomic_write_bytes


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
