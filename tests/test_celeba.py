"""CelebA loader on tiny folders in the official layout, written by the tests.

CelebA itself is never downloaded: every image here is synthetic.
"""

import codecs
import fcntl
import io
import json
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import main_in_process
from PIL import Image

from utils.data import image_cache
from utils.data.celeba import CelebANotFound, load_celeba
from utils.data.image_cache import preprocess_image

WIDTH, HEIGHT = 178, 218  # CelebA's aligned images
COUNT = 30
CODES = [(0, 0, 0, 1, 2)[i % 5] for i in range(COUNT)]  # 18 train, 6 val, 6 test


def centre_colour(i: int) -> tuple:
    return ((i * 53) % 200 + 30, (i * 97) % 200 + 30, (i * 31) % 200 + 30)


def framed_image(i: int, margin: int = 2, size=(WIDTH, HEIGHT)) -> Image.Image:
    # Border in the complementary colour; the centre 128×128 (plus `margin` px, for
    # JPEG edges and the draft path's 1 px rounding) in centre_colour(i).
    colour = centre_colour(i)
    image = Image.new("RGB", size, tuple(255 - c for c in colour))
    left, top = (size[0] - 128) // 2 - margin, (size[1] - 128) // 2 - margin
    side = 128 + 2 * margin
    image.paste(colour, (left, top, left + side, top + side))
    return image


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def write_celeba(root: Path, files: dict, layout="folder", partition=None) -> Path:
    """files: name → bytes, written in the official folder or zip layout."""
    root.mkdir(parents=True, exist_ok=True)
    if layout == "folder":
        folder = root / "img_align_celeba"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
    else:
        with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as archive:
            archive.writestr("img_align_celeba/", b"")  # directory entry, as shipped
            for name, data in files.items():
                archive.writestr(f"img_align_celeba/{name}", data)
    if partition is not None:
        lines = "".join(f"{name} {code}\n" for name, code in partition.items())
        (root / "list_eval_partition.txt").write_text(lines)
    return root


def standard_files() -> dict:
    return {f"{i:06d}.jpg": jpeg_bytes(framed_image(i)) for i in range(1, COUNT + 1)}


def standard_partition() -> dict:
    return {f"{i + 1:06d}.jpg": code for i, code in enumerate(CODES)}


@pytest.fixture
def celeba_dir(tmp_path) -> Path:
    files, partition = standard_files(), standard_partition()
    return write_celeba(tmp_path / "folder", files, "folder", partition)


@pytest.fixture
def celeba_zip(tmp_path) -> Path:
    files, partition = standard_files(), standard_partition()
    return write_celeba(tmp_path / "zip", files, "zip", partition)


class Log(list):
    def __call__(self, message):
        self.append(message)

    def text(self) -> str:
        return "\n".join(self)


def load(path, **kwargs):
    kwargs.setdefault("log", Log())
    return load_celeba(path, **kwargs)


def forbid_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded although a valid cache exists")

    monkeypatch.setattr(image_cache, "preprocess_image", fail)


# --- basics ---------------------------------------------------------------------------


def test_shape_dtype_and_colours(celeba_dir):
    data = load(celeba_dir)
    assert data.name == "celeba" and data.image_shape == (64, 64, 3)
    assert len(data) == COUNT and data.names[0] == "000001.jpg"
    batch = data.read(np.arange(COUNT))
    assert batch.shape == (COUNT, 64, 64, 3) and batch.dtype == np.uint8
    for row in range(COUNT):  # every pixel is the centre colour: border cropped away
        difference = np.abs(batch[row].astype(int) - centre_colour(row + 1))
        assert difference.max() <= 12, (row, difference.max())
        assert difference.mean() <= 2
    assert str(celeba_dir) in data.source


def test_read_keeps_the_order_given(celeba_dir):
    data = load(celeba_dir)
    rows = [7, 2, 7, 29]
    batch = data.read(rows)
    for position, row in enumerate(rows):
        np.testing.assert_array_equal(batch[position], data.read([row])[0])
    assert data.read([]).shape == (0, 64, 64, 3)


