"""MPI3D (Gondal et al., NeurIPS 2019): mpi3d_toy, mpi3d_realistic and mpi3d_real
from their official npz files; disentanglement_lib's `mpi3d_*` names.

Factors (the dataset's order, vertical axis fastest): object color 6, object shape
6, object size 2, camera height 3, background color 3, horizontal axis 40,
vertical axis 40: 1,036,800 images, 64×64×3, all scored; the npz's `images` array
is already in that row-major order (the dataset's README). disentanglement_lib's
mpi3d.py still has the first release's grid, 4 colours × 4 shapes (460,800
images); the files published now have 6 × 6, as here. An npz member can be stored
or deflated: either way it is streamed, a chunk at a time (peak memory: one chunk,
not 12.7 GB), into data_dir/cache/<variant>_v1.npy, read from there.

The registry imports one module per dataset name and does not tell `load` which
name it was imported for, so each variant is a small module of its own,
utils.data.mpi3d.toy / .realistic / .real, registered below when this one is
imported (which importing any of them does first).
"""

import functools
import sys
import types
import zipfile
import zlib
from pathlib import Path

import numpy as np

from utils.data import array_cache

FACTOR_NAMES = (
    "object_color", "object_shape", "object_size", "camera_height",
    "background_color", "horizontal_axis", "vertical_axis",
)  # fmt: skip
FACTOR_SIZES = (6, 6, 2, 3, 3, 40, 40)
IMAGE_SHAPE = (64, 64, 3)
VARIANTS = ("mpi3d_toy", "mpi3d_realistic", "mpi3d_real")  # file: <variant>.npz
URL = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/"
PAGE = "https://github.com/rr-learning/disentanglement_dataset"
MEMBER = "images.npy"
CACHE_FORMAT = 1  # bump when the cache's contents change, so old ones are rebuilt


class MPI3D(array_cache.CachedGroundTruth):
    def __init__(self, variant, *args):
        self.name = variant
        super().__init__(*args)


def _not_official(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path} is not an official MPI3D file: {problem}. Download it again from "
        f"{URL}{path.name} (see {PAGE})"
    )


def _open_member(archive: zipfile.ZipFile, path: Path):
    """The `images` member, open, positioned at its data, and its header."""
    if MEMBER not in archive.namelist():
        found = ", ".join(archive.namelist()) or "nothing"
        raise _not_official(path, f"it has no 'images' array (it holds {found})")
    stream = archive.open(MEMBER)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise _not_official(path, f"'images' is in .npy format {version}")
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, fortran_order, dtype = read_header(stream)
    except BaseException:
        stream.close()
        raise
    return stream, shape, fortran_order, dtype


def _convert(path: Path, num_images: int, writer, log) -> dict:
    from tqdm import tqdm

    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise _not_official(path, f"it is not a readable npz ({error})") from None
    with archive:
        stream, shape, fortran_order, dtype = _open_member(archive, path)
        with stream:
            if shape != (num_images, *IMAGE_SHAPE) or dtype != np.uint8:
                expected = f"uint8[{num_images}, 64, 64, 3]"
                raise _not_official(
                    path, f"'images' is {dtype}{list(shape)}, expected {expected}"
                )
            if fortran_order:
                raise _not_official(path, "'images' is stored in Fortran order")
            row_bytes = int(np.prod(IMAGE_SHAPE))
            step = array_cache.chunk_rows(IMAGE_SHAPE)
            bar = tqdm(total=num_images, desc=f"decoding {path.name}", unit=" images")
            with bar:
                for start in range(0, num_images, step):
                    rows = min(step, num_images - start)
                    data = _read_rows(stream, rows * row_bytes, path)
                    chunk = np.frombuffer(data, np.uint8).reshape(rows, *IMAGE_SHAPE)
                    writer.put(np.arange(start, start + rows), chunk)
                    bar.update(rows)
    return {}


def _read_rows(stream, count: int, path: Path) -> bytes:
    try:
        data = stream.read(count)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:  # e.g. a bad CRC
        raise _not_official(path, f"it is damaged ({error})") from None
    if len(data) != count:
        raise _not_official(path, "'images' is truncated")
    return data


def locate(data_dir: Path, variant: str) -> Path:
    """data_dir/<variant>.npz, or DataNotFound saying where to get it and put it."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MPI3D variant {variant!r}; one of {VARIANTS}")
    data_dir = Path(data_dir).expanduser().resolve()
    path = data_dir / f"{variant}.npz"
    if not path.is_file():
        url = f"{URL}{path.name}"
        get = (
            f"Download {path.name} (1,036,800 images, 12.7 GB) from {url} (see {PAGE})."
        )
        raise array_cache.not_found(variant, data_dir, [path], get)
    return path


def load_mpi3d(data_dir: Path, variant: str, log=print, factor_sizes=FACTOR_SIZES):
    """The official <variant>.npz in `data_dir`, through its cache. `factor_sizes`:
    the grid the file must hold (smaller ones only for tests)."""
    path = locate(data_dir, variant)
    data_dir = path.parent
    num_images = int(np.prod(factor_sizes))
    metadata = {
        "format": CACHE_FORMAT,
        "dataset": variant,
        "sources": array_cache.file_sizes([path]),
        "factor_sizes": list(factor_sizes),
    }
    cache = data_dir / array_cache.CACHE_FOLDER / f"{variant}_v{CACHE_FORMAT}.npy"

    def say(message):
        log(f"{variant}: {message}")

    images, _ = array_cache.cached_images(
        cache, metadata, (num_images, *IMAGE_SHAPE),
        lambda writer: _convert(path, num_images, writer, say), say,
    )  # fmt: skip
    return MPI3D(
        variant, images, FACTOR_NAMES, factor_sizes,
        f"official {path} (cache {cache})", f"official {path.name} ({cache.name})",
    )  # fmt: skip


def _register_variants():
    for variant in VARIANTS:
        short = variant.removeprefix("mpi3d_")
        module = types.ModuleType(f"{__name__}.{short}", f"MPI3D's {variant}.")
        module.load = functools.partial(_load_variant, variant)
        module.locate = functools.partial(locate, variant=variant)
        sys.modules[module.__name__] = module
        setattr(sys.modules[__name__], short, module)


def _load_variant(variant, data_dir: Path, log=print, **_) -> MPI3D:
    return load_mpi3d(data_dir, variant, log=log)


_register_variants()
