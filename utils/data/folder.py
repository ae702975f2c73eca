"""Any folder of images (`--dataset=folder --data_dir=<folder>`): every JPEG and PNG
under it, in subfolders too, through CelebA's pipeline (utils/data/image_cache.py):
a centre crop of crop_size (clamped to the image: a square of the shorter side
when the image is smaller), an anti-aliased resize to image_size, decoded once
into <folder>/cache/folder_{S}px_crop{C}.npy and read from there; a file that cannot
be decoded is skipped, and counted. Hidden files and folders (".*") and the cache
folder are not read. The split is seeded: a permutation (seed 0) of the images in
path order, a tenth each validating and testing. It has no ground-truth factors,
so the metrics refuse it (utils/data/ground_truth.require_factors).
"""

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from utils.data import DataNotFound
from utils.data.array_cache import CacheRows
from utils.data.image_cache import (
    IMAGE_SUFFIXES,
    ImageSource,
    build_cache,
    exclusive_build,
    is_image_name,
    open_cache,
    write_sidecar,
)

CACHE_FOLDER = "cache"
SPLIT_NAMES = ("train", "validation", "test")
SPLIT_SEED = 0
CACHE_FORMAT = 1  # bump when preprocessing changes, so old caches are rebuilt


class FolderImages:
    """The images of a folder: `read(indices)`, `splits`, `image_shape`."""

    name = "folder"
    has_factors = False

    def __init__(self, images: CacheRows, splits: dict, source: str, names: list):
        self.images = images  # (N, S, S, 3) uint8 rows, in path order
        self.image_shape = tuple(images.shape[1:])
        self.splits = splits
        self.source = source
        self.names = names  # each row's path relative to the folder

    def __len__(self) -> int:
        return len(self.images)

    def read(self, indices) -> np.ndarray:
        """(n, S, S, 3) uint8 rows in the order given; only these are read."""
        return self.images.read(indices)


def _image_files(folder: Path):
    """Every image file under `folder`, as walked; hidden entries and the cache
    folder skipped."""
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".") and here / d != folder / CACHE_FOLDER
        ]
        for name in names:
            path = here / name
            if is_image_name(name) and path.is_file():
                yield path


def list_images(folder: Path) -> dict[str, int]:
    """Relative POSIX path → size in bytes of every image file under `folder`,
    sorted by path; hidden entries and the cache folder skipped."""
    sizes = {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in _image_files(folder)
    }
    return dict(sorted(sizes.items()))


def locate(data_dir: Path) -> Path:
    """The folder, or DataNotFound if it is not one or holds no image file (the
    walk stops at the first)."""
    folder = Path(data_dir).expanduser().resolve()
    if not folder.is_dir():
        raise _not_found(folder, f"{folder} is not a folder")
    if next(_image_files(folder), None) is None:
        raise _not_found(folder, f"{folder} holds no image files")
    return folder


def seeded_splits(count: int) -> dict[str, np.ndarray]:
    """~80/10/10: a tenth each (at least one of three or more) for validation and
    test, by a permutation seeded SPLIT_SEED; each split sorted."""
    held_out = count // 10 if count >= 10 else min(1, count // 3)
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    codes = np.zeros(count, np.int8)
    codes[order[count - 2 * held_out : count - held_out]] = 1
    codes[order[count - held_out :]] = 2
    return {
        split: np.flatnonzero(codes == code).astype(np.int64)
        for code, split in enumerate(SPLIT_NAMES)
    }


def _not_found(folder: Path, problem: str) -> DataNotFound:
    return DataNotFound(
        f"folder: {problem}. --dataset=folder trains on every image file "
        f"({', '.join(IMAGE_SUFFIXES)}) under --data_dir, subfolders included: point "
        "it at a folder of your images. To train without any, use --dataset=dsprites."
    )


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # respects taskset / container CPU pinning
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_folder(data_dir: Path, image_size=64, crop_size=128, log=print,
                num_workers: int | None = None) -> FolderImages:  # fmt: skip
    if image_size < 1 or crop_size < 1:
        sizes = f"image_size={image_size}, crop_size={crop_size}"
        raise ValueError(f"image_size and crop_size must be ≥ 1, got {sizes}")
    folder = locate(data_dir)
    files = list_images(folder)

    def say(message):
        log(f"folder: {message}")

    say(f"found {len(files):,} image files under {folder}/")
    cache_path = folder / CACHE_FOLDER / f"folder_{image_size}px_crop{crop_size}.npy"
    listing = json.dumps(list(files.items())).encode()
    settings = {  # a cache is reused only if all of these match
        "format": CACHE_FORMAT,
        "image_size": image_size,
        "crop_size": crop_size,
        "source_files": len(files),
        "source_bytes": sum(files.values()),
        "source_listing": hashlib.sha256(listing).hexdigest(),  # names and sizes
    }
    row_shape = (image_size, image_size, 3)
    cached = open_cache(cache_path, settings, row_shape)
    if cached is None:
        with exclusive_build(cache_path, say):
            cached = open_cache(cache_path, settings, row_shape)  # built meanwhile?
            if cached is None:
                workers = num_workers or _available_cores()
                _build(folder, files, cache_path, settings, workers, say)
                cached = open_cache(cache_path, settings, row_shape)
    else:
        say(f"loaded cache {cache_path}")
    mapped, sidecar = cached
    images = CacheRows(cache_path, mapped.shape, mapped.offset)  # not the map: RSS
    del mapped, cached
    names, skipped = sidecar["names"], sidecar["skipped"]
    if skipped:
        say(
            f"WARNING: {len(skipped):,} unreadable file(s) of {len(files):,} were "
            "skipped when the cache was built: " + ", ".join(skipped[:5])
        )
    splits = seeded_splits(len(names))
    sizes = ", ".join(f"{k} {len(v):,}" for k, v in splits.items())
    say(f"{len(names):,} images; seeded split (seed {SPLIT_SEED}): {sizes}")
    return FolderImages(images, splits, f"{folder}/ (cache {cache_path})", names)


def _build(folder, files, cache_path, settings, num_workers, say):
    image_size, crop_size = settings["image_size"], settings["crop_size"]
    say(
        f"building cache {cache_path} ({len(files):,} images → {image_size}×"
        f"{image_size} from a centre crop of {crop_size}, {num_workers} worker(s))"
    )
    started = time.monotonic()
    names, skipped = build_cache(
        ImageSource(folder), list(files), cache_path, image_size, crop_size, say,
        num_workers,
    )  # fmt: skip
    write_sidecar(cache_path, {**settings, "names": names, "skipped": skipped})
    seconds = time.monotonic() - started
    say(f"wrote {cache_path} ({len(names):,} images) in {seconds:.1f} s")


def load(data_dir: Path, log=print, image_size=64, crop_size=128) -> FolderImages:
    return load_folder(data_dir, image_size=image_size, crop_size=crop_size, log=log)
