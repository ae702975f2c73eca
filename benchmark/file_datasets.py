"""What the official-file datasets cost to cache: `python -m benchmark.file_datasets
--data_root=/tmp/x`.

For each of shapes3d, mpi3d_toy (the three MPI3D variants share their code),
smallnorb and cars3d it writes a full-size file set in the official format with
random pixels (3dshapes.h5 gzip'd, as the official one; mpi3d_toy.npz stored; the
six smallNORB .mat files; 183 Cars3D .mat files), then loads it through the
registered loader in a fresh process twice: the first load builds the cache (its
wall time, images/s and peak resident memory), the second opens it and reads
every image once in random batches of 64, as an epoch of training does (images/s
and peak resident memory: the pass must not make the cache resident). Random
pixels do not compress, so 3dshapes.h5 here is 5.9 GB where the official is
0.27 GB, and its inflate costs differ. Each dataset's files and cache are
deleted after it is measured (--keep keeps them, and later runs reuse them); the
largest, MPI3D, needs about 26 GB free while it is measured.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHUNK_IMAGES = 8192
DATASETS = ("shapes3d", "mpi3d_toy", "smallnorb", "cars3d")
COMPLETE = ".complete"  # written last: the fixture is whole
TRAINING, TESTING = [4, 6, 7, 8, 9], [0, 1, 2, 3, 5]  # smallNORB's instances


def random_images(rng, count, shape) -> np.ndarray:
    size = count * int(np.prod(shape))
    return np.frombuffer(rng.bytes(size), np.uint8).reshape(count, *shape)


def write_shapes3d(folder: Path, rng):
    import h5py

    from utils.data.shapes3d import FACTOR_SIZES, FILENAME, IMAGE_SHAPE

    num = int(np.prod(FACTOR_SIZES))
    grid = np.stack(np.unravel_index(np.arange(num), FACTOR_SIZES), 1)
    with h5py.File(folder / FILENAME, "w") as file:
        file.create_dataset("labels", data=grid.astype(np.float64))
        images = file.create_dataset(
            "images", (num, *IMAGE_SHAPE), np.uint8, chunks=(64, *IMAGE_SHAPE),
            compression="gzip", compression_opts=1,
        )  # fmt: skip
        for start in range(0, num, CHUNK_IMAGES):
            count = min(CHUNK_IMAGES, num - start)
            images[start : start + count] = random_images(rng, count, IMAGE_SHAPE)


def write_mpi3d(folder: Path, rng):
    from utils.data.mpi3d import FACTOR_SIZES, IMAGE_SHAPE

    num = int(np.prod(FACTOR_SIZES))
    with zipfile.ZipFile(folder / "mpi3d_toy.npz", "w") as archive:  # stored
        with archive.open("images.npy", "w", force_zip64=True) as member:
            header = {"descr": "|u1", "fortran_order": False,
                      "shape": (num, *IMAGE_SHAPE)}  # fmt: skip
            np.lib.format.write_array_header_1_0(member, header)
            for start in range(0, num, CHUNK_IMAGES):
                count = min(CHUNK_IMAGES, num - start)
                member.write(random_images(rng, count, IMAGE_SHAPE).tobytes())


def norb_header(magic, shape) -> bytes:
    dims = list(shape) + [1] * (3 - len(shape))
    return np.array([magic, len(shape), *dims], "<i4").tobytes()


def write_smallnorb(folder: Path, rng):
    from utils.data import smallnorb as norb

    grid = np.stack(np.unravel_index(np.arange(48_600), norb.FACTOR_SIZES), 1)
    for half, instances in zip(norb.HALVES, (TRAINING, TESTING), strict=True):
        rows = rng.permutation(np.flatnonzero(np.isin(grid[:, 1], instances)))
        factors = grid[rows]
        category = factors[:, 0].astype("<i4")
        info = np.column_stack(
            [factors[:, 1], factors[:, 2], 2 * factors[:, 3], factors[:, 4]]
        ).astype("<i4")
        name = norb.file_name
        (folder / name(half, "cat")).write_bytes(
            norb_header(norb.INT_MATRIX, category.shape) + category.tobytes()
        )
        (folder / name(half, "info")).write_bytes(
            norb_header(norb.INT_MATRIX, info.shape) + info.tobytes()
        )
        with open(folder / name(half, "dat"), "wb") as file:
            file.write(norb_header(norb.BYTE_MATRIX, (len(rows), 2, 96, 96)))
            for start in range(0, len(rows), CHUNK_IMAGES):
                count = min(CHUNK_IMAGES, len(rows) - start)
                file.write(random_images(rng, count, (2, 96, 96)).tobytes())


def write_cars3d(folder: Path, rng):
    import scipy.io

    from utils.data.cars3d import NUM_CARS, RENDER_SHAPE

    cars = folder / "data" / "cars"
    cars.mkdir(parents=True)
    for car in range(NUM_CARS):
        im = random_images(rng, 1, RENDER_SHAPE)[0]
        scipy.io.savemat(cars / f"car_{car + 1:03d}_mesh.mat", {"im": im})


WRITERS = {
    "shapes3d": write_shapes3d,
    "mpi3d_toy": write_mpi3d,
    "smallnorb": write_smallnorb,
    "cars3d": write_cars3d,
}


def fixture(data_root: Path, name: str) -> tuple[Path, float]:
    """data_root/<name>, full size (written now unless a whole one is there), and
    the seconds writing it took (0 if reused)."""
    folder = data_root / name
    if (folder / COMPLETE).is_file():
        return folder, 0.0
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    WRITERS[name](folder, np.random.default_rng(0))
    (folder / COMPLETE).write_text("")
    return folder, time.perf_counter() - started


MEASURE = """
import json, sys, time
sys.path.insert(0, {repo!r})
import numpy as np
from benchmark.memory import peak_resident_mib
from utils.data import load_source
started = time.perf_counter()
data = load_source({name!r}, {folder!r}, 64, 128, log=lambda message: None)
seconds = time.perf_counter() - started
order = np.random.default_rng(0).permutation(data.num_images)
if not {full_pass!r}:
    order = order[:4096]