def test_folder_and_zip_give_identical_arrays(celeba_dir, celeba_zip):
    from_folder, from_zip = load(celeba_dir), load(celeba_zip)
    assert "zip" in from_zip.source and from_folder.names == from_zip.names
    rows = np.arange(COUNT)
    np.testing.assert_array_equal(from_folder.read(rows), from_zip.read(rows))
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(from_folder.splits[split], from_zip.splits[split])


def test_folder_preferred_over_zip(celeba_dir):
    write_celeba(celeba_dir, {"000001.jpg": jpeg_bytes(framed_image(1))}, "zip")
    data = load(celeba_dir)
    assert len(data) == COUNT
    assert data.source.startswith(str(celeba_dir / "img_align_celeba") + "/ ")


def test_pool_matches_in_process(celeba_dir, tmp_path):
    other = write_celeba(tmp_path / "other", standard_files(), "folder")
    rows = np.arange(COUNT)
    in_process = load(celeba_dir, num_workers=1).read(rows)
    pooled = load(other, num_workers=2).read(rows)
    np.testing.assert_array_equal(in_process, pooled)


# The pool's workers are forked from main.py, whose Ctrl-C/SIGTERM handler
# (utils/runs/stopping.py) is installed by then.
POOL_PRELUDE = """
import json, signal, sys, time
import numpy as np
from pathlib import Path
from utils.data import image_cache
from utils.runs.stopping import StopRequest

folder = Path(sys.argv[1])
StopRequest()
rows = folder / "rows.npy"
np.lib.format.open_memmap(rows, mode="w+", dtype=np.uint8, shape=(1, 8, 8, 3))
source = image_cache.ImageSource(folder)
"""
POOL_IN_A_TRAINING_PROCESS = (
    POOL_PRELUDE
    + """
kinds = set()
for _ in range(20):  # each pool ends with terminate(): SIGTERM to its workers
    with image_cache._parallel_map(2, (source, rows, 8, 8)) as run:
        handlers = run(signal.getsignal, [signal.SIGTERM, signal.SIGINT] * 2)
        kinds |= {int(h) if isinstance(h, int) else repr(h) for h in handlers}
print(json.dumps(sorted(kinds, key=str)))
"""
)


