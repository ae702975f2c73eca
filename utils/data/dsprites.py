"""dSprites (Matthey et al. 2017): the official npz if present, else a procedural copy.

The generator follows the official factor grid and index order exactly. Its shapes are
fitted to the dataset's own animation (IoU 0.96 to 1 per frame) but it is not a byte
copy: the official outlines were never published, and positions here are whole pixels.
"""

import time
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
from matplotlib.path import Path as OutlinePath
from tqdm import tqdm

from utils.data.ground_truth import GroundTruthData, seeded_splits
from utils.files import ZIP_ERRORS, atomic_writer, exclusive_build

FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (1, 3, 6, 40, 32, 32)
NUM_IMAGES = 737_280
OFFICIAL_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
GENERATED_FILENAME = "dsprites_generated_v1.npy"  # bump the version if pixels change
# What a killed generation left before it used files.atomic_writer (whose own
# temporaries the next generation removes too).
LEGACY_TEMPORARIES = (f"{GENERATED_FILENAME}.*.tmp",)
NUM_HOLDOUT = 5_000  # images each in "validation" and "test"

# Shape sizes in pixels at scale 1 (scale multiplies them), fitted to the official
# animation's 46 frames per shape at position 0 (mean IoU: square 0.999, ellipse 0.997,
# heart 0.998). The square and the heart's box are 0.3 of the canvas wide (19.2 px).
SQUARE_HALF_SIDE = 9.6
ELLIPSE_SEMI_AXES = (12.75, 7.25)  # along, across the orientation direction
HEART_HALF_SIZE = 9.6  # half width = half height of the outline's bounding box
HEART_DROP = 0.25  # px the outline's box centre sits below the rotation centre

# Pixel (i, j) covers [j, j+1) x [i, i+1); a pixel is on when its centre is inside.
# Position 0 puts the shape's centre at 16 (between pixels 15 and 16, pixel-centre
# coordinate 15.5), position 1 at 48 (47.5): the centre half of the image.
_WINDOW = 32  # every mask fits in a 32x32 pixel window around its centre


def factor_values() -> list[np.ndarray]:
    """Per factor, the official latent values (orientation includes both 0 and 2π)."""
    return [
        np.array([1.0]),
        np.array([1.0, 2.0, 3.0]),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2 * np.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    ]


def classes_to_index(classes: np.ndarray) -> np.ndarray:
    """(n, 6) factor classes -> (n,) official indices; raises on out-of-range ones."""
    columns = tuple(np.moveaxis(np.asarray(classes, dtype=np.int64), -1, 0))
    return np.ravel_multi_index(columns, FACTOR_SIZES).astype(np.int64)


def index_to_classes(index: np.ndarray) -> np.ndarray:
    """(n,) official indices -> (n, 6) factor classes (posY varies fastest)."""
    return np.stack(np.unravel_index(index, FACTOR_SIZES), axis=-1).astype(np.int64)


def _position_shifts() -> np.ndarray:
    # Official positions are 32/31 px apart; whole-pixel shifts let one mask serve all
    # 1,024 positions, and rounding keeps every centre within 0.5 px of the true one.
    return np.round(np.arange(32) * 32 / 31).astype(np.int64)  # 0..32, skips 16


def _heart_outline() -> np.ndarray:
    # The classic parametric heart, normalised to the box [-1, 1]^2, lobes up (+v).
    t = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    u = 16 * np.sin(t) ** 3
    v = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    u, v = u / 16, (2 * v - v.max() - v.min()) / (v.max() - v.min())
    return np.stack([u, v - HEART_DROP / HEART_HALF_SIZE], 1) * HEART_HALF_SIZE


