"""Official dataset files decoded once into a uint8 .npy in index order, then read
a batch at a time: what shapes3d, mpi3d, smallnorb and cars3d share.

Their files are compressed (3dshapes.h5, often the npz) or need resizing (NORB,
Cars3D), so each is read once, a chunk at a time, into
data_dir/cache/<name>.npy, rows in the dataset's index order (row-major over its
factor grid). Rows are written with positioned writes, not through a memory map:
what a build has written is the kernel's page cache, not this process's memory,
so a build needs one chunk of RAM, not the dataset. The rows go into a temporary
file that takes the cache's name only when complete; the sidecar <name>.json,
written last, names what the cache was built from (file names and sizes, grid,
format), and a cache whose sidecar does not match is rebuilt. Later loads read
the cache's rows with positioned reads (CacheRows), not through a memory map: a
batch reads only its rows, and a pass over all of them leaves them in the page
cache, not in this process's resident memory.
"""

import json
import os
import time
import weakref
from pathlib import Path

import numpy as np

from utils import files
from utils.data import DataNotFound
from utils.data.ground_truth import GroundTruthData, seeded_splits
from utils.data.image_cache import exclusive_build, sidecar_path, write_sidecar

CACHE_FOLDER = "cache"
MAX_HOLDOUT = 5_000  # images each in "validation" and "test" (dSprites' number)
CHUNK_BYTES = 64 << 20  # what a build reads (and holds) at a time


def not_found(dataset: str, data_dir: Path, missing: list, get: str,
              put: str = "Put the file(s) in") -> DataNotFound:  # fmt: skip
    """DataNotFound naming the missing files, where to get them (`get`) and where
    to put them (`put` data_dir)."""
    folder = "" if data_dir.is_dir() else " (the folder does not exist)"
    listed = "\n".join(f"  {path}" for path in missing)
    return DataNotFound(
        f"{dataset} not found. Looked for\n{listed}\n{get} {put} {data_dir}{folder}, "
        "or point --data_dir at the folder that holds them: nothing is downloaded "
        "here. To train without any download, use --dataset=dsprites."
    )


def file_sizes(paths) -> dict[str, int]:
    """{file name: size in bytes}: what a cache records of its sources."""
    return {Path(path).name: Path(path).stat().st_size for path in paths}


