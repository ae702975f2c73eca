"""smallNORB (LeCun, Huang & Bottou, CVPR 2004) from its official binary .mat files;
disentanglement_lib's `smallnorb` (data/ground_truth/norb.py).

As disentanglement_lib: the training and testing files together, the left camera's
image of each stereo pair, resized from 96×96 to 64×64. Factors (its order, the
last fastest): category 5, instance 10, elevation 9, azimuth 18, lighting 6:
48,600 images, 64×64×1, one per combination. Scored: category, elevation, azimuth,
lighting. The instance (which of the category's ten toys) is not scored: dlib
draws it at random for each image it samples. Here the image of an index never
changes, so `index_of` draws it per combination of the scored factors instead, as
a fixed function of that combination (SplitMix64, seed INSTANCE_SEED): across
combinations each instance equally likely, the same marginal as dlib's, but one
instance per combination, not a fresh draw at every read.

Files (in data_dir; `.mat.gz` as downloaded, or gunzipped to `.mat`): for each of
the two halves (training, testing), -dat (N, 2, 96, 96) bytes, -cat (N,) int32
categories, -info (N, 4) int32 (instance, elevation 0-8, azimuth 0, 2, …, 34,
lighting 0-5), each in NORB's binary matrix format: int32 magic (0x1E3D4C55
bytes, 0x1E3D4C54 int32), int32 ndim, max(3, ndim) int32 dimensions, then the data,
little-endian. The image of each (category, instance, elevation, azimuth / 2,
lighting) goes to that combination's row-major index.

Resizing: PIL's Lanczos filter (the anti-aliased resize dlib calls ANTIALIAS), on
the image as 32-bit integers, as dlib (which reads the bytes as int8, which PIL
takes as mode "I"); then rounded and clipped to 0..255 for the uint8 cache. dlib's
floats keep Lanczos' overshoot past black and white (a few levels, at strong
edges); here it is clipped, and otherwise the pixels are dlib's.
"""

import gzip
from pathlib import Path

import numpy as np

from utils.data import array_cache
from utils.data.draws import below, splitmix64

PAGE = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
HALVES = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
KINDS = ("dat", "cat", "info")
FACTOR_NAMES = ("category", "instance", "elevation", "azimuth", "lighting")
FACTOR_SIZES = (5, 10, 9, 18, 6)
INSTANCE = 1  # position of the unscored factor
IMAGE_SHAPE = (64, 64, 1)
SOURCE_SIZE = 96
BYTE_MATRIX, INT_MATRIX = 0x1E3D4C55, 0x1E3D4C54
INSTANCE_SEED = 0x0A0B_0001  # of the instance index_of picks; recorded in `version`
CACHE_FORMAT = 1  # bump when the cache's contents change, so old ones are rebuilt


def file_name(half: str, kind: str) -> str:
    return f"smallnorb-{half}-{kind}.mat"


class SmallNORB(array_cache.CachedGroundTruth):
    name = "smallnorb"

    @property
    def scored_factors(self) -> np.ndarray:
        return np.array([i for i in range(len(self.factor_sizes)) if i != INSTANCE])

    def index_of(self, scored_classes) -> np.ndarray:
        """(n, 4) classes of category, elevation, azimuth, lighting → (n,) indices,
        the instance a fixed pseudo-random function of those four."""
        scored = np.asarray(scored_classes, dtype=np.int64).reshape(-1, 4)
        combination = np.ravel_multi_index(tuple(scored.T), self.scored_sizes)
        instance = below(splitmix64(INSTANCE_SEED, combination), self.factor_sizes[1])
        full = np.insert(scored, INSTANCE, instance, axis=1)
        return np.ravel_multi_index(tuple(full.T), self.factor_sizes).astype(np.int64)


def _not_official(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path} is not an official smallNORB file: {problem}. Download it again "
        f"from {PAGE}"
    )


