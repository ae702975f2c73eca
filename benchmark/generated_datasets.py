"""What the generated datasets cost to load and read: `python -m
benchmark.generated_datasets [--output=results.json]`.

For each of dsprites, color_dsprites, noisy_dsprites, scream_dsprites,
dsprites_noshape, xy_object and xy_squares, two fresh processes load it through the
registry (utils.data.load_source) from one data_dir: "cold", the data_dir empty, so
the dSprites-based ones generate dSprites' cache (377 MB) first, then "warm", the
cache there. Each reports its load time, its peak resident memory (VmHWM) and,
warm, the rate of read() on batches of 64 random indices over at least --seconds.
scream_dsprites reads a noise painting of The Scream's shrunk size (221×274),
written first: this repo does not ship the painting, and only its size matters
here. Each data_dir is deleted once its dataset is measured.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("dsprites", "color_dsprites", "noisy_dsprites", "scream_dsprites",
            "dsprites_noshape", "xy_object", "xy_squares")  # fmt: skip
BATCH = 64  # images per read(), a training batch
# The Scream shrunk as disentanglement_lib does (thumbnail to 274 px high), in
# columns, rows, at about the painting's aspect ratio (73.5 cm × 91 cm).
PAINTING_SIZE = (221, 274)

MEASURE = """
import json, sys, time
import numpy as np
from benchmark.memory import peak_resident_mib
from utils.data import load_source
name, data_dir, batch, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    float(sys.argv[4])
started = time.perf_counter()
source = load_source(name, data_dir, 64, 128, log=lambda message: None)
load_s = time.perf_counter() - started
rng = np.random.default_rng(0)
result = {"load_s": load_s, "images": source.num_images,
          "shape": list(source.image_shape), "version": source.version}
if seconds > 0:
    source.read(rng.integers(0, source.num_images, batch))  # first touch of pages
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        images = source.read(rng.integers(0, source.num_images, batch))
        count += len(images)
    result |= {"read_images_per_s": count / elapsed, "read_s": elapsed}
result["peak_rss_mib"] = peak_resident_mib()  # not ru_maxrss: benchmark/memory.py
print(json.dumps(result))
"""


def write_painting(data_dir: Path):
    from PIL import Image

    columns, rows = PAINTING_SIZE
    noise = np.random.default_rng(0).integers(0, 256, (rows, columns, 3), np.uint8)
    Image.fromarray(noise).save(data_dir / "scream.jpg", quality=95)


def measure(name: str, data_dir: Path, seconds: float) -> dict:
    """One load (and, if seconds > 0, reads) of `name` in a fresh process."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, name, str(data_dir), str(BATCH),
         str(seconds)],
        capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"loading {name} failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures | {"process_s": time.perf_counter() - started}


def benchmark(name: str, data_root: Path, seconds: float) -> dict:
    data_dir = data_root / name
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    if name == "scream_dsprites":
        write_painting(data_dir)
    try:
        cold = measure(name, data_dir, seconds=0)
        warm = measure(name, data_dir, seconds)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "dataset": name,
        "images": warm["images"],
        "image": "×".join(map(str, warm["shape"])),
        "version": warm["version"],
        "cold_load_s": cold["load_s"],
        "cold_process_s": cold["process_s"],
        "cold_peak_rss_mib": cold["peak_rss_mib"],
        "warm_load_s": warm["load_s"],
        "warm_process_s": warm["process_s"],
        "warm_peak_rss_mib": warm["peak_rss_mib"],
        "read_images_per_s": warm["read_images_per_s"],
        "read_s": warm["read_s"],
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


COLUMNS = (
    ("dataset", "dataset", "{}"), ("images", "images", "{:,}"),
    ("image", "image", "{}"), ("cold load s", "cold_load_s", "{:.2f}"),
    ("cold peak RSS MiB", "cold_peak_rss_mib", "{:,.0f}"),
    ("warm load s", "warm_load_s", "{:.2f}"),
    ("warm peak RSS MiB", "warm_peak_rss_mib", "{:,.0f}"),
    (f"read() images/s, batch {BATCH}", "read_images_per_s", "{:,.0f}"),
)  # fmt: skip


def table(rows) -> str:
    lines = ["| " + " | ".join(title for title, _, _ in COLUMNS) + " |"]
    lines.append("|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = [form.format(row[key]) for _, key, form in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join(DATASETS),
        help=f"comma-separated subset of {','.join(DATASETS)}",
    )  # fmt: skip
    parser.add_argument(
        "--seconds", type=float, default=2.0,
        help="how long read() is timed, at least (default 2)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--data_root", type=Path,
        help="where each dataset's data_dir is made (default: a temporary folder)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {DATASETS}")
    if args.seconds <= 0:
        parser.error(f"--seconds={args.seconds}: it must be positive")
    settings = {
        "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(), "numpy": np.__version__,
        "batch": BATCH, "seconds": args.seconds,
    }  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(dir=args.data_root) as data_root:
        for name in names:
            print(f"{name}: a cold load, then a warm load and reads …", flush=True)
            rows.append(benchmark(name, Path(data_root), args.seconds))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nCPU: {settings['cpu']}, {settings['cores']} core(s) available")
    print(table(rows))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        results = {"settings": settings, "datasets": rows}
        args.output.write_text(json.dumps(results, indent=1) + "\n")
        print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