def chunk_rows(row_shape) -> int:
    return max(1, CHUNK_BYTES // int(np.prod(row_shape)))


def holdout_size(num_images: int) -> int:
    """Images each in validation and test: 5,000, or a tenth of a smaller set."""
    return min(MAX_HOLDOUT, num_images // 10)


class RowWriter:
    """A new (n, *row) uint8 .npy at `path`, filled by `put(indices, rows)` in any
    order; `finish()` checks that every row was written."""

    def __init__(self, path: Path, shape: tuple):
        self.shape = tuple(int(n) for n in shape)
        self.row_bytes = int(np.prod(self.shape[1:]))
        self.file = open(path, "xb")
        header = {"descr": "|u1", "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self.file, header)
        self.offset = self.file.tell()
        self.file.truncate(self.offset + self.shape[0] * self.row_bytes)
        self.written = np.zeros(self.shape[0], bool)

    def put(self, indices, rows: np.ndarray):
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        rows = np.ascontiguousarray(rows, dtype=np.uint8)
        if rows.shape != (len(indices), *self.shape[1:]):
            raise ValueError(f"rows {rows.shape} for {len(indices)} indices")
        if len(indices) == 0:
            return
        if np.array_equal(indices, indices[0] + np.arange(len(indices))):
            self._write(indices[0], memoryview(rows).cast("B"))  # one run of rows
        else:
            for index, row in zip(indices, rows, strict=True):
                self._write(index, memoryview(row).cast("B"))
        self.written[indices] = True

    def _write(self, index: int, data: memoryview):
        position = self.offset + int(index) * self.row_bytes
        while data:  # a write may take fewer bytes than asked
            done = os.pwrite(self.file.fileno(), data, position)
            data, position = data[done:], position + done

    def finish(self):
        missing = np.flatnonzero(~self.written)
        if len(missing):
            raise ValueError(
                f"{len(missing):,} image(s) never written, e.g. {missing[:5]}"
            )
        self.file.flush()
        os.fsync(self.file.fileno())  # on disk before it gets the cache's name
        self.close()

    def close(self):
        self.file.close()


class CacheRows:
    """The rows of a uint8 .npy, read with os.pread. A memory map's pages count as
    the process's resident memory once touched, so an epoch over MPI3D's 12.7 GB
    cache would show 12.7 GB of RSS; read this way the bytes stay in the kernel's
    page cache, which it reclaims as it needs. pread takes no file position, so
    tf.data's parallel reads may share the descriptor."""

    def __init__(self, path: Path, shape: tuple, offset: int):
        self.path, self.shape = Path(path), tuple(int(n) for n in shape)
        self.row_bytes = int(np.prod(self.shape[1:]))
        self.offset = int(offset)
        self.fd = os.open(self.path, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, indices) -> np.ndarray:
        """(n, *row) uint8 rows in the order given; a run of consecutive rows is
        one read."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row indices must be in [0, {len(self)})")
        out = np.empty((len(indices), self.row_bytes), np.uint8)
        order = np.argsort(indices, kind="stable")
        ranked = indices[order]
        starts = np.flatnonzero(np.diff(ranked, prepend=-2) != 1)
        for start, stop in zip(starts, [*starts[1:], len(ranked)], strict=True):
            rows = self._read_run(int(ranked[start]), int(stop - start))
            out[order[start:stop]] = rows
        return out.reshape(len(indices), *self.shape[1:])

    def _read_run(self, first: int, count: int) -> np.ndarray:
        size, position = count * self.row_bytes, self.offset + first * self.row_bytes
        data = os.pread(self.fd, size, position)
        while len(data) < size:  # a read may return less (Linux: 2 GB at most)
            more = os.pread(self.fd, size - len(data), position + len(data))
            if not more:
                raise OSError(f"{self.path} is shorter than its header says")
            data += more
        return np.frombuffer(data, np.uint8).reshape(count, self.row_bytes)


def read_header(path: Path):
    """(shape, dtype, offset of the data) of a complete C-order .npy, else None."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            read = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
            shape, fortran_order, dtype = read(file)
            offset = file.tell()
        size = os.stat(path).st_size
    except (OSError, ValueError, AttributeError):  # missing, half-written, not .npy
        return None
    if fortran_order or size != offset + int(np.prod(shape)) * dtype.itemsize:
        return None
    return shape, dtype, offset


def open_cache(cache_path: Path, metadata: dict, shape: tuple):
    """(CacheRows, sidecar) if a complete cache made from `metadata` is there."""
    try:
        sidecar = json.loads(sidecar_path(cache_path).read_text())
    except (OSError, ValueError):  # missing or half-written
        return None
    header = read_header(cache_path)
    if header is None or any(sidecar.get(k) != v for k, v in metadata.items()):
        return None
    found, dtype, offset = header
    if dtype != np.uint8 or tuple(found) != tuple(shape):
        return None
    return CacheRows(cache_path, shape, offset), sidecar


def cached_images(cache_path: Path, metadata: dict, shape: tuple, build, log):
    """(CacheRows, sidecar) of the cache made from `metadata`, built first if absent
    or stale: `build(writer)` fills a RowWriter of `shape` and returns what the
    sidecar should record besides `metadata`. One process builds at a time; one
    that waited then uses what the other built."""
    metadata = json.loads(json.dumps(metadata))  # tuples → lists, as read back
    opened = open_cache(cache_path, metadata, shape)
    if opened is None:
        with exclusive_build(cache_path, log):
            opened = open_cache(cache_path, metadata, shape)
            if opened is None:
                _build(cache_path, metadata, shape, build, log)
                opened = open_cache(cache_path, metadata, shape)
    else:
        log(f"loaded cache {cache_path} ({shape[0]:,} images)")
    return opened


def _build(cache_path, metadata, shape, build, log):
    size_gb = int(np.prod(shape)) / 1e9
    log(f"building cache {cache_path} ({shape[0]:,} images, {size_gb:.2f} GB) …")
    started = time.monotonic()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    sidecar_path(cache_path).unlink(missing_ok=True)  # the old cache is invalid now
    temporary = files.temporary_path(cache_path)
    try:
        writer = RowWriter(temporary, shape)
        try:
            recorded = build(writer) or {}
            writer.finish()
        finally:
            writer.close()
        os.replace(temporary, cache_path)
    finally:
        temporary.unlink(missing_ok=True)
    write_sidecar(cache_path, {**metadata, **recorded})
    seconds = time.monotonic() - started
    log(f"wrote {cache_path} in {seconds:.1f} s ({shape[0] / seconds:,.0f} images/s)")


class CachedGroundTruth(GroundTruthData):
    """A ground-truth dataset whose images are a cache's (N, H, W, C) uint8 rows
    (CacheRows) in index order; the splits are dSprites' kind: one permutation
    seeded 0 (not the training seed), `holdout_size` images each validating and
    testing."""

    def __init__(self, images: CacheRows, factor_names, factor_sizes, source,
                 version):  # fmt: skip
        self.images = images
        self.factor_names = tuple(factor_names)
        self.factor_sizes = tuple(int(n) for n in factor_sizes)
        if len(images) != self.num_images:
            raise ValueError(
                f"{len(images):,} images for a grid of {self.num_images:,}"
            )
        self.image_shape = tuple(images.shape[1:])
        self.splits = seeded_splits(self.num_images, holdout_size(self.num_images))
        self.source, self.version = source, version

    def read(self, indices) -> np.ndarray:
        """(n, H, W, C) uint8 images in the order given; only these are read."""
        return self.images.read(indices)