def _find(data_dir: Path, name: str) -> Path | None:
    for path in (data_dir / name, data_dir / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_exactly(stream, count: int, path: Path) -> bytes:
    try:
        data = stream.read(count)
    except (OSError, EOFError) as error:  # gzip: not gzip'd, or cut short
        raise _not_official(path, f"it cannot be read ({error})") from None
    if len(data) != count:
        raise _not_official(path, "it is truncated")
    return data


def _read_header(stream, path: Path, magic: int) -> tuple[int, ...]:
    """The dimensions of the matrix in `stream` (left at its data)."""
    found, ndim = np.frombuffer(_read_exactly(stream, 8, path), "<i4")
    if found != magic:
        kind = "bytes" if magic == BYTE_MATRIX else "int32"
        problem = (
            f"its magic number is {int(found) & 0xFFFFFFFF:#x}, not {magic:#x} ({kind})"
        )
        raise _not_official(path, problem)
    if not 1 <= ndim <= 16:
        raise _not_official(path, f"its header gives {ndim} dimensions")
    dims = np.frombuffer(_read_exactly(stream, 4 * max(3, int(ndim)), path), "<i4")
    return tuple(int(n) for n in dims[:ndim])


def _read_ints(path: Path, shape: tuple) -> np.ndarray:
    with _open(path) as stream:
        found = _read_header(stream, path, INT_MATRIX)
        if found != shape:
            raise _not_official(
                path, f"its matrix is {list(found)}, expected {list(shape)}"
            )
        data = _read_exactly(stream, 4 * int(np.prod(shape)), path)
    return np.frombuffer(data, "<i4").reshape(shape).astype(np.int64)


def resize(images: np.ndarray) -> np.ndarray:
    """(n, 96, 96) uint8 → (n, 64, 64, 1) uint8: Lanczos on 32-bit integers, as
    disentanglement_lib, then clipped to 0..255."""
    from PIL import Image

    out = np.empty((len(images), *IMAGE_SHAPE), np.uint8)
    for i, image in enumerate(images):
        wide = Image.fromarray(image.astype(np.int32))  # mode "I"
        small = wide.resize(IMAGE_SHAPE[:2], Image.Resampling.LANCZOS)
        out[i, ..., 0] = np.clip(np.asarray(small), 0, 255)
    return out


def grid_indices(categories, info, factor_sizes, path: Path) -> np.ndarray:
    """Each image's row-major index over factor_sizes, from its labels."""
    azimuth = info[:, 2]
    if np.any(azimuth % 2):
        raise _not_official(path, "it has odd azimuths; expected 0, 2, …, 34")
    factors = np.column_stack(
        [categories, info[:, 0], info[:, 1], azimuth // 2, info[:, 3]]
    )
    for column, (name, size) in enumerate(zip(FACTOR_NAMES, factor_sizes, strict=True)):
        values = factors[:, column]
        if values.min() < 0 or values.max() >= size:
            span = f"{values.min()}..{values.max()}"
            problem = f"its {name} values span {span}, expected 0..{size - 1}"
            raise _not_official(path, problem)
    return np.ravel_multi_index(tuple(factors.T), tuple(factor_sizes)).astype(np.int64)


def _convert(paths: dict, factor_sizes, writer, log) -> dict:
    from tqdm import tqdm

    per_half = int(np.prod(factor_sizes)) // len(HALVES)
    indices = {}  # the labels first: a bad file fails before any resizing
    for half in HALVES:
        categories = _read_ints(paths[half, "cat"], (per_half,))
        info = _read_ints(paths[half, "info"], (per_half, 4))
        indices[half] = grid_indices(
            categories, info, factor_sizes, paths[half, "info"]
        )
    every = np.concatenate(list(indices.values()))
    if np.bincount(every, minlength=len(every)).max() > 1:
        problem = "some factor combinations appear more than once in -cat and -info"
        raise _not_official(paths[HALVES[0], "info"], problem)
    with tqdm(total=len(every), desc="resizing smallNORB", unit=" images") as bar:
        for half in HALVES:
            _resize_half(paths[half, "dat"], indices[half], writer, bar)
    return {}


def _resize_half(path: Path, index: np.ndarray, writer, bar):
    pair = 2 * SOURCE_SIZE * SOURCE_SIZE
    expected = (len(index), 2, SOURCE_SIZE, SOURCE_SIZE)
    with _open(path) as stream:
        found = _read_header(stream, path, BYTE_MATRIX)
        if found != expected:
            raise _not_official(
                path, f"its matrix is {list(found)}, expected {list(expected)}"
            )
        step = array_cache.chunk_rows((pair,))
        for start in range(0, len(index), step):
            rows = min(step, len(index) - start)
            data = _read_exactly(stream, rows * pair, path)
            left = np.frombuffer(data, np.uint8).reshape(
                rows, 2, SOURCE_SIZE, SOURCE_SIZE
            )
            writer.put(index[start : start + rows], resize(left[:, 0]))
            bar.update(rows)


def locate(data_dir: Path) -> dict:
    """{(half, kind): path} of the six files in data_dir (each .mat or .mat.gz), or
    DataNotFound naming those missing, where to get them and where to put them."""
    data_dir = Path(data_dir).expanduser().resolve()
    paths = {(h, k): _find(data_dir, file_name(h, k)) for h in HALVES for k in KINDS}
    missing = [
        data_dir / f"{file_name(h, k)}[.gz]" for (h, k), p in paths.items() if p is None
    ]
    if missing:
        get = (
            f"Download the six smallnorb-*.mat.gz files from {PAGE} (they may stay "
            "gzip'd)."
        )
        raise array_cache.not_found("smallNORB", data_dir, missing, get)
    return paths


def load_smallnorb(data_dir: Path, log=print, factor_sizes=FACTOR_SIZES) -> SmallNORB:
    """The six official files in `data_dir`, through the cache. `factor_sizes`: the
    grid the files must hold (smaller ones only for tests)."""
    data_dir = Path(data_dir).expanduser().resolve()
    paths = locate(data_dir)
    num_images = int(np.prod(factor_sizes))
    metadata = {
        "format": CACHE_FORMAT,
        "dataset": "smallnorb",
        "sources": array_cache.file_sizes(paths.values()),
        "factor_sizes": list(factor_sizes),
    }
    cache = data_dir / array_cache.CACHE_FOLDER / f"smallnorb_v{CACHE_FORMAT}.npy"

    def say(message):
        log(f"smallnorb: {message}")

    images, _ = array_cache.cached_images(
        cache, metadata, (num_images, *IMAGE_SHAPE),
        lambda writer: _convert(paths, factor_sizes, writer, say), say,
    )  # fmt: skip
    return SmallNORB(
        images, FACTOR_NAMES, factor_sizes,
        f"official files in {data_dir} (cache {cache})",
        f"official smallNORB, Lanczos to 64 px ({cache.name}); instance by SplitMix64 "
        f"seed {INSTANCE_SEED:#x}",
    )  # fmt: skip


def load(data_dir: Path, log=print, **_) -> SmallNORB:
    return load_smallnorb(data_dir, log=log)
