"""CelebA (aligned & cropped faces) as a memory-mapped uint8 cache with its split.

The JPEGs are decoded once (centre crop, anti-aliased resize; see image_cache.py) into
data_dir/cache/celeba_{S}px_crop{C}.npy; later runs memory-map it, so even full CelebA
at 128 px (10 GB) never has to fit in RAM.
"""

import codecs
import os
import time
from pathlib import Path

import numpy as np

from utils.data import DataNotFound
from utils.data.image_cache import (
    ImageSource,
    UnreadableZip,
    build_cache,
    exclusive_build,
    open_cache,
    write_sidecar,
)

CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
FOLDER_NAME = "img_align_celeba"  # also the folder inside img_align_celeba.zip
PARTITION_FILE = "list_eval_partition.txt"  # "000001.jpg 0", 0/1/2 = the splits below
SPLIT_NAMES = ("train", "validation", "test")
SPLIT_SEED = 0  # for the ~80/10/10 split used when the partition file is missing
CACHE_FORMAT = 1  # bump when preprocessing changes, so old caches are rebuilt


class CelebANotFound(Exception):
    def __init__(self, data_dir: Path):
        missing = "" if data_dir.is_dir() else " (the folder does not exist)"
        super().__init__(
            f"CelebA not found. Looked for\n"
            f"  {data_dir / FOLDER_NAME}/  (folder of aligned JPEGs)\n"
            f"  {data_dir / (FOLDER_NAME + '.zip')}{missing}\n"
            f"To get it, download from the official CelebA page {CELEBA_URL} the "
            f'"Align&Cropped Images" archive img_align_celeba.zip and {PARTITION_FILE} '
            f"(Eval folder) into {data_dir}; the zip can stay zipped.\n"
            f"To train without any download, use --dataset=dsprites."
        )


class CelebA:
    name = "celeba"

    def __init__(self, images: np.ndarray, splits: dict, source: str, names: list):
        self.images = images  # (N, S, S, 3) uint8 memmap, rows in file-name order
        self.image_shape = tuple(images.shape[1:])
        self.splits = splits  # split name → int64 row indices
        self.source = source
        self.names = names  # file name of each row

    def __len__(self) -> int:
        return len(self.images)

    def read(self, indices) -> np.ndarray:
        """(n, S, S, 3) uint8 rows in the order given; only these are read from disk."""
        return np.asarray(self.images[np.asarray(indices, dtype=np.int64)])


def read_partition(path: Path) -> dict[str, int]:
    """list_eval_partition.txt → {file name: 0/1/2}."""
    partition = {}
    for line_number, line in enumerate(_read_text(path).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(
                f"{path}, line {line_number}: expected '<image name> <0|1|2>' "
                f"(like '000001.jpg 0'), got {line.strip()!r}"
            )
        if fields[0] in partition:
            raise ValueError(f"{path}, line {line_number}: {fields[0]} repeated")
        partition[fields[0]] = int(fields[1])
    return partition


def _read_text(path: Path) -> str:
    # Tolerate a BOM; strip it ourselves so that error offsets count from here.
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)  # the official: 2.8 MB
    try:
        return data.decode()
    except UnicodeDecodeError as error:
        line_number = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}, line {line_number}: not UTF-8 text (byte "
            f"0x{data[error.start]:02x}); expected lines like '000001.jpg 0'. Is it "
            f"the official {PARTITION_FILE}? Download it again from {CELEBA_URL}, "
            "or remove it to use a seeded split"
        ) from None


def split_indices(names: list[str], partition: dict | None, log) -> dict:
    """Split name → sorted int64 row indices, from the partition file or seeded."""
    count = len(names)
    if partition is None:
        held_out = count // 10 if count >= 10 else min(1, count // 3)  # val = test
        order = np.random.default_rng(SPLIT_SEED).permutation(count)
        codes = np.zeros(count, np.int8)
        codes[order[count - 2 * held_out : count - held_out]] = 1
        codes[order[count - held_out :]] = 2
        origin = f"no {PARTITION_FILE}: seeded ~80/10/10 split (seed {SPLIT_SEED})"
    else:
        codes = np.array([partition.get(name, -1) for name in names], np.int8)
        unlisted = int(np.sum(codes < 0))
        absent = len(partition) - (count - unlisted)
        origin = f"split from {PARTITION_FILE}"
        if absent:
            log(
                f"{absent:,} name(s) in {PARTITION_FILE} are not among the usable "
                "images (missing on disk or unreadable); ignored"
            )
        if unlisted:
            log(f"{unlisted:,} image(s) missing from {PARTITION_FILE}: in no split")
    splits = {
        split: np.flatnonzero(codes == code).astype(np.int64)
        for code, split in enumerate(SPLIT_NAMES)
    }
    log(origin + ": " + ", ".join(f"{k} {len(v):,}" for k, v in splits.items()))
    return splits


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # respects taskset / container CPU pinning
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _find_source(data_dir: Path, log) -> tuple[ImageSource, dict[str, int]]:
    folder = data_dir / FOLDER_NAME
    archive = data_dir / f"{FOLDER_NAME}.zip"
    if folder.is_dir():  # preferred: no zip overhead
        files = ImageSource(folder).list_images()
        if files or not archive.is_file():
            return ImageSource(folder), files
        log(f"{folder}/ holds no images; using {archive.name} instead")
    if archive.is_file():
        source = ImageSource(archive, zip_folder=FOLDER_NAME)
        try:
            return source, source.list_images()
        except UnreadableZip as error:
            raise ValueError(f"{error}{_zip_advice(source)}") from None
    raise CelebANotFound(data_dir)