def test_pool_workers_leave_stop_requests_to_their_parent(tmp_path):
    """A worker running main.py's SIGTERM handler ignored the pool's terminate(), and
    the cache build hung for good (within 5 pools, seen here)."""
    result = subprocess.run(
        [sys.executable, "-c", POOL_IN_A_TRAINING_PROCESS, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == [signal.SIG_DFL, signal.SIG_IGN]
    assert "stopping" not in result.stderr


# terminate() before a worker has reached its initializer: the forked worker still
# has the parent's handler then. A slow start (a loaded machine) makes it certain.
POOL_ENDED_BEFORE_ITS_WORKERS_START = (
    POOL_PRELUDE
    + """
start = image_cache._start_pool_worker
def slow_start(*args):
    time.sleep(1.0)  # the worker is forked but has not reset its handlers yet
    start(*args)
image_cache._start_pool_worker = slow_start
with image_cache._parallel_map(2, (source, rows, 8, 8)):
    pass  # ends at once: terminate() reaches workers still in slow_start
print("ended")
"""
)


def test_a_pool_ended_while_its_workers_start_still_ends(tmp_path):
    """CI hung for 300 s: terminate() reached a worker forked but not yet in its
    initializer, which ran main.py's SIGTERM handler and never exited."""
    result = subprocess.run(
        [sys.executable, "-c", POOL_ENDED_BEFORE_ITS_WORKERS_START, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ended"
    assert "stopping" not in result.stderr


# --- splits ---------------------------------------------------------------------------


def test_split_follows_partition_file(celeba_dir):
    data = load(celeba_dir)
    for code, split in enumerate(("train", "validation", "test")):
        expected = [row for row, c in enumerate(CODES) if c == code]
        assert data.splits[split].dtype == np.int64
        np.testing.assert_array_equal(data.splits[split], expected)
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [18, 6, 6]


def test_deterministic_split_without_partition_file(tmp_path):
    first = write_celeba(tmp_path / "a", standard_files())
    second = write_celeba(tmp_path / "b", standard_files())
    log = Log()
    a, b = load(first, log=log), load(second)
    assert "seed" in log.text()
    sizes = [len(a.splits[s]) for s in ("train", "validation", "test")]
    assert sizes == [24, 3, 3]
    together = np.concatenate(list(a.splits.values()))
    assert sorted(together) == list(range(COUNT))  # disjoint and complete
    for split in a.splits:
        np.testing.assert_array_equal(a.splits[split], b.splits[split])
    assert not np.array_equal(a.splits["test"], [27, 28, 29])  # shuffled, not a tail


def test_malformed_partition_file_names_the_line(celeba_dir):
    path = celeba_dir / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    lines[2] = "000003.jpg train"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"list_eval_partition\.txt, line 3"):
        load(celeba_dir)
    path.write_text("000001.jpg 0 extra\n")
    with pytest.raises(ValueError, match="line 1"):
        load(celeba_dir)


def test_partition_file_not_in_utf8_names_the_file_and_line(celeba_dir):
    path = celeba_dir / "list_eval_partition.txt"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = "000003.jpg 0 é\n".encode("latin-1")
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError) as caught:
        load(celeba_dir)
    message = str(caught.value)
    assert f"{path}, line 3: not UTF-8 text (byte 0xe9)" in message
    path.write_bytes(codecs.BOM_UTF8 + b"".join(lines[:2]))  # a BOM is fine
    assert len(load(celeba_dir).splits["train"]) == 2


# --- preprocessing --------------------------------------------------------------------


def test_centre_crop_is_exact_without_jpeg_losses():
    # PNG: full decode, exact centre 128×128 (no margin) → exactly the centre colour.
    buffer = io.BytesIO()
    framed_image(5, margin=0).save(buffer, "PNG")
    out = preprocess_image(buffer.getvalue(), 64, 128)
    assert out.shape == (64, 64, 3)
    assert np.all(out == centre_colour(5))


def smooth_noise(size=(WIDTH, HEIGHT), seed=0) -> Image.Image:
    shape = (size[1] // 8, size[0] // 8, 3)
    noise = np.random.default_rng(seed).integers(0, 256, shape)
    return Image.fromarray(noise.astype(np.uint8)).resize(size)


# The reduced decode's crop window: the centre (25, 45, 153, 173) rounded to whole
# pixels at 1/2 or 1/4 scale (see preprocess_image).
@pytest.mark.parametrize(
    "size, reduced_shape, window",
    [(64, (109, 89), (26, 46, 154, 174)), (32, (55, 45), (24, 44, 152, 172))],
)
def test_jpeg_takes_the_reduced_decode_and_matches_the_full_one(
    size, reduced_shape, window
):
    data = jpeg_bytes(smooth_noise())
    with Image.open(io.BytesIO(data)) as image:  # reference: full decode + box
        full = np.asarray(image.resize((size, size), Image.Resampling.BOX, window))
    pixels, full_size, scale = image_cache._decode_jpeg_reduced(data, size, 128)
    assert pixels.shape[:2] == reduced_shape  # libjpeg decodes at 1/2 or 1/4 size
    assert full_size == (WIDTH, HEIGHT) and scale == 128 // size
    out = preprocess_image(data, size, 128)
    assert np.abs(out.astype(int) - full).mean() < 3  # DCT vs box rounding, chroma


@pytest.mark.parametrize("size, crop", [(64, 128), (32, 128), (64, 148), (48, 100)])
@pytest.mark.parametrize(
    "mode, options, image_size",
    [
        ("RGB", {}, (WIDTH, HEIGHT)),  # CelebA's: 4:2:0
        ("RGB", {"subsampling": 0}, (WIDTH, HEIGHT)),
        ("RGB", {"progressive": True}, (WIDTH, HEIGHT)),
        ("L", {}, (WIDTH, HEIGHT)),
        ("RGB", {}, (179, 219)),  # odd: the last reduced pixel is a partial block
        ("RGB", {}, (500, 375)),
    ],
)
def test_fast_jpeg_decode_gives_the_same_pixels_as_pil(
    monkeypatch, size, crop, mode, options, image_size
):
    # simplejpeg decodes CelebA ~2× faster than PIL; a cache must not depend on which
    # one decoded it.
    data = jpeg_bytes(smooth_noise(image_size).convert(mode), **options)
    assert image_cache._decode_jpeg_reduced(data, size, crop) is not None
    fast = preprocess_image(data, size, crop)
    with monkeypatch.context() as patch:
        patch.setattr(image_cache, "_decode_jpeg_reduced", lambda *args: None)
        by_pil = preprocess_image(data, size, crop)
    assert fast.shape == (size, size, 3)
    assert np.array_equal(fast, by_pil)


def test_what_the_fast_decode_cannot_take_goes_to_pil():
    cmyk = jpeg_bytes(framed_image(4).convert("CMYK"))  # PIL's own CMYK conversion
    png = io.BytesIO()
    framed_image(4).save(png, "PNG")
    truncated = jpeg_bytes(smooth_noise())[:2000]
    for data in (cmyk, png.getvalue(), truncated, b"not an image"):
        assert image_cache._decode_jpeg_reduced(data, 64, 128) is None
    out = preprocess_image(cmyk, 64, 128)
    assert np.abs(out[2:-2, 2:-2].astype(int) - centre_colour(4)).max() <= 12
    with pytest.raises(image_cache.BAD_IMAGE_ERRORS):  # PIL names the fault
        preprocess_image(truncated, 64, 128)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_resize_is_anti_aliased(fmt):
    # A 1-px checkerboard must average to mid-grey; nearest neighbour (the original's
    # resize) would pick same-coloured pixels and give pure black or white.
    board = ((np.indices((HEIGHT, WIDTH)).sum(axis=0) % 2) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    options = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(board).convert("RGB").save(buffer, fmt, **options)
    out = preprocess_image(buffer.getvalue(), 64, 128).astype(float)
    assert abs(out.mean() - 127.5) < 10 and out.std() < 10


def test_other_sizes_are_centre_cropped_then_resized():
    image = framed_image(3, margin=0, size=(300, 260))  # bigger than CelebA
    out = preprocess_image(jpeg_bytes(image), 32, 128)
    assert out.shape == (32, 32, 3)
    assert np.abs(out[2:-2, 2:-2].astype(int) - centre_colour(3)).max() <= 12
    small = Image.new("RGB", (100, 100), (10, 200, 30))  # smaller than the crop
    out = preprocess_image(jpeg_bytes(small), 64, 128)
    assert out.shape == (64, 64, 3)
    assert np.abs(out.astype(int) - (10, 200, 30)).max() <= 6
    # Smaller than image_size itself: enlarged (it was once skipped as unreadable).
    out = preprocess_image(jpeg_bytes(small), 128, 128)
    assert out.shape == (128, 128, 3)
    assert np.abs(out.astype(int) - (10, 200, 30)).max() <= 6


# --- cache ----------------------------------------------------------------------------


def test_cache_is_reused_without_decoding(celeba_dir, monkeypatch):
    log = Log()
    first = load(celeba_dir, log=log).read(np.arange(COUNT))
    cache = celeba_dir / "cache" / "celeba_64px_crop128.npy"
    wrote = rf"CelebA: wrote {re.escape(str(cache))} \({COUNT} images, 0.00 GB\) in "
    assert re.search(wrote + r"[\d.]+ s \([\d,]+ images/s\)", log.text())
    assert cache.is_file() and cache.with_suffix(".json").is_file()
    forbid_decoding(monkeypatch)
    log = Log()
    again = load(celeba_dir, log=log)
    assert isinstance(again.images, np.memmap) and again.images.dtype == np.uint8
    np.testing.assert_array_equal(again.read(np.arange(COUNT)), first)
    assert "loaded cache" in log.text()


def test_cache_rebuilt_when_settings_or_source_change(celeba_dir, monkeypatch):
    load(celeba_dir)
    small = load(celeba_dir, image_size=32)
    assert small.image_shape == (32, 32, 3)
    assert (celeba_dir / "cache" / "celeba_32px_crop128.npy").is_file()
    wide = load(celeba_dir, crop_size=148)
    assert (celeba_dir / "cache" / "celeba_64px_crop148.npy").is_file()
    assert not np.array_equal(wide.read([0]), load(celeba_dir).read([0]))
    new = celeba_dir / "img_align_celeba" / "000031.jpg"
    new.write_bytes(jpeg_bytes(framed_image(31)))
    assert len(load(celeba_dir)) == COUNT + 1  # folder changed → rebuilt
    forbid_decoding(monkeypatch)
    assert len(load(celeba_dir)) == COUNT + 1


def test_build_shows_its_progress(celeba_dir, capsys):
    load(celeba_dir)
    assert f"decoding: 100%|██████████| {COUNT}/{COUNT}" in capsys.readouterr().err


@pytest.mark.parametrize("num_workers", [1, 2])
def test_interrupted_build_leaves_no_cache(celeba_dir, monkeypatch, num_workers):
    calls = []
    real = image_cache.preprocess_image

    def crash_midway(*args):
        calls.append(1)  # per process: each pool worker has its own copy
        if len(calls) > 5:
            raise RuntimeError("simulated crash")
        return real(*args)

    monkeypatch.setattr(image_cache, "preprocess_image", crash_midway)
    with pytest.raises(RuntimeError, match="simulated crash"):
        load(celeba_dir, num_workers=num_workers)
    # No cache, no temporary files, no lock file.
    assert list((celeba_dir / "cache").iterdir()) == []
    monkeypatch.setattr(image_cache, "preprocess_image", real)
    assert len(load(celeba_dir)) == COUNT


def test_killed_build_leftovers_are_removed(celeba_dir):
    cache = celeba_dir / "cache" / "celeba_64px_crop128.npy"
    cache.parent.mkdir()
    # What a SIGKILL during a build leaves: big half-written rows, as named before
    # files.temporary_path and since, and maybe the sidecar's temporary.
    leftovers = [cache.with_name(cache.name + s) for s in (".tmp4242", ".compact4242")]
    leftovers += [
        cache.with_name(f".{name}.4242.0123abcd.tmp")
        for name in ("celeba_64px_crop128.npy", "celeba_64px_crop128.json")
    ]
    for path in leftovers:
        path.write_bytes(b"half written")
    other = cache.with_name("celeba_32px_crop128.npy.tmp4242")  # another size's
    other.write_bytes(b"")
    log = Log()
    assert len(load(celeba_dir, log=log)) == COUNT
    assert not any(path.exists() for path in leftovers)
    assert "left by a build that was killed" in log.text()
    assert other.exists()  # only its own build's lock makes a leftover stale


def test_second_process_waits_for_the_build_then_reuses_it(
    celeba_dir, tmp_path, monkeypatch
):
    """While another process holds the build lock, load waits for it, then finds
    the cache that process built instead of decoding everything again."""
    built = write_celeba(tmp_path / "twin", standard_files(), "folder",
                         standard_partition())  # fmt: skip
    load(built)  # the same images, so the same cache
    cache = celeba_dir / "cache" / "celeba_64px_crop128.npy"
    cache.parent.mkdir()
    log, done = Log(), threading.Event()
    with open(cache.with_name(f".{cache.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other builder
        forbid_decoding(monkeypatch)
        waiter = threading.Thread(
            target=lambda: (load(celeba_dir, log=log, num_workers=1), done.set())
        )
        waiter.start()
        deadline = time.monotonic() + 30
        while "waiting" not in log.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "another process is building" in log.text()
        assert not done.is_set()
        for path in (built / "cache").glob("celeba_64px_crop128.*"):  # it finishes
            shutil.copy(path, cache.parent / path.name)
    waiter.join(30)
    assert done.is_set() and "loaded cache" in log.text()
    assert not list(cache.parent.glob("*.lock"))  # the waiter removed it


def test_npy_without_sidecar_is_not_trusted(celeba_dir):
    cache = celeba_dir / "cache" / "celeba_64px_crop128.npy"
    cache.parent.mkdir()
    np.save(cache, np.zeros((COUNT, 64, 64, 3), np.uint8))  # as if killed before commit
    data = load(celeba_dir)
    assert data.read([0]).max() > 0


# --- missing or broken data -----------------------------------------------------------


@pytest.mark.parametrize("exists", [True, False])
def test_not_found_explains_what_to_do(tmp_path, exists):
    data_dir = tmp_path / "data"
    if exists:
        data_dir.mkdir()
    with pytest.raises(CelebANotFound) as caught:
        load(data_dir)
    message = str(caught.value)
    assert str(data_dir.resolve()) in message and "--dataset=dsprites" in message
    assert "img_align_celeba.zip" in message and "list_eval_partition.txt" in message
    assert not (data_dir / "cache").exists()


def bad_and_odd_files() -> dict:
    good = standard_files()
    files = dict(list(good.items())[:10])
    whole = good["000011.jpg"]
    files["000011.jpg"] = whole[: len(whole) // 2]  # truncated JPEG
    files["000012.jpg"] = b""  # zero bytes
    files["000013.jpg"] = b"this is not an image\n"
    png = io.BytesIO()
    framed_image(14).save(png, "PNG")
    files["000014.jpg"] = png.getvalue()  # PNG named .jpg
    files["000015.jpg"] = jpeg_bytes(framed_image(15).convert("L"))  # grayscale
    files["000016.jpg"] = jpeg_bytes(framed_image(16).convert("CMYK"))
    files["000017.jpg"] = jpeg_bytes(Image.new("RGB", (100, 100), centre_colour(17)))
    files["README.txt"] = b"not a candidate"
    files[".DS_Store"] = b"\0\0\0\1Bud1"
    return files


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_bad_files_are_skipped_loudly_and_odd_ones_converted(tmp_path, layout):
    partition = {f"{i:06d}.jpg": 0 for i in range(1, 21)}  # 000018-20 not on disk
    root = write_celeba(tmp_path / layout, bad_and_odd_files(), layout, partition)
    log = Log()
    data = load(root, log=log)
    kept = [f"{i:06d}.jpg" for i in [*range(1, 11), 14, 15, 16, 17]]
    assert data.names == kept
    warning = next(line for line in log if "WARNING" in line)
    assert "3 unreadable" in warning
    assert all(name in warning for name in ("000011", "000012", "000013"))
    assert "6 name(s) in list_eval_partition.txt are not among" in log.text()
    batch = data.read(np.arange(len(kept))).astype(int)
    colours = {name: centre_colour(int(name[:6])) for name in kept}
    for row in (10, 12, 13):  # PNG-as-.jpg, CMYK, 100×100
        expected = colours[kept[row]]
        assert np.abs(batch[row, 4:-4, 4:-4] - expected).mean() < 4, kept[row]
    gray = batch[11]  # grayscale → RGB with equal channels
    assert np.all(gray[..., 0] == gray[..., 1]) and np.all(gray[..., 1] == gray[..., 2])
    log = Log()
    load(root, log=log)  # from the cache: still says what was skipped
    assert "3 unreadable" in log.text() and "loaded cache" in log.text()


def test_folder_without_usable_images_is_an_error(tmp_path):
    files = {"000012.jpg": b"", "000013.jpg": b"text\n", "README.txt": b"text\n"}
    with pytest.raises(ValueError, match="none of the 2 image files"):
        load(write_celeba(tmp_path / "bad", files))
    with pytest.raises(ValueError, match="no image files"):
        load(write_celeba(tmp_path / "empty", {"README.txt": b"x"}))


def test_unreadable_zip_and_bad_settings_are_clear_errors(tmp_path):
    (tmp_path / "img_align_celeba.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        load(tmp_path)
    with pytest.raises(ValueError, match="image_size"):
        load(tmp_path, image_size=0)


def test_partition_file_matching_no_image_is_an_error(tmp_path):
    root = write_celeba(tmp_path, standard_files(), partition={"other.jpg": 0})
    with pytest.raises(ValueError, match="none of its 1 names"):
        load(root)


# --- a damaged zip: members that cannot be read, or an archive that cannot be opened


def zip_bytes(files: dict, compression=zipfile.ZIP_STORED) -> bytes:
    """files (name → bytes) as img_align_celeba.zip, in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("img_align_celeba/", b"")
        for name, data in files.items():
            archive.writestr(f"img_align_celeba/{name}", data)
    return buffer.getvalue()


def central_directory(archive: bytes):
    """(offset of its central directory entry, of its local header, its name) of
    every member of `archive`."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        position, count = opened.start_dir, len(opened.infolist())
    for _ in range(count):
        name_size, extra_size, comment_size = struct.unpack_from(
            "<3H", archive, position + 28
        )
        local = struct.unpack_from("<I", archive, position + 42)[0]
        yield position, local, archive[position + 46 : position + 46 + name_size]
        position += 46 + name_size + extra_size + comment_size


def damage_members(archive: bytes, names, how) -> bytes:
    """`archive` with members `names` (of img_align_celeba/) damaged: `how` is
    {"flags": bits} or {"method": compression method}, set in their local header
    and central directory entry alike, or "data": some bytes of theirs inverted."""
    damaged = bytearray(archive)
    wanted = {f"img_align_celeba/{name}".encode() for name in names}
    for entry, local, name in central_directory(archive):
        if name not in wanted:
            continue
        if how == "data":
            name_size, extra_size = struct.unpack_from("<2H", archive, local + 26)
            size = struct.unpack_from("<I", archive, entry + 20)[0]  # compressed
            middle = local + 30 + name_size + extra_size + size // 2
            damaged[middle : middle + 8] = bytes(b ^ 0xFF for b in archive[middle:][:8])
            continue
        for field, (entry_at, local_at) in {"flags": (8, 6), "method": (10, 8)}.items():
            if field in how:
                struct.pack_into("<H", damaged, entry + entry_at, how[field])
                struct.pack_into("<H", damaged, local + local_at, how[field])
    return bytes(damaged)


# How a member is damaged → (how the archive is compressed, what the warning says).
MEMBER_DAMAGE = {
    # ZipCrypto: zipfile wants a password (RuntimeError).
    "encrypted": (zipfile.ZIP_STORED, {"flags": 0x1}, "password required"),
    "strong encryption": (zipfile.ZIP_STORED, {"flags": 0x41}, "strong encryption"),
    # Deflate64, which Windows uses for big zips: NotImplementedError.
    "Deflate64": (zipfile.ZIP_STORED, {"method": 9}, "compression method"),
    "damaged LZMA data": (zipfile.ZIP_LZMA, "data", "LZMAError"),
    "damaged stored data": (zipfile.ZIP_STORED, "data", "Bad CRC-32"),
}


def main_py(capsys, data_dir: Path, out: Path) -> tuple[int, str]:
    return main_in_process(
        capsys, "--dataset=celeba", f"--data_dir={data_dir}",
        f"--predictions_dir={out}",
        "--run_name=r",
    )  # fmt: skip


@pytest.mark.parametrize("damage", MEMBER_DAMAGE)
def test_unreadable_zip_members_are_skipped_and_counted(tmp_path, capsys, damage):
    """A member zipfile cannot read (encrypted, a compression method it lacks,
    damaged data) is skipped and counted like an unreadable JPEG, also when a pool
    worker reads it; with nothing left main.py refuses the zip (exit 2)."""
    compression, how, reason = MEMBER_DAMAGE[damage]
    files = dict(list(standard_files().items())[:11])
    root = tmp_path / "some"
    root.mkdir()
    archive = damage_members(zip_bytes(files, compression), ["000011.jpg"], how)
    (root / "img_align_celeba.zip").write_bytes(archive)
    log = Log()
    data = load(root, log=log, num_workers=2)
    assert data.names == list(files)[:10]
    warning = next(line for line in log if "WARNING" in line)
    assert "skipped 1 unreadable file(s) of 11: 000011.jpg (" in warning
    assert reason in warning
    every = tmp_path / "every"
    every.mkdir()
    archive = damage_members(zip_bytes(files, compression), files, how)
    (every / "img_align_celeba.zip").write_bytes(archive)
    code, err = main_py(capsys, every, tmp_path / "predictions")
    assert code == 2
    assert f"none of the 11 image files in zip {every / 'img_align_celeba.zip'}" in err
    assert reason in err and "download it again" in err
    assert not (every / "cache").exists() or not any((every / "cache").iterdir())


def overwrite_central_directory(archive: bytes, at: int, data: bytes) -> bytes:
    """`archive` with `data` written `at` bytes into its first member's entry."""
    entry = next(central_directory(archive))[0] + at
    return archive[:entry] + data + archive[entry + len(data) :]


def name_not_utf8(archive: bytes) -> bytes:
    # Flag bit 11 says the names are UTF-8; a name then starting 0xFF is not.
    flagged = overwrite_central_directory(archive, 8, struct.pack("<H", 0x800))
    return overwrite_central_directory(flagged, 46, b"\xff")


# The archive → what the message says is wrong with it.
ARCHIVE_DAMAGE = {
    "not a zip": (lambda good: b"this is not a zip file\n", "File is not a zip file"),
    "zero bytes": (lambda good: b"", "File is not a zip file"),
    "truncated": (lambda good: good[: len(good) // 2], "File is not a zip file"),
    "central directory overwritten": (
        lambda good: overwrite_central_directory(good, 0, b"\xff" * 20),
        "Bad magic number for central directory",
    ),
    "central directory: a newer zip version": (  # NotImplementedError
        lambda good: overwrite_central_directory(good, 6, b"\xff"),
        "zip file version 25.5",
    ),
    "central directory: a name not UTF-8": (
        name_not_utf8,
        "'utf-8' codec can't decode byte 0xff",
    ),
}


@pytest.mark.parametrize("damage", ARCHIVE_DAMAGE)
def test_a_zip_that_cannot_be_opened_is_refused_naming_it_and_the_fix(
    tmp_path, capsys, damage
):
    make, reason = ARCHIVE_DAMAGE[damage]
    path = tmp_path / "img_align_celeba.zip"
    path.write_bytes(make(zip_bytes(dict(list(standard_files().items())[:3]))))
    code, err = main_py(capsys, tmp_path, tmp_path / "predictions")
    assert code == 2
    assert f"{path.resolve()} is not a readable zip file ({reason}" in err
    assert "download it again from https://mmlab.ie.cuhk.edu.hk" in err.lower()
    assert "img_align_celeba/" in err  # or extract it there
    assert not (tmp_path / "cache").exists()


def test_a_zip_unreadable_once_listed_fails_each_file_not_the_worker(
    tmp_path, monkeypatch
):
    """The zip listed, then damaged before a worker opens it: every file is
    counted as unreadable instead of the worker failing to start."""
    path = tmp_path / "img_align_celeba.zip"
    path.write_bytes(zip_bytes(dict(list(standard_files().items())[:3])))
    listed = image_cache.ImageSource(path, "img_align_celeba").list_images()
    monkeypatch.setattr(image_cache.ImageSource, "list_images", lambda self: listed)
    path.write_bytes(b"damaged since")
    with pytest.raises(ValueError, match="none of the 3 image files") as caught:
        load(tmp_path, num_workers=1)
    assert "000001.jpg (BadZipFile: File is not a zip file)" in str(caught.value)
