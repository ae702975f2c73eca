"""The benchmark's CelebA: a folder of synthetic JPEGs in CelebA's layout, and the
rate at which load_celeba preprocesses it into its cache."""

import io
import shutil
import time

import numpy as np
from PIL import Image

from utils.data.celeba import FOLDER_NAME, PARTITION_FILE, load_celeba


def celeba_folder(data_root, count, distinct=300):
    """data_root/celeba_<count> in CelebA's layout, kept for later runs (the
    partition file, written last, says it is complete). `distinct` JPEGs are
    cycled, which makes 202,599 of them quick to write."""
    root = data_root / f"celeba_{count}"
    if (root / PARTITION_FILE).is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / FOLDER_NAME).mkdir(parents=True)
    jpegs = synthetic_jpegs(min(distinct, count))
    # Official proportions, but at least the 20 × 64 images one validation reads.
    held_out = [min(count // 3, max(count // 10, 1280)), count // 10]  # val, test
    lines = []
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        (root / FOLDER_NAME / name).write_bytes(jpegs[i % len(jpegs)])
        split = (i >= count - sum(held_out)) + (i >= count - held_out[1])
        lines.append(f"{name} {split}")
    (root / PARTITION_FILE).write_text("\n".join(lines) + "\n")
    return root


def synthetic_jpegs(count):
    """178×218 JPEGs of colour fields with grain, ~9 KB as CelebA's 7 KB: their
    decoding cost is what counts, not what they show."""
    rng, jpegs = np.random.default_rng(0), []
    for _ in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((178, 218), Image.BICUBIC), np.float32)
        picture = np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255)
        buffer = io.BytesIO()
        Image.fromarray(picture.astype(np.uint8)).save(buffer, "JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    return jpegs


def preprocessing_rate(root, p, count, builds=3):
    """Images/s of load_celeba building its cache (decode, crop, resize), cold: the
    median of `builds` builds, since one takes seconds and the machine drifts."""
    rates = []
    for _ in range(builds):
        shutil.rmtree(root / "cache", ignore_errors=True)
        started = time.perf_counter()
        load_celeba(root, p["image_size"], p["crop_size"], log=lambda message: None)
        rates.append(count / (time.perf_counter() - started))
    return float(np.median(rates))