started = time.perf_counter()
for start in range(0, len(order), 64):
    batch = data.read(order[start : start + 64])
read_seconds = time.perf_counter() - started
peak = peak_resident_mib()  # not ru_maxrss: see benchmark/memory.py
print(json.dumps({{"seconds": seconds, "peak_mb": peak, "images": data.num_images,
                  "shape": list(batch.shape[1:]), "read": len(order),
                  "read_seconds": read_seconds}}))
"""


def measure(name: str, folder: Path, full_pass: bool) -> dict:
    """One load of `name` from `folder` in a fresh process, then 4,096 images
    read (or, `full_pass`, every image) in random batches of 64: seconds of
    each, peak RSS."""
    script = MEASURE.format(
        repo=str(REPO), name=name, folder=str(folder), full_pass=full_pass
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd="/",
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"loading {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def size_gb(paths) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 1e9


def benchmark(data_root: Path, name: str, keep: bool) -> dict:
    folder, written = fixture(data_root, name)
    sources = [p for p in folder.rglob("*") if "cache" not in p.parts]
    shutil.rmtree(folder / "cache", ignore_errors=True)  # a cold build
    build = measure(name, folder, full_pass=False)
    reload = measure(name, folder, full_pass=True)
    row = {
        "dataset": name,
        "images": build["images"],
        "image": "×".join(map(str, build["shape"])),
        "files_gb": size_gb(sources),
        "cache_gb": size_gb((folder / "cache").glob("*.npy")),
        "write_s": written,
        "build_s": build["seconds"],
        "build_images_s": build["images"] / build["seconds"],
        "build_peak_mb": build["peak_mb"],
        "reload_s": reload["seconds"],
        "pass_images_s": reload["read"] / reload["read_seconds"],
        "pass_peak_mb": reload["peak_mb"],
    }
    if not keep:
        shutil.rmtree(folder)
    return row


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


COLUMNS = (
    ("dataset", "{}"), ("images", "{:,}"), ("image", "{}"), ("files_gb", "{:.2f}"),
    ("cache_gb", "{:.2f}"), ("build_s", "{:.1f}"), ("build_images_s", "{:,.0f}"),
    ("build_peak_mb", "{:,.0f}"), ("reload_s", "{:.2f}"),
    ("pass_images_s", "{:,.0f}"), ("pass_peak_mb", "{:,.0f}"),
)  # fmt: skip


def table(rows) -> str:
    header = [
        "dataset", "images", "image", "files GB", "cache GB", "build s",
        "build images/s", "build peak RSS MB", "reload s", "pass images/s",
        "load + pass peak RSS MB",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [form.format(row[key]) for key, form in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data_root", type=Path, required=True,
        help="where the full-size files are written",
    )  # fmt: skip
    parser.add_argument(
        "--only", default=",".join(DATASETS),
        help=f"comma-separated subset of {','.join(DATASETS)}",
    )  # fmt: skip
    parser.add_argument(
        "--keep", action="store_true",
        help="keep the files and caches (later runs reuse them)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {DATASETS}")
    rows = []
    for name in names:
        print(f"{name}: writing the full-size files, then two loads …", flush=True)
        rows.append(benchmark(args.data_root, name, args.keep))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} logical cores")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
