"""3D Shapes (Burgess & Kim 2018; "Disentangling by Factorising", Kim & Mnih 2018)
from DeepMind's official 3dshapes.h5; disentanglement_lib's `shapes3d`.

Factors (disentanglement_lib's order, orientation fastest): floor hue 10, wall hue
10, object hue 10, scale 8, shape 4, orientation 15: 480,000 images, 64×64×3,
all scored. The file holds `images` (480000, 64, 64, 3) uint8 and `labels`
(480000, 6) float64, the factor values of each image. Each label column's distinct
values, sorted, are that factor's classes; the images are put in row-major order
over them (the official file already is; any other order is permuted from the
labels, and a file whose labels are not the full grid is refused). The gzip'd h5
is decoded once into data_dir/cache/shapes3d_v1.npy (5.9 GB), read from there.
"""

from pathlib import Path

import numpy as np

from utils.data import array_cache

FILENAME = "3dshapes.h5"
URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
PAGE = "https://github.com/google-deepmind/3d-shapes"
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
IMAGE_SHAPE = (64, 64, 3)
CACHE_FORMAT = 1  # bump when the cache's contents change, so old ones are rebuilt


class Shapes3D(array_cache.CachedGroundTruth):
    name = "shapes3d"


def _not_official(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path} is not the official 3D Shapes file: {problem}. Download it again "
        f"from {URL} (see {PAGE})"
    )


def grid_order(labels: np.ndarray, factor_sizes, path: Path):
    """(row → index in the row-major grid, each factor's sorted values) from the
    file's labels; ValueError unless every combination appears exactly once."""
    classes, values = [], []
    for column, (name, size) in enumerate(zip(FACTOR_NAMES, factor_sizes, strict=True)):
        distinct, inverse = np.unique(labels[:, column], return_inverse=True)
        if len(distinct) != size:
            problem = f"its labels give {name} {len(distinct)} values, expected {size}"
            raise _not_official(path, problem)
        classes.append(inverse.reshape(-1))
        values.append(distinct.tolist())
    index = np.ravel_multi_index(tuple(classes), tuple(factor_sizes))
    if np.bincount(index, minlength=len(index)).max() > 1:
        raise _not_official(path, "some factor combinations appear more than once")
    return index.astype(np.int64), values


def _check_arrays(file, path: Path, num_images: int):
    for key in ("images", "labels"):
        if key not in file:
            raise _not_official(path, f"it has no '{key}' dataset")
    images, labels = file["images"], file["labels"]
    if images.shape != (num_images, *IMAGE_SHAPE) or images.dtype != np.uint8:
        found = f"{images.dtype}{list(images.shape)}"
        expected = f"uint8[{num_images}, 64, 64, 3]"
        raise _not_official(path, f"'images' is {found}, expected {expected}")
    if labels.shape != (num_images, 6) or labels.dtype.kind != "f":
        found = f"{labels.dtype}{list(labels.shape)}"
        raise _not_official(
            path, f"'labels' is {found}, expected float64[{num_images}, 6]"
        )
    return images, labels


def _convert(path: Path, factor_sizes, writer, log) -> dict:
    import h5py
    from tqdm import tqdm

    num_images = int(np.prod(factor_sizes))
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise _not_official(path, f"it is not a readable HDF5 file ({error})") from None
    with file:
        images, labels = _check_arrays(file, path, num_images)
        index, values = grid_order(labels[()], factor_sizes, path)
        in_order = bool(np.array_equal(index, np.arange(num_images)))
        if not in_order:
            log(f"shapes3d: {FILENAME}'s images are not in row-major order: permuted")
        step = array_cache.chunk_rows(IMAGE_SHAPE)
        with tqdm(total=num_images, desc="decoding 3dshapes.h5", unit=" images") as bar:
            for start in range(0, num_images, step):
                stop = min(start + step, num_images)
                writer.put(index[start:stop], images[start:stop])
                bar.update(stop - start)
    return {
        "factor_values": values,
        "file_order": "row-major" if in_order else "permuted",
    }


def locate(data_dir: Path) -> Path:
    """data_dir/3dshapes.h5, or DataNotFound saying where to get it and put it."""
    data_dir = Path(data_dir).expanduser().resolve()
    path = data_dir / FILENAME
    if not path.is_file():
        get = f"Download {FILENAME} (about 270 MB) from {URL} (see {PAGE})."
        raise array_cache.not_found("3D Shapes", data_dir, [path], get)
    return path


def load_shapes3d(data_dir: Path, log=print, factor_sizes=FACTOR_SIZES) -> Shapes3D:
    """The official file in `data_dir`, through its cache. `factor_sizes`: the
    grid the file must hold (smaller ones only for tests)."""
    path = locate(data_dir)
    data_dir = path.parent
    num_images = int(np.prod(factor_sizes))
    metadata = {
        "format": CACHE_FORMAT,
        "dataset": "shapes3d",
        "sources": array_cache.file_sizes([path]),
        "factor_sizes": list(factor_sizes),
    }
    cache = data_dir / array_cache.CACHE_FOLDER / f"shapes3d_v{CACHE_FORMAT}.npy"

    def say(message):
        log(f"shapes3d: {message}")

    images, sidecar = array_cache.cached_images(
        cache, metadata, (num_images, *IMAGE_SHAPE),
        lambda writer: _convert(path, factor_sizes, writer, say), say,
    )  # fmt: skip
    data = Shapes3D(
        images, FACTOR_NAMES, factor_sizes, f"official {path} (cache {cache})",
        f"official {FILENAME}, {sidecar['file_order']} ({cache.name})",
    )  # fmt: skip
    data.factor_values = sidecar["factor_values"]  # per factor, its sorted values
    return data


def load(data_dir: Path, log=print, **_) -> Shapes3D:
    return load_shapes3d(data_dir, log=log)
