"""Decode a folder (or zip) of images once into a memory-mapped uint8 .npy cache.

Helpers behind utils/data/celeba.py: centre crop + anti-aliased resize, a process
pool writing rows straight into the cache file, and an all-or-nothing commit.
"""

import glob
import io
import json
import math
import multiprocessing
import os
import signal
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image
from tqdm import tqdm

from utils import files
from utils.files import ZIP_ERRORS, atomic_write_bytes
from utils.processes import end_with_parent

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # only these names are candidates
MAX_CHUNK = 256  # images per pool task: small enough for smooth progress and balance
# What PIL raises for a broken or non-image file. Anything else is a real error and
# stops the build, leaving no cache behind.
BAD_IMAGE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    zlib.error,
    Image.DecompressionBombError,
)


# --- one image -----------------------------------------------------------------------


def centre_crop_box(width: int, height: int, crop_size: int) -> tuple[int, ...]:
    # Square, clamped to the image so a small image still gives a centred square.
    side = min(crop_size, width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def preprocess_image(data: bytes, image_size: int, crop_size: int) -> np.ndarray:
    """Centre crop, anti-aliased resize to image_size; (S, S, 3) uint8 RGB."""
    # JPEG DCT scaling: libjpeg can decode straight at 1/2, 1/4 or 1/8 size from each
    # 8×8 block's low frequencies - an anti-aliased s× reduction equivalent to a full
    # decode followed by an s×s box average (measured on CelebA-sized JPEGs: mean
    # |Δ| ≈ 1/255). We take the largest s that keeps the crop ≥ image_size px, so for
    # CelebA 128 → 64 that is s = 2 (an 89×109 decode) and what follows is a plain
    # crop. The full-size crop offset (25, 45) is odd, so at 1/2 scale it is rounded
    # to a whole pixel: the window moves by 1 px of the 178×218 original.
    decoded = _decode_jpeg_reduced(data, image_size, crop_size)
    if decoded is None:
        decoded = _decode_with_pil(data, image_size, crop_size)
    pixels, full_size, scale = decoded  # a decoded pixel: scale × scale of the full
    box = centre_crop_box(*full_size, crop_size)
    scaled_box = tuple(value / scale for value in box)
    scaled_side = (box[2] - box[0]) / scale
    if scaled_side == image_size:  # the decode did all the shrinking
        left, top = (int(value + 0.5) for value in scaled_box[:2])
        return pixels[top : top + image_size, left : left + image_size].copy()
    # BOX = area average, every source pixel counts once: no aliasing when
    # shrinking. (The original used nearest neighbour here, which aliases.)
    shrinking = scaled_side > image_size
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    out = Image.fromarray(pixels).resize((image_size, image_size), resample, scaled_box)
    return np.asarray(out, dtype=np.uint8)


def _reduction(width: int, height: int, image_size: int, crop_size: int) -> int:
    """The largest JPEG scale-down s (2, 4, 8) that keeps the crop ≥ image_size
    pixels, or 1 (also when the crop is smaller than image_size: it is enlarged)."""
    left, _, right, _ = centre_crop_box(width, height, crop_size)
    return max(s for s in (1, 2, 4, 8) if s == 1 or s * image_size <= right - left)


def _decode_jpeg_reduced(data: bytes, image_size: int, crop_size: int):
    """(RGB pixels at 1/s size, full (width, height), s) by simplejpeg, or None where it
    does not apply (not a JPEG, CMYK, damaged: PIL then decodes or names the fault).
    simplejpeg is libjpeg-turbo without PIL's header parsing in Python: ~2× faster per
    CelebA image, and the same pixels as PIL's draft() (tests/test_celeba.py)."""
    try:
        height, width, colour, _ = simplejpeg.decode_jpeg_header(data)
        if colour not in ("YCbCr", "Gray"):  # PIL's CMYK/YCCK conversion differs
            return None
        s = _reduction(width, height, image_size, crop_size)
        reduced = (-(-height // s), -(-width // s))  # libjpeg rounds partial blocks up
        pixels = simplejpeg.decode_jpeg(
            data, "RGB", min_height=reduced[0], min_width=reduced[1], min_factor=s
        )
    except ValueError:  # not a JPEG, or a damaged one
        return None
    if pixels.shape[:2] != reduced:  # not exactly 1/s
        return None
    return pixels, (width, height), s


def _decode_with_pil(data: bytes, image_size: int, crop_size: int):
    """(RGB pixels, full (width, height), scale) by PIL: any format, with draft()'s
    DCT scaling for JPEGs. Raises one of BAD_IMAGE_ERRORS for a file it cannot read."""
    with Image.open(io.BytesIO(data)) as image:
        full_size, scale = image.size, 1.0
        s = _reduction(*full_size, image_size, crop_size)
        if s > 1:
            # PIL picks the largest s ≤ min(W // w, H // h): (W // s, H // s) gives s.
            drafted = image.draft("RGB", (image.width // s, image.height // s))
            if drafted is not None:  # a JPEG; its box is the full size / s
                scale = full_size[0] / drafted[1][2]
        # Before resizing: PIL resizes palette images with nearest neighbour.
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # L, CMYK, P …
        return np.asarray(rgb, dtype=np.uint8), full_size, scale


# --- where the images are ------------------------------------------------------------


def is_image_name(name: str) -> bool:
    # Hidden files include macOS "._000001.jpg" resource forks, which are not images.
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


class UnreadableZip(ValueError):
    """A zip that cannot be opened at all: not a zip, truncated, or a central
    directory that zipfile cannot read."""


class UnreadableFile(Exception):
    """A listed file whose bytes cannot be read: a zip member that is encrypted,
    damaged or compressed by a method zipfile lacks. Counted and skipped."""


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except ZIP_ERRORS as error:
        reason = str(error) or type(error).__name__
        raise UnreadableZip(f"{path} is not a readable zip file ({reason})") from None


@dataclass(frozen=True)
class ImageSource:
    """A folder of images, or the images directly inside `zip_folder` of a zip."""

    path: Path
    zip_folder: str | None = None  # e.g. "img_align_celeba"; None: path is a folder

    def describe(self) -> str:
        return f"zip {self.path}" if self.zip_folder is not None else f"{self.path}/"

    def list_images(self) -> dict[str, int]:
        """Image name → size in bytes, sorted by name."""
        sizes = {}
        if self.zip_folder is None:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    if is_image_name(entry.name) and entry.is_file():
                        sizes[entry.name] = entry.stat().st_size
        else:
            with open_zip(self.path) as archive:
                for info in archive.infolist():
                    folder, _, name = info.filename.rpartition("/")
                    if folder == self.zip_folder and is_image_name(name):
                        sizes[name] = info.file_size
        return dict(sorted(sizes.items()))


class _Reader:
    # Each worker opens its own ZipFile, at its first read: one handle shared across
    # processes would have them fight over the file position, and a zip failing to
    # open in a pool's initializer would have the pool replace its workers forever.
    def __init__(self, source: ImageSource):
        self.source = source
        self.archive = None

    def read(self, name: str) -> bytes:
        """The file's bytes; UnreadableFile (why) if they cannot be read."""
        try:
            if self.source.zip_folder is None:
                return (self.source.path / name).read_bytes()
            if self.archive is None:
                self.archive = zipfile.ZipFile(self.source.path)
            return self.archive.read(f"{self.source.zip_folder}/{name}")
        except (*ZIP_ERRORS, KeyError) as error:  # KeyError: gone from the zip
            raise UnreadableFile(f"{type(error).__name__}: {error}") from None

    def close(self):
        if self.archive is not None:
            self.archive.close()


# --- decoding in parallel ------------------------------------------------------------

_worker = {}  # per-process state set by _start_worker: reader, rows, sizes


def _start_worker(source, rows_path, image_size, crop_size):
    _worker.update(
        reader=_Reader(source),
        rows=np.lib.format.open_memmap(rows_path, mode="r+"),
        image_size=image_size,
        crop_size=crop_size,
    )


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_CAN_MASK = hasattr(signal, "pthread_sigmask")  # not on Windows, which spawns


def _start_pool_worker(parent_pid, *init_args):
    end_with_parent(parent_pid)  # a killed build's workers would decode on, then wait
    # A forked worker starts with its parent's Python signal handlers. main.py's
    # SIGTERM handler (utils/runs/stopping.py) would make it ignore the pool's own
    # terminate(), and the build would wait for it forever. Ctrl-C reaches the whole
    # process group: the parent alone answers it; if it stops, terminate() ends us.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Blocked since the fork (_parallel_map): one that came meanwhile acts now.
    if _CAN_MASK:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _start_worker(*init_args)


def _stop_worker():
    _worker["reader"].close()
    _worker.clear()  # drops the memmap


def _decode_chunk(task: tuple[int, list[str]]) -> tuple[dict[int, str], int]:
    start, names = task
    rows, reader = _worker["rows"], _worker["reader"]
    image_size, crop_size = _worker["image_size"], _worker["crop_size"]
    failures = {}
    for row, name in enumerate(names, start):
        try:
            rows[row] = preprocess_image(reader.read(name), image_size, crop_size)
        except UnreadableFile as error:
            failures[row] = f"{name} ({error})"
        except BAD_IMAGE_ERRORS as error:
            failures[row] = f"{name} ({type(error).__name__}: {error})"
    return failures, len(names)


@contextmanager
def _parallel_map(num_workers: int, init_args: tuple):
    if num_workers == 1:  # in-process: no pool start-up, easy to debug
        _start_worker(*init_args)
        try:
            yield map
        finally:
            _stop_worker()
        return
    # fork where available: workers start instantly and do not re-import the caller's
    # modules (e.g. TensorFlow). They only touch PIL and numpy.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    # The workers are forked with these blocked, until their initializer has reset
    # the handlers: a terminate() that comes sooner then kills them as it should.
    # The pool's own threads, which fork replacements, inherit the mask too.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if _CAN_MASK else 0
    try:
        pool = context.Pool(num_workers, _start_pool_worker, (os.getpid(), *init_args))
    finally:  # the parent answers a Ctrl-C that came meanwhile here
        if _CAN_MASK:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    with pool:
        yield pool.imap_unordered


def _decode_all(source, names, rows_path, image_size, crop_size, num_workers):
    total = len(names)
    chunk = max(1, min(MAX_CHUNK, math.ceil(total / (4 * num_workers))))
    tasks = [(start, names[start : start + chunk]) for start in range(0, total, chunk)]
    num_workers = min(num_workers, len(tasks))
    failures = {}
    init_args = (source, rows_path, image_size, crop_size)
    with (
        _parallel_map(num_workers, init_args) as run,
        tqdm(total=total, desc="decoding", unit=" images") as bar,
    ):
        for chunk_failures, count in run(_decode_chunk, tasks):
            failures.update(chunk_failures)
            bar.update(count)
    return failures


# --- the cache file ------------------------------------------------------------------


def sidecar_path(cache_path: Path) -> Path:
    return cache_path.with_suffix(".json")


def open_cache(cache_path: Path, metadata: dict, row_shape: tuple):
    """(memmap, sidecar) if a complete cache made with `metadata` exists, else None."""
    try:
        sidecar = json.loads(sidecar_path(cache_path).read_text())
        images = np.load(cache_path, mmap_mode="r")
    except (OSError, ValueError):  # missing, half-written or unreadable
        return None
    if any(sidecar.get(key) != value for key, value in metadata.items()):
        return None
    expected = (len(sidecar.get("names", [])), *row_shape)
    if images.dtype != np.uint8 or images.shape != expected:
        return None
    return images, sidecar


def exclusive_build(cache_path: Path, log):
    """files.exclusive_build for build_cache: one builder at a time, and the next
    one removes what a killed build left: its rows (files.temporaries_of), its
    sidecar's temporary, and the rows of builds that named them <cache>.tmp<pid>
    and <cache>.compact<pid>."""
    name, sidecar = glob.escape(cache_path.name), sidecar_path(cache_path).name
    leftovers = (f".{glob.escape(sidecar)}.*.tmp", f"{name}.tmp*", f"{name}.compact*")
    return files.exclusive_build(cache_path, log, leftovers)


def build_cache(
    source: ImageSource,
    names: list[str],
    cache_path: Path,
    image_size: int,
    crop_size: int,
    log,
    num_workers: int,
    advice: str = "",
) -> tuple[list[str], list[str]]:
    """Decode `names` into cache_path → (names kept, "name (reason)" per skipped file).
    If none can be decoded: a ValueError saying so, then `advice` (what to do).

    The rows go into a temporary file that replaces cache_path only when complete; the
    caller writes the sidecar (write_sidecar) last, so an interrupted build leaves
    nothing that open_cache accepts. Call it inside exclusive_build.
    """
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    sidecar_path(cache_path).unlink(missing_ok=True)  # the old cache is invalid now
    shape = (len(names), image_size, image_size, 3)
    temporary = files.temporary_path(cache_path)
    compacted = files.temporary_path(cache_path)  # another unique name
    try:
        rows = np.lib.format.open_memmap(temporary, "w+", np.uint8, shape)
        del rows  # the workers open the file themselves
        failures = _decode_all(
            source, names, temporary, image_size, crop_size, num_workers
        )
        kept = np.array([row for row in range(len(names)) if row not in failures])
        if len(kept) == 0:
            raise ValueError(
                f"none of the {len(names):,} image files in {source.describe()} could "
                f"be decoded, e.g. {list(failures.values())[:3]}{advice}"
            )
        if failures:  # drop the skipped rows, chunk by chunk to bound memory
            decoded = np.load(temporary, mmap_mode="r")
            rows = np.lib.format.open_memmap(
                compacted, "w+", np.uint8, (len(kept), *shape[1:])
            )
            for start in range(0, len(kept), 4096):
                rows[start : start + 4096] = decoded[kept[start : start + 4096]]
            rows.flush()
            del rows, decoded
            os.replace(compacted, temporary)
        with open(temporary, "rb+") as file:  # on disk before it gets the real name
            os.fsync(file.fileno())
        os.replace(temporary, cache_path)
    finally:
        temporary.unlink(missing_ok=True)
        compacted.unlink(missing_ok=True)
    skipped = list(failures.values())
    if skipped:
        log(
            f"WARNING: skipped {len(skipped):,} unreadable file(s) of {len(names):,}: "
            + ", ".join(skipped[:5])
            + (" …" if len(skipped) > 5 else "")
        )
    return [names[row] for row in kept], skipped


def write_sidecar(cache_path: Path, sidecar: dict):
    # Last step of a build: from here on open_cache accepts the cache.
    atomic_write_bytes(sidecar_path(cache_path), json.dumps(sidecar), durable=True)