def _zip_advice(source: ImageSource) -> str:
    """What to do about a zip that cannot be read, or whose images cannot."""
    if source.zip_folder is None:
        return ""
    folder = source.path.parent / FOLDER_NAME  # read instead of the zip: _find_source
    return (
        f"; if it is incomplete or damaged, download it again from {CELEBA_URL}; if "
        "it is encrypted or compressed in a way Python cannot read (Deflate64), "
        f"extract it with another tool (7-Zip, unzip) into {folder}/, which is then "
        "read instead"
    )


def load_celeba(
    data_dir: Path,
    image_size: int = 64,
    crop_size: int = 128,
    log=print,
    num_workers: int | None = None,
) -> CelebA:
    if image_size < 1 or crop_size < 1:
        sizes = f"image_size={image_size}, crop_size={crop_size}"
        raise ValueError(f"image_size and crop_size must be ≥ 1, got {sizes}")
    data_dir = Path(data_dir).expanduser().resolve()  # messages show absolute paths

    def say(message):
        log(f"CelebA: {message}")

    source, files = _find_source(data_dir, say)
    if not files:
        raise ValueError(
            f"{source.describe()} holds no image files (*.jpg, *.jpeg, *.png); "
            f"expected CelebA's aligned JPEGs 000001.jpg … (see {CELEBA_URL})"
        )
    partition_path = data_dir / PARTITION_FILE
    # Read before decoding, so a malformed file fails in seconds, not after a build.
    partition = read_partition(partition_path) if partition_path.is_file() else None
    if partition is not None and partition.keys().isdisjoint(files):
        raise ValueError(
            f"{partition_path}: none of its {len(partition):,} names is an image in "
            f"{source.describe()}"
        )
    say(f"found {len(files):,} image files in {source.describe()}")

    cache_path = data_dir / "cache" / f"celeba_{image_size}px_crop{crop_size}.npy"
    settings = {  # a cache is reused only if all of these match
        "format": CACHE_FORMAT,
        "image_size": image_size,
        "crop_size": crop_size,
        "source_files": len(files),
        "source_bytes": sum(files.values()),
    }
    row_shape = (image_size, image_size, 3)
    cached = open_cache(cache_path, settings, row_shape)
    if cached is None:
        with exclusive_build(cache_path, say):
            # Another process may have built it while this one waited.
            cached = open_cache(cache_path, settings, row_shape)
            if cached is None:
                num_workers = num_workers or _available_cores()
                return _build(
                    source, files, partition, cache_path, settings, num_workers, say
                )
    images, sidecar = cached
    names, skipped = sidecar["names"], sidecar["skipped"]
    say(f"loaded cache {cache_path} ({len(names):,} images, memory-mapped)")
    if skipped:
        say(
            f"WARNING: {len(skipped):,} unreadable file(s) were skipped when the "
            f"cache was built: " + ", ".join(skipped[:5])
        )
    splits = split_indices(names, partition, say)
    return CelebA(images, splits, _described(source, cache_path), names)


def _described(source, cache_path):
    return f"{source.describe()} (cache {cache_path})"


def _build(source, files, partition, cache_path, settings, num_workers, say):
    """Decode every file into the cache, under exclusive_build."""
    image_size, crop_size = settings["image_size"], settings["crop_size"]
    size_gb = len(files) * image_size**2 * 3 / 1e9
    say(
        f"building cache {cache_path} ({len(files):,} images → {image_size}×"
        f"{image_size} from a centre crop of {crop_size}, {size_gb:.2f} GB, "
        f"{num_workers} worker(s))"
    )
    started = time.monotonic()
    names, skipped = build_cache(
        source, list(files), cache_path, image_size, crop_size, say, num_workers,
        advice=_zip_advice(source),
    )  # fmt: skip
    splits = split_indices(names, partition, say)
    split_sizes = {split: len(rows) for split, rows in splits.items()}
    sidecar = {**settings, "names": names, "skipped": skipped, "split": split_sizes}
    write_sidecar(cache_path, sidecar)
    seconds = time.monotonic() - started
    size_gb = cache_path.stat().st_size / 1e9
    say(
        f"wrote {cache_path} ({len(names):,} images, {size_gb:.2f} GB) in "
        f"{seconds:.1f} s ({len(files) / seconds:,.0f} images/s)"
    )
    images = np.load(cache_path, mmap_mode="r")
    return CelebA(images, splits, _described(source, cache_path), names)


def load(data_dir: Path, log=print, image_size=64, crop_size=128) -> CelebA:
    try:
        return load_celeba(
            data_dir, image_size=image_size, crop_size=crop_size, log=log
        )
    except CelebANotFound as error:
        raise DataNotFound(str(error)) from None