def _mask(shape: int, scale: float, angle: float) -> np.ndarray:
    """(32, 32) bool: shape class 0/1/2 (square/ellipse/heart) centred in the window."""
    # Pixel centres relative to the shape's centre, y up: a positive angle then turns
    # the shape counter-clockwise on screen, as in the official animation. (u, v) are
    # the same points in the shape's own unrotated, unscaled frame.
    offsets = np.arange(_WINDOW) + 0.5 - _WINDOW / 2
    x, y = np.meshgrid(offsets, -offsets)
    cos, sin = np.cos(angle), np.sin(angle)
    u = (x * cos + y * sin) / scale
    v = (-x * sin + y * cos) / scale
    if shape == 0:
        return np.maximum(abs(u), abs(v)) <= SQUARE_HALF_SIDE
    if shape == 1:
        a, b = ELLIPSE_SEMI_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1
    # Identical pixels to the even-odd ray casting used before, checked over all
    # 720 masks: the generated dataset (and its file name) stays the same.
    points = np.stack([u.ravel(), v.ravel()], axis=1)
    inside = OutlinePath(_heart_outline()).contains_points(points)
    return inside.reshape(u.shape)


@cache
def _placed_shapes() -> np.ndarray:
    """(3, 6, 40, 33, 33, 64, 64) view: [shape, scale, orientation, a, b] is the shape
    with its centre 32 - a px below and 32 - b px right of position 0 (pixel 15.5)."""
    # Each mask is drawn once on a 96x96 canvas, centred at 48; sliding a 64x64 window
    # over the canvas then moves it by whole pixels without copying.
    _, shapes, scales, angles, _, _ = factor_values()
    canvases = np.zeros((len(shapes), len(scales), len(angles), 96, 96), bool)
    for i, j, k in np.ndindex(canvases.shape[:3]):
        mask = _mask(i, scales[j], angles[k])
        # An empty window rim proves no shape is clipped or can leave the frame.
        assert not (mask[[0, -1]].any() or mask[:, [0, -1]].any())
        canvases[i, j, k, 32:64, 32:64] = mask
    return np.lib.stride_tricks.sliding_window_view(canvases, (64, 64), axis=(3, 4))


def render(classes: np.ndarray) -> np.ndarray:
    """(n, 6) factor classes -> (n, 64, 64) uint8 images with values 0 or 1."""
    _, shape, scale, angle, pos_x, pos_y = np.asarray(classes).reshape(-1, 6).T
    offset = 32 - _position_shifts()  # window offset for each position class
    images = _placed_shapes()[shape, scale, angle, offset[pos_y], offset[pos_x]]
    return images.astype(np.uint8)


def generate_packed(progress: bool = True) -> np.ndarray:
    """All 737,280 images in official order, bit-packed: (737280, 512) uint8."""
    placed, offset = _placed_shapes(), 32 - _position_shifts()
    packed = np.empty((NUM_IMAGES, 512), np.uint8)
    per_mask = 32 * 32  # the images of one (shape, scale, orientation), posY fastest
    counted = {"unit": " images", "unit_scale": True, "disable": not progress}
    with tqdm(total=NUM_IMAGES, desc="rendering dSprites", **counted) as bar:
        for n, (shape, scale, angle) in enumerate(np.ndindex(FACTOR_SIZES[1:4])):
            images = placed[shape, scale, angle][offset[None, :], offset[:, None]]
            rows = slice(n * per_mask, (n + 1) * per_mask)
            packed[rows] = np.packbits(images.reshape(per_mask, 4096), axis=1)
            bar.update(per_mask)
    return packed


# --- the official npz, or the generated cache


class _NotOfficial(ValueError):
    def __init__(self, path: Path, problem: str):
        super().__init__(
            f"{path} is not the official dSprites file: {problem}. Delete it to use "
            "the generated dSprites instead, or download it again from "
            "https://github.com/deepmind/dsprites-dataset"
        )


def _read_official(path: Path, num_images: int = NUM_IMAGES, chunk_rows: int = 32_768):
    """Checked official npz -> (packed images, latents_classes, latents_values).
    Whatever else is there (a folder, any bytes) is a _NotOfficial saying why."""
    if path.is_dir():
        raise _NotOfficial(path, "it is a folder")
    try:  # zipfile, not np.load: it would unpickle a pickle found here
        npz = zipfile.ZipFile(path)
    except ZIP_ERRORS as error:
        problem = f"it is not a whole .npz (zip) file ({error})"
        raise _NotOfficial(path, problem) from None
    try:
        with npz:
            return _read_official_arrays(npz, path, num_images, chunk_rows)
    except _NotOfficial:
        raise
    except ZIP_ERRORS as error:
        problem = f"it is damaged ({str(error) or type(error).__name__})"
        raise _NotOfficial(path, problem) from None


