"""Cars3D (Reed et al., "Deep Visual Analogy-Making", NeurIPS 2015) from its
official .mat files, one per car; disentanglement_lib's `cars3d`
(data/ground_truth/cars3d.py).

Factors (dlib's order, the last fastest): elevation 4, azimuth 24, object type 183:
17,568 images, 64×64×3, all scored. Each car's file holds "im", (128, 128, 3, 24,
4) uint8: its 128×128 RGB renders by azimuth, then elevation, the axes dlib reads
them by. Car i is the i-th file in name order (dlib takes the folder's listing
order, which the filesystem decides; sorted, the index is the same everywhere).
Each render is resized to 64×64 with PIL's Lanczos filter (what dlib's
`thumbnail(…, ANTIALIAS)` does to a square image: the same pixels), and the set is
cached once in data_dir/cache/cars3d_v1.npy, read from there.
"""

from pathlib import Path

import numpy as np

from utils.data import array_cache

ARCHIVE = "nips2015-analogy-data.tar.gz"
URL = f"http://www.scottreed.info/files/{ARCHIVE}"
PAGE = "http://www.scottreed.info/"
FOLDERS = ("cars", "data/cars")  # as dlib expects it, or as the archive unpacks
NUM_CARS = 183
ELEVATIONS, AZIMUTHS = 4, 24
FACTOR_NAMES = ("elevation", "azimuth", "object_type")
RENDER_SHAPE = (128, 128, 3, AZIMUTHS, ELEVATIONS)  # of each file's "im"
IMAGE_SHAPE = (64, 64, 3)
CACHE_FORMAT = 1  # bump when the cache's contents change, so old ones are rebuilt


class Cars3D(array_cache.CachedGroundTruth):
    name = "cars3d"


def _not_official(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path} is not an official Cars3D file: {problem}. Unpack {ARCHIVE} from "
        f"{URL} again"
    )


def locate(data_dir: Path) -> tuple[Path, list[Path]]:
    """(the folder, its .mat files in name order): the first of FOLDERS with any;
    DataNotFound saying where to get them and put them if none has."""
    data_dir = Path(data_dir).expanduser().resolve()
    for folder in FOLDERS:
        found = sorted((data_dir / folder).glob("*.mat"))
        if found:
            return data_dir / folder, found
    get = f"Download {ARCHIVE} from {URL} (see {PAGE}); it holds data/cars/*.mat."
    put = f"Unpack it (or move its {NUM_CARS} files to cars/) in"
    missing = [data_dir / f"{name}/*.mat" for name in FOLDERS]
    raise array_cache.not_found("Cars3D", data_dir, missing, get, put)


def read_car(path: Path) -> np.ndarray:
    """(4, 24, 64, 64, 3) uint8: the car's renders by elevation, azimuth."""
    import scipy.io
    from PIL import Image
    from scipy.io.matlab import MatReadError  # an empty or cut-short file

    try:
        renders = scipy.io.loadmat(path, variable_names=["im"]).get("im")
    except (OSError, ValueError, NotImplementedError, MatReadError) as error:
        raise _not_official(path, f"it is not a readable .mat file ({error})") from None
    if renders is None:
        raise _not_official(path, "it has no 'im' array")
    if renders.shape != RENDER_SHAPE or renders.dtype != np.uint8:
        found = f"{renders.dtype}{list(renders.shape)}"
        raise _not_official(
            path, f"'im' is {found}, expected uint8{list(RENDER_SHAPE)}"
        )
    out = np.empty((ELEVATIONS, AZIMUTHS, *IMAGE_SHAPE), np.uint8)
    for elevation in range(ELEVATIONS):
        for azimuth in range(AZIMUTHS):
            render = Image.fromarray(
                np.ascontiguousarray(renders[..., azimuth, elevation])
            )
            small = render.resize(IMAGE_SHAPE[:2], Image.Resampling.LANCZOS)
            out[elevation, azimuth] = np.asarray(small)
    return out


def _convert(paths: list[Path], writer, log) -> dict:
    from tqdm import tqdm

    sizes = (ELEVATIONS, AZIMUTHS, len(paths))
    elevation, azimuth = np.meshgrid(range(ELEVATIONS), range(AZIMUTHS), indexing="ij")
    for car, path in enumerate(tqdm(paths, desc="resizing Cars3D", unit=" cars")):
        index = np.ravel_multi_index((elevation.ravel(), azimuth.ravel(), car), sizes)
        writer.put(index, read_car(path).reshape(-1, *IMAGE_SHAPE))
    return {"cars": [path.name for path in paths]}


def load_cars3d(data_dir: Path, log=print, num_cars=NUM_CARS) -> Cars3D:
    """The official per-car files under `data_dir`, through the cache. `num_cars`:
    how many files there must be (fewer only for tests)."""
    data_dir = Path(data_dir).expanduser().resolve()
    folder, paths = locate(data_dir)
    if len(paths) != num_cars:
        raise ValueError(
            f"{folder} holds {len(paths)} .mat files; the official Cars3D has "
            f"{num_cars}, one per car. Unpack {ARCHIVE} from {URL} again"
        )
    num_images = ELEVATIONS * AZIMUTHS * num_cars
    metadata = {
        "format": CACHE_FORMAT,
        "dataset": "cars3d",
        "sources": array_cache.file_sizes(paths),
    }
    cache = data_dir / array_cache.CACHE_FOLDER / f"cars3d_v{CACHE_FORMAT}.npy"

    def say(message):
        log(f"cars3d: {message}")

    images, _ = array_cache.cached_images(
        cache, metadata, (num_images, *IMAGE_SHAPE),
        lambda writer: _convert(paths, writer, say), say,
    )  # fmt: skip
    return Cars3D(
        images, FACTOR_NAMES, (ELEVATIONS, AZIMUTHS, num_cars),
        f"official files in {folder} (cache {cache})",
        f"official Cars3D, Lanczos to 64 px ({cache.name})",
    )  # fmt: skip


def load(data_dir: Path, log=print, **_) -> Cars3D:
    return load_cars3d(data_dir, log=log)