def _npy_header(file):
    """(shape, fortran_order, dtype) of the .npy in `file`, read up to its data;
    ValueError if it is not one."""
    version = np.lib.format.read_magic(file)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f".npy format {version}, not 1.0 or 2.0")
    return getattr(np.lib.format, f"read_array_header_{version[0]}_0")(file)


def _member_header(stream, path: Path, key: str):
    try:
        return _npy_header(stream)
    except ValueError as error:
        problem = f"{key} is not a readable .npy array ({error})"
        raise _NotOfficial(path, problem) from None


def _read_official_arrays(npz, path, num_images, chunk_rows):
    found = {name[:-4] for name in npz.namelist() if name.endswith(".npy")}
    missing = {"imgs", "latents_values", "latents_classes"} - found
    if missing:
        raise _NotOfficial(path, f"it has no {', '.join(sorted(missing))} array")
    latents = {}
    for key, kinds in (("latents_classes", "iu"), ("latents_values", "f")):
        with npz.open(f"{key}.npy") as stream:
            shape, fortran_order, dtype = _member_header(stream, path, key)
            if shape != (num_images, 6) or dtype.kind not in kinds:
                expected = f"{num_images}x6 {'integer' if kinds == 'iu' else 'float'}"
                problem = f"{key} is {dtype}{list(shape)}, expected {expected}"
                raise _NotOfficial(path, problem)
            data = stream.read(num_images * 6 * dtype.itemsize)
        if len(data) != num_images * 6 * dtype.itemsize:
            raise _NotOfficial(path, f"{key} is truncated")
        order = "F" if fortran_order else "C"
        latents[key] = np.frombuffer(data, dtype).reshape(shape, order=order)
    classes, values = latents["latents_classes"], latents["latents_values"]
    if not np.array_equal(classes, index_to_classes(np.arange(num_images))):
        raise _NotOfficial(path, "latents_classes are not in the official order")
    # imgs is 3 GB unpacked: stream it out of the zip member and pack it chunk by chunk.
    with npz.open("imgs.npy") as stream:
        shape, fortran_order, dtype = _member_header(stream, path, "imgs")
        if shape != (num_images, 64, 64) or dtype not in (np.uint8, np.bool_):
            problem = f"imgs is {dtype}{list(shape)}, expected {num_images}x64x64 uint8"
            raise _NotOfficial(path, problem)
        if fortran_order:
            raise _NotOfficial(path, "imgs is stored in Fortran order")
        packed = np.empty((num_images, 512), np.uint8)
        for start in range(0, num_images, chunk_rows):
            rows = min(chunk_rows, num_images - start)
            chunk = np.frombuffer(stream.read(rows * 4096), np.uint8)
            if chunk.size != rows * 4096:
                raise _NotOfficial(path, "imgs is truncated")
            chunk = chunk.reshape(rows, 4096)
            packed[start : start + rows] = np.packbits(chunk, axis=1)
    return packed, classes.astype(np.int64), values.astype(np.float64)


class _DamagedCache(Exception):
    """Why the file where the generated cache belongs is not what _generate wrote."""


def _read_generated(cache: Path, num_images: int) -> np.ndarray:
    """The packed images _generate saved in `cache`; FileNotFoundError if there is
    none, _DamagedCache (why) if it holds anything else."""
    if cache.is_dir():  # not ours to delete
        raise ValueError(
            f"{cache} is a folder, where the generated dSprites belong: move or "
            "delete it, and they will be generated there again"
        )
    with open(cache, "rb") as file:
        try:
            shape, fortran_order, dtype = _npy_header(file)
        except ValueError as error:
            raise _DamagedCache(f"not a .npy file: {error}") from None
        if shape != (num_images, 512) or dtype != np.uint8:
            found = f"{dtype}{list(shape)}"
            raise _DamagedCache(f"{found}, expected {num_images}x512 uint8")
        if fortran_order:
            raise _DamagedCache("in Fortran order")
        packed = np.fromfile(file, np.uint8, count=num_images * 512)
    if packed.size != num_images * 512:
        raise _DamagedCache(f"truncated: {packed.size:,} of {num_images * 512:,} bytes")
    return packed.reshape(num_images, 512)


def _load_generated(cache: Path, log=print, num_images: int = NUM_IMAGES) -> np.ndarray:
    """The packed generated images in `cache`, generated and saved there if absent
    or damaged (the repo's own file: safe to replace). One process generates at a
    time; another waits for it, then loads its file."""
    try:
        return _read_generated(cache, num_images)
    except (FileNotFoundError, _DamagedCache):
        pass
    with exclusive_build(cache, log, leftovers=LEGACY_TEMPORARIES):
        try:  # another process may have generated it while we waited
            return _read_generated(cache, num_images)
        except FileNotFoundError:
            pass
        except _DamagedCache as damage:
            log(f"WARNING: {cache} is damaged ({damage}): generating it again")
        return _generate(cache, log)


def _generate(cache: Path, log) -> np.ndarray:
    log(f"generating dSprites ({NUM_IMAGES:,} images) into {cache} …")
    start = time.perf_counter()
    packed = generate_packed()
    with atomic_writer(cache, durable=True) as file:  # a file: np.save adds no .npy
        np.save(file, packed)
    size_mb = cache.stat().st_size / 1e6
    seconds = time.perf_counter() - start
    log(f"wrote {cache} ({len(packed):,} images, {size_mb:.0f} MB) in {seconds:.1f} s")
    return packed


# --- the dataset


class DSprites(GroundTruthData):
    """The whole dataset, images kept bit-packed (377 MB instead of 3 GB)."""

    name = "dsprites"
    image_shape = (64, 64, 1)
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def __init__(self, packed, source, latents_classes=None, latents_values=None):
        self.packed, self.source = packed, source
        if latents_classes is None:
            latents_classes = index_to_classes(np.arange(NUM_IMAGES))
        if latents_values is None:
            columns = zip(factor_values(), latents_classes.T, strict=True)
            latents_values = np.stack([values[c] for values, c in columns], axis=1)
        self.latents_classes, self.latents_values = latents_classes, latents_values
        self.splits = seeded_splits(NUM_IMAGES, NUM_HOLDOUT)

    def read(self, indices) -> np.ndarray:
        """(n, 64, 64, 1) uint8 images with values 0 or 255, in the order given."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and indices.min() < 0:  # NumPy would wrap it round
            raise IndexError(f"negative image index {int(indices.min())}")
        bits = np.unpackbits(self.packed[indices], axis=1)
        return (bits * np.uint8(255)).reshape(-1, *self.image_shape)

    def images_for_classes(self, classes) -> np.ndarray:
        """Images for (n, 6) classes of every factor."""
        return self.read(classes_to_index(classes))


def load_dsprites(data_dir: Path, log=print) -> DSprites:
    """The official npz in `data_dir` if present, else the generated copy (cached)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    official = data_dir / OFFICIAL_FILENAME
    if official.exists():
        packed, classes, values = _read_official(official)
        log(f"loaded the official dSprites ({NUM_IMAGES:,} images) from {official}")
        data = DSprites(packed, f"official npz: {official}", classes, values)
        data.version = "official"
        return data
    cache = data_dir / GENERATED_FILENAME
    log(f"no {OFFICIAL_FILENAME} in {data_dir}: using the generated dSprites")
    packed = _load_generated(cache, log)
    log(f"loaded generated dSprites ({NUM_IMAGES:,} images) from {cache}")
    data = DSprites(packed, f"generated (cache: {cache})")
    data.version = GENERATED_FILENAME.removesuffix(".npy")
    return data


def load(data_dir: Path, log=print, **_) -> DSprites:
    return load_dsprites(data_dir, log=log)
