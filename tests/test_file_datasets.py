"""The datasets read from official files (shapes3d, mpi3d_*, smallnorb, cars3d) and
from a folder of images, on small files each test writes in the official format:
the factor grid and which image each index holds, dtype and shape, the cache built
once, missing and malformed files refused with the fix, and main.py end to end."""

import gzip
import json
import math
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.data import DataNotFound, info, load_source
from utils.data.ground_truth import NoGroundTruth, require_factors

REPO = Path(__file__).resolve().parents[1]


def code_images(codes, shape=(64, 64, 3)) -> np.ndarray:
    """(n, *shape) uint8 images, each constant per channel: its code's base-256
    digits (channel 0 the lowest); a single channel holds the code itself."""
    codes = np.asarray(codes, dtype=np.int64)
    if shape[-1] == 1:
        digits = codes[:, None]
    else:
        digits = np.stack([(codes >> 8 * c) & 255 for c in range(shape[-1])], 1)
    return np.broadcast_to(digits[:, None, None, :], (len(codes), *shape)).astype(
        np.uint8
    )


def decode(images: np.ndarray) -> np.ndarray:
    """The codes code_images wrote: each image's mean digits."""
    digits = np.rint(images.reshape(len(images), -1, images.shape[-1]).mean(1))
    return (digits.astype(np.int64) << (8 * np.arange(images.shape[-1]))).sum(1)


def every_index(data) -> np.ndarray:
    return np.arange(data.num_images)


def logs():
    lines = []
    return lines, lines.append


def assert_cache_reused(load, lines, cache: Path):
    """A second load reads the cache the first built."""
    from utils.data.array_cache import CacheRows

    built = cache.stat().st_mtime_ns
    lines.clear()
    data = load()
    assert cache.stat().st_mtime_ns == built
    assert any("loaded cache" in line for line in lines), lines
    assert not any("building" in line for line in lines), lines
    assert isinstance(data.images, CacheRows) and data.images.path == cache
    return data


# --- shapes3d -------------------------------------------------------------------------

SHAPES3D_SMALL = (2, 3, 2, 2, 2, 3)  # 144 images


def shapes3d_values(sizes):
    hues = [np.linspace(0, 1, n, endpoint=False) for n in sizes[:3]]
    return [*hues, np.linspace(0.75, 1.25, sizes[3]), np.arange(sizes[4]) * 1.0,
            np.linspace(-30, 30, sizes[5])]  # fmt: skip


def write_shapes3d(folder: Path, sizes=SHAPES3D_SMALL, order=None, **changes):
    """3dshapes.h5 as DeepMind's: `images` (N, 64, 64, 3) uint8 and `labels` (N, 6)
    float64, gzip'd. Image of grid index i: code i; `order` the grid index of each
    row of the file (row-major if None)."""
    import h5py

    num = int(np.prod(sizes))
    order = np.arange(num) if order is None else np.asarray(order)
    classes = np.stack(np.unravel_index(order, sizes), 1)
    values = shapes3d_values(sizes)
    labels = np.stack([values[f][classes[:, f]] for f in range(6)], 1)
    arrays = {"images": code_images(order), "labels": labels.astype(np.float64)}
    arrays.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "3dshapes.h5", "w") as file:
        for key, array in arrays.items():
            chunks = (min(len(array), 32), *array.shape[1:]) if array.ndim else None
            file.create_dataset(key, data=array, compression="gzip", chunks=chunks)
    return folder


def load_shapes3d(folder, log=lambda m: None, sizes=SHAPES3D_SMALL):
    from utils.data.shapes3d import load_shapes3d

    return load_shapes3d(folder, log=log, factor_sizes=sizes)


def test_shapes3d_index_maps_to_its_image_even_from_a_permuted_file(tmp_path):
    num = int(np.prod(SHAPES3D_SMALL))
    order = np.random.default_rng(0).permutation(num)  # the file's rows shuffled
    folder = write_shapes3d(tmp_path, order=order)
    lines, log = logs()
    data = load_shapes3d(folder, log)
    assert any("permuted" in line for line in lines)
    assert data.name == "shapes3d" and data.image_shape == (64, 64, 3)
    assert data.factor_sizes == SHAPES3D_SMALL and len(data.scored_factors) == 6
    assert (
        data.factor_names[0] == "floor_hue" and data.factor_names[-1] == "orientation"
    )
    images = data.read(every_index(data))
    assert images.dtype == np.uint8 and images.shape == (num, 64, 64, 3)
    assert np.array_equal(decode(images), every_index(data))
    # Factors → index → image: the image written for those factors.
    classes = np.array([[1, 2, 0, 1, 1, 2], [0, 0, 1, 0, 1, 0]])
    expected = np.ravel_multi_index(tuple(classes.T), SHAPES3D_SMALL)
    assert np.array_equal(decode(data.read(data.index_of(classes))), expected)
    assert data.factor_values[3] == pytest.approx([0.75, 1.25])
    assert sum(map(len, data.splits.values())) == num
    assert {k: len(v) for k, v in data.splits.items()} == {
        "train": num - 28,
        "validation": 14,
        "test": 14,
    }
    assert data.describe()["version"].startswith("official 3dshapes.h5, permuted")
    assert_cache_reused(lambda: load_shapes3d(folder, log), lines,
                        folder / "cache" / "shapes3d_v1.npy")  # fmt: skip


def test_shapes3d_row_major_file_and_a_changed_file_rebuilds(tmp_path):
    folder = write_shapes3d(tmp_path)
    data = load_shapes3d(folder)
    assert data.describe()["version"].startswith("official 3dshapes.h5, row-major")
    assert np.array_equal(decode(data.read([0, 5, 143])), [0, 5, 143])
    (folder / "3dshapes.h5").unlink()
    order = np.arange(144)[::-1]
    write_shapes3d(folder, order=order, images=code_images(order) // 2)
    lines, log = logs()
    rebuilt = load_shapes3d(folder, log)
    assert any("building" in line for line in lines)
    assert np.array_equal(decode(rebuilt.read([0, 143])), [0, 71])


def test_shapes3d_missing_or_malformed_file_is_refused(tmp_path):
    with pytest.raises(DataNotFound) as missing:
        load_shapes3d(tmp_path)
    message = str(missing.value)
    assert str(tmp_path / "3dshapes.h5") in message
    assert "https://storage.googleapis.com/3d-shapes/3dshapes.h5" in message
    # Wrong image shape; labels not the full grid; not HDF5 at all.
    write_shapes3d(tmp_path, images=np.zeros((144, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"'images' is uint8\[144, 32, 32, 3\]"):
        load_shapes3d(tmp_path)
    (tmp_path / "3dshapes.h5").unlink()
    write_shapes3d(tmp_path, order=np.zeros(144, np.int64))
    with pytest.raises(ValueError, match="floor_hue 1 values, expected 2"):
        load_shapes3d(tmp_path)
    (tmp_path / "3dshapes.h5").write_bytes(b"not an h5 file")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load_shapes3d(tmp_path)
    assert not list((tmp_path / "cache").glob("*.npy")), "a failed build left a cache"
    assert not list((tmp_path / "cache").glob(".*.tmp")), "a temporary left behind"


def test_registered_loaders_want_the_official_sizes(tmp_path):
    write_shapes3d(tmp_path / "s")
    with pytest.raises(ValueError, match=r"expected uint8\[480000, 64, 64, 3\]"):
        load_source("shapes3d", tmp_path / "s", 64, 128)
    write_mpi3d(tmp_path / "m", "mpi3d_real")
    with pytest.raises(ValueError, match=r"expected uint8\[1036800, 64, 64, 3\]"):
        load_source("mpi3d_real", tmp_path / "m", 64, 128)
    write_smallnorb(tmp_path / "n")
    with pytest.raises(ValueError, match=r"expected \[24300\]"):
        load_source("smallnorb", tmp_path / "n", 64, 128)
    write_cars(tmp_path / "c", 2)
    with pytest.raises(
        ValueError, match="holds 2 .mat files; the official Cars3D has 183"
    ):
        load_source("cars3d", tmp_path / "c", 64, 128)
    for name in ("shapes3d", "mpi3d_toy", "smallnorb", "cars3d"):
        assert info(name).has_factors and info(name).image_size == 64
        assert not info(name).generated
    assert info("smallnorb").channels == 1 and info("cars3d").channels == 3
    assert not info("folder").has_factors and info("folder").channels == 3


# --- mpi3d ----------------------------------------------------------------------------

MPI3D_SMALL = (2, 3, 1, 2, 1, 4, 3)  # 144 images


def write_mpi3d(folder: Path, variant="mpi3d_toy", sizes=MPI3D_SMALL, images=None,
                compressed=False, key="images"):  # fmt: skip
    """<variant>.npz as published: `images` (N, 64, 64, 3) uint8 in row-major order
    (image i: code i); np.savez stores it, savez_compressed deflates it."""
    if images is None:
        images = code_images(np.arange(int(np.prod(sizes))))
    folder.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    save(folder / f"{variant}.npz", **{key: images})
    return folder


def load_mpi3d(folder, variant="mpi3d_toy", log=lambda m: None, sizes=MPI3D_SMALL):
    from utils.data.mpi3d import load_mpi3d

    return load_mpi3d(folder, variant, log=log, factor_sizes=sizes)


@pytest.mark.parametrize("compressed", [False, True])
def test_mpi3d_index_maps_to_its_image(tmp_path, compressed, monkeypatch):
    from utils.data import array_cache

    monkeypatch.setattr(array_cache, "CHUNK_BYTES", 5 * 64 * 64 * 3)  # 5-row chunks
    folder = write_mpi3d(tmp_path, "mpi3d_realistic", compressed=compressed)
    lines, log = logs()
    data = load_mpi3d(folder, "mpi3d_realistic", log)
    assert data.name == "mpi3d_realistic" and data.factor_sizes == MPI3D_SMALL
    assert data.factor_names == (
        "object_color", "object_shape", "object_size", "camera_height",
        "background_color", "horizontal_axis", "vertical_axis",
    )  # fmt: skip
    assert data.scored_names == [
        "object_color", "object_shape", "camera_height", "horizontal_axis",
        "vertical_axis",
    ]  # fmt: skip
    images = data.read(every_index(data))
    assert images.dtype == np.uint8 and images.shape == (144, 64, 64, 3)
    assert np.array_equal(decode(images), every_index(data))
    scored = np.array([[1, 2, 1, 3, 2]])
    expected = np.ravel_multi_index((1, 2, 0, 1, 0, 3, 2), MPI3D_SMALL)
    assert decode(data.read(data.index_of(scored))).tolist() == [expected]
    assert_cache_reused(lambda: load_mpi3d(folder, "mpi3d_realistic", log), lines,
                        folder / "cache" / "mpi3d_realistic_v1.npy")  # fmt: skip


def test_mpi3d_variants_are_registered_each_with_its_file(tmp_path):
    from utils.data import module_of

    for variant in ("mpi3d_toy", "mpi3d_realistic", "mpi3d_real"):
        with pytest.raises(DataNotFound) as missing:
            module_of(variant).load(tmp_path)
        message = str(missing.value)
        assert str(tmp_path / f"{variant}.npz") in message
        assert f"Final_Dataset/{variant}.npz" in message


def test_mpi3d_malformed_file_is_refused(tmp_path):
    write_mpi3d(tmp_path, key="imgs")
    with pytest.raises(ValueError, match=r"no 'images' array \(it holds imgs.npy\)"):
        load_mpi3d(tmp_path)
    write_mpi3d(tmp_path, images=np.zeros((144, 64, 64), np.uint8))
    with pytest.raises(ValueError, match=r"'images' is uint8\[144, 64, 64\]"):
        load_mpi3d(tmp_path)
    write_mpi3d(tmp_path, images=np.zeros((144, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="'images' is float32"):
        load_mpi3d(tmp_path)
    (tmp_path / "mpi3d_toy.npz").write_bytes(b"PK not really")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_mpi3d(tmp_path)
    for compressed in (False, True):  # a byte flipped in transit: its CRC fails
        write_mpi3d(tmp_path, compressed=compressed)
        data = bytearray((tmp_path / "mpi3d_toy.npz").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (tmp_path / "mpi3d_toy.npz").write_bytes(bytes(data))
        with pytest.raises(ValueError, match="it is damaged .*Bad CRC-32"):
            load_mpi3d(tmp_path)
    assert not list((tmp_path / "cache").glob("*.npy")), "a failed build left a cache"


def test_reading_every_image_keeps_them_out_of_resident_memory(tmp_path):
    """A pass over a cache (an epoch, a metric) must not make its bytes resident
    in the process, as a memory map's touched pages are: over MPI3D's 12.7 GB that
    would be 12.7 GB of RSS. The rows come through the page cache instead."""
    status = Path("/proc/self/status")
    if not status.exists() or "RssFile" not in status.read_text():
        pytest.skip("needs Linux's /proc/self/status")

    def resident_file_mb():
        line = next(x for x in status.read_text().splitlines() if "RssFile" in x)
        return int(line.split()[1]) / 1024

    sizes = (4, 4, 2, 2, 2, 4, 4)  # 2,048 images, 25 MB
    data = load_mpi3d(write_mpi3d(tmp_path, sizes=sizes), sizes=sizes)
    before = resident_file_mb()
    for start in range(0, data.num_images, 64):
        batch = data.read(np.arange(start, start + 64)[::-1])
        assert decode(batch[:1]).tolist() == [start + 63]
    assert resident_file_mb() - before < 5


# --- smallnorb ------------------------------------------------------------------------

NORB_SMALL = (2, 2, 2, 3, 2)  # category, instance, elevation, azimuth, lighting: 48
NORB_HALVES = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")


def norb_matrix(array: np.ndarray, magic=None) -> bytes:
    """NORB's binary matrix: int32 magic, ndim, max(3, ndim) dims, data (LE)."""
    magic = magic or (0x1E3D4C55 if array.dtype == np.uint8 else 0x1E3D4C54)
    dims = list(array.shape) + [1] * (3 - array.ndim)
    header = np.array([magic, array.ndim, *dims], "<i4").tobytes()
    return header + np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()


def norb_code(index) -> np.ndarray:
    return 5 * np.asarray(index) + 3  # distinct pixel values 3 … 238, never 0


def write_smallnorb(folder: Path, sizes=NORB_SMALL, gzipped=("training-dat",),
                    **changes):  # fmt: skip
    """The six smallNORB files: instance 1 in -training, 0 in -testing, each file's
    rows shuffled. The left image of grid index i is constant norb_code(i), the
    right one 255 minus it; `gzipped` files are written as .mat.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), 1)
    rng = np.random.default_rng(1)
    for half, instance in zip(NORB_HALVES, (1, 0), strict=True):
        rows = rng.permutation(np.flatnonzero(grid[:, 1] == instance))
        factors = grid[rows]
        left = np.broadcast_to(norb_code(rows)[:, None, None], (len(rows), 96, 96))
        dat = np.stack([left, 255 - left], 1).astype(np.uint8)
        info = np.column_stack(
            [factors[:, 1], factors[:, 2], 2 * factors[:, 3], factors[:, 4]]
        )
        matrices = {"dat": dat, "cat": factors[:, 0].astype(np.int32),
                    "info": info.astype(np.int32)}  # fmt: skip
        for kind, array in matrices.items():
            data = changes.get(f"{half.split('-')[-1]}-{kind}", norb_matrix(array))
            name = folder / f"smallnorb-{half}-{kind}.mat"
            if f"{half.split('-')[-1]}-{kind}" in gzipped:
                Path(f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                name.write_bytes(data)
    return folder


def load_smallnorb(folder, log=lambda m: None, sizes=NORB_SMALL):
    from utils.data.smallnorb import load_smallnorb

    return load_smallnorb(folder, log=log, factor_sizes=sizes)


def test_smallnorb_index_maps_to_its_image(tmp_path):
    folder = write_smallnorb(tmp_path)
    lines, log = logs()
    data = load_smallnorb(folder, log)
    assert data.name == "smallnorb" and data.image_shape == (64, 64, 1)
    assert data.factor_names == (
        "category", "instance", "elevation", "azimuth", "lighting"
    )  # fmt: skip
    assert data.scored_names == ["category", "elevation", "azimuth", "lighting"]
    images = data.read(every_index(data))
    assert images.dtype == np.uint8 and images.shape == (48, 64, 64, 1)
    # The left camera, resized: a constant image stays that constant.
    assert np.array_equal(images.reshape(48, -1).min(1), norb_code(every_index(data)))
    assert np.array_equal(images.reshape(48, -1).max(1), norb_code(every_index(data)))
    # index_of: the scored factors as asked, the instance a fixed function of them.
    rs = np.random.RandomState(0)
    scored = data.sample_factors(200, rs)
    indices = data.index_of(scored)
    classes = data.classes_of(indices)
    assert np.array_equal(classes[:, [0, 2, 3, 4]], scored)
    assert np.array_equal(data.index_of(scored), indices)  # the same every time
    assert set(classes[:, 1]) == {0, 1}  # both instances are drawn
    assert_cache_reused(lambda: load_smallnorb(folder, log), lines,
                        folder / "cache" / "smallnorb_v1.npy")  # fmt: skip


def test_smallnorb_resize_is_dlibs_lanczos_on_integers_clipped():
    """dlib resizes the int8-read bytes, which PIL takes as 32-bit mode "I"."""
    from utils.data.smallnorb import resize

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 96, 96), dtype=np.uint8)
    images[1, 30:60] = 255  # edges: Lanczos overshoots past 255 and below 0
    mine = resize(images)
    for image, got in zip(images, mine, strict=True):
        dlib = Image.fromarray(image.view(np.int8)).resize((64, 64), Image.LANCZOS)
        dlib = np.asarray(dlib)
        assert np.array_equal(got[..., 0], np.clip(dlib, 0, 255))
    assert mine.dtype == np.uint8 and mine.shape == (2, 64, 64, 1)


def test_smallnorb_missing_and_malformed_files_are_refused(tmp_path):
    with pytest.raises(DataNotFound) as missing:
        load_smallnorb(tmp_path)
    message = str(missing.value)
    for half in NORB_HALVES:
        for kind in ("dat", "cat", "info"):
            assert f"smallnorb-{half}-{kind}.mat" in message
    assert "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/" in message
    bad_magic = norb_matrix(np.zeros(24, np.int32), magic=0x1E3D4C51)
    write_smallnorb(tmp_path / "a", **{"training-cat": bad_magic})
    with pytest.raises(ValueError, match="magic number is 0x1e3d4c51, not 0x1e3d4c54"):
        load_smallnorb(tmp_path / "a")
    write_smallnorb(tmp_path / "b", **{"testing-dat": norb_matrix(
        np.zeros((24, 2, 64, 64), np.uint8))})  # fmt: skip
    with pytest.raises(ValueError, match=r"is \[24, 2, 64, 64\], expected \[24, 2, 96"):
        load_smallnorb(tmp_path / "b")
    write_smallnorb(tmp_path / "c", **{"testing-info": norb_matrix(
        np.ones((24, 4), np.int32))})  # fmt: skip
    with pytest.raises(ValueError, match="odd azimuths"):
        load_smallnorb(tmp_path / "c")
    write_smallnorb(tmp_path / "d", **{"training-dat": b"\x55\x4c"})
    with pytest.raises(ValueError, match="truncated"):
        load_smallnorb(tmp_path / "d")


# --- cars3d ---------------------------------------------------------------------------


def car_code(elevation, azimuth, car):
    """Distinct per (elevation, azimuth, car): channels car, azimuth, elevation."""
    return car + (azimuth << 8) + (elevation << 16)


def write_cars(folder: Path, num_cars=3, shape=(128, 128, 3, 24, 4)):
    """data/cars/car_NNN_mesh.mat as the archive unpacks: "im" (128, 128, 3, 24, 4)
    uint8, the render of (azimuth a, elevation e) constant car_code(e, a, car).
    Written in reverse name order, so that only sorting gives car i = i-th name."""
    cars = folder / "data" / "cars"
    cars.mkdir(parents=True, exist_ok=True)
    import scipy.io

    for car in reversed(range(num_cars)):
        im = np.zeros(shape, np.uint8)
        for a in range(min(24, shape[3])):
            for e in range(min(4, shape[4])):
                im[..., a, e] = code_images([car_code(e, a, car)], (1, 1, 3))[0]
        scipy.io.savemat(cars / f"car_{car + 1:03d}_mesh.mat", {"im": im})
    return folder


def test_cars3d_index_maps_to_its_image(tmp_path):
    from utils.data.cars3d import load_cars3d

    folder = write_cars(tmp_path, 3)
    lines, log = logs()
    data = load_cars3d(folder, log=log, num_cars=3)
    assert data.name == "cars3d" and data.factor_sizes == (4, 24, 3)
    assert data.factor_names == ("elevation", "azimuth", "object_type")
    images = data.read(every_index(data))
    assert images.dtype == np.uint8 and images.shape == (288, 64, 64, 3)
    expected = car_code(*np.unravel_index(every_index(data), (4, 24, 3)))
    assert np.array_equal(decode(images), expected)
    assert np.ptp(images.reshape(288, -1, 3), axis=1).max() == 0  # constant stays
    scored = np.array([[3, 17, 2]])
    assert decode(data.read(data.index_of(scored))).tolist() == [car_code(3, 17, 2)]
    assert_cache_reused(lambda: load_cars3d(folder, log=log, num_cars=3), lines,
                        folder / "cache" / "cars3d_v1.npy")  # fmt: skip


def test_cars3d_resize_is_dlibs_thumbnail(tmp_path):
    """dlib: thumbnail((64, 64, 3), ANTIALIAS) of each render (today's PIL takes
    only (64, 64)), i.e. Lanczos; ANTIALIAS was PIL's name for it."""
    import scipy.io

    from utils.data.cars3d import read_car

    im = np.random.default_rng(0).integers(0, 256, (128, 128, 3, 24, 4), np.uint8)
    scipy.io.savemat(tmp_path / "car.mat", {"im": im})
    mine = read_car(tmp_path / "car.mat")
    for elevation, azimuth in [(0, 0), (3, 23), (1, 7)]:
        thumbnail = Image.fromarray(im[..., azimuth, elevation])
        thumbnail.thumbnail((64, 64), Image.LANCZOS)
        assert np.array_equal(mine[elevation, azimuth], np.asarray(thumbnail))


def test_cars3d_missing_and_malformed_files_are_refused(tmp_path):
    from utils.data.cars3d import load_cars3d

    with pytest.raises(DataNotFound) as missing:
        load_cars3d(tmp_path)
    message = str(missing.value)
    assert str(tmp_path / "cars/*.mat") in message and "data/cars/*.mat" in message
    assert "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz" in message
    write_cars(tmp_path, 1, shape=(64, 64, 3, 24, 4))
    with pytest.raises(ValueError, match=r"'im' is uint8\[64, 64, 3, 24, 4\]"):
        load_cars3d(tmp_path, num_cars=1)
    # A file an unpacking cut short to nothing.
    (tmp_path / "data" / "cars" / "car_001_mesh.mat").write_bytes(b"")
    with pytest.raises(ValueError, match="car_001_mesh.mat is not an official Cars3D"):
        load_cars3d(tmp_path, num_cars=1)


# --- folder ---------------------------------------------------------------------------


def write_folder(folder: Path, count=90, broken=2):
    """`count` JPEGs and PNGs of assorted sizes in nested folders, `broken` files
    that are not images, and files that must be ignored."""
    rng = np.random.default_rng(0)
    for i in range(count):
        sub = folder / ("a" if i % 3 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        size = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        picture = np.full((*size[::-1], 3), rng.integers(0, 255, 3), np.uint8)
        suffix = ".png" if i % 2 else ".JPG"
        Image.fromarray(picture).save(sub / f"img{i:03d}{suffix}")
    for i in range(broken):
        (folder / "a" / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    (folder / ".hidden").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / ".hidden" / "x.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_is_every_image_under_it_cached_and_split(tmp_path):
    from utils.data.folder import load_folder

    folder = write_folder(tmp_path / "mine")
    lines, log = logs()
    data = load_folder(folder, image_size=16, crop_size=64, log=log, num_workers=1)
    assert any("skipped 2 unreadable file(s) of 92" in line for line in lines), lines
    assert len(data) == 90 and data.image_shape == (16, 16, 3)
    assert data.names[0] == "a/img001.png" and "b/c/img000.JPG" in data.names
    assert not any(".hidden" in name for name in data.names)
    assert {k: len(v) for k, v in data.splits.items()} == {
        "train": 72,
        "validation": 9,
        "test": 9,
    }
    assert data.read([0, 5]).dtype == np.uint8
    assert data.has_factors is False
    with pytest.raises(NoGroundTruth, match="has no ground-truth factors"):
        require_factors(data)
    cache = folder / "cache" / "folder_16px_crop64.npy"
    again = assert_cache_reused(
        lambda: load_folder(folder, image_size=16, crop_size=64, log=log), lines, cache
    )
    assert any("2 unreadable file(s) of 92 were skipped" in line for line in lines)
    assert {k: v.tolist() for k, v in again.splits.items()} == {
        k: v.tolist() for k, v in data.splits.items()
    }
    # Another image: the listing changed, so the cache is rebuilt.
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / "a" / "new.png")
    lines.clear()
    assert len(load_folder(folder, image_size=16, crop_size=64, log=log,
                           num_workers=1)) == 91  # fmt: skip
    assert any("building" in line for line in lines)


def test_folder_without_images_says_what_it_wants(tmp_path):
    for folder in (tmp_path / "absent", tmp_path):
        with pytest.raises(DataNotFound) as refused:
            load_source("folder", folder, 64, 128)
        assert str(folder) in str(refused.value)
        assert "every image file (.jpg, .jpeg, .png) under" in str(refused.value)


# --- main.py end to end ---------------------------------------------------------------

TINY = [
    "--image_size=64", "--latent_size=3", "--batch_size=8",
    "--conv_layers=[[4,4,2],[4,4,2],[4,4,2],[4,4,2]]", "--dense_layers=[[16]]",
    "--validation_batches=1", "--validation_step=2", "--plot_step=100",
    "--checkpoint_step=2", "--num_steps=2", "--metrics_at_end=False",
]  # fmt: skip
# Grids whose splits hold a batch of 8 (a tenth of the images validate).
MAIN_NORB = (2, 2, 3, 4, 2)  # 96 images
MAIN_CARS = 1  # 96 images


def small_files(name, folder: Path, monkeypatch) -> dict:
    """`name`'s official files, small, written in `folder`, and its registered
    loader made to accept their grid (the loaders' test hook). Returns the
    factors they hold, {name: size}."""
    from utils.data import cars3d, module_of, mpi3d, shapes3d, smallnorb

    if name == "shapes3d":
        write_shapes3d(folder)
        load = partial(shapes3d.load_shapes3d, factor_sizes=SHAPES3D_SMALL)
        names, sizes = shapes3d.FACTOR_NAMES, SHAPES3D_SMALL
    elif name.startswith("mpi3d"):
        write_mpi3d(folder, name)
        load = partial(mpi3d.load_mpi3d, variant=name, factor_sizes=MPI3D_SMALL)
        names, sizes = mpi3d.FACTOR_NAMES, MPI3D_SMALL
    elif name == "smallnorb":
        write_smallnorb(folder, MAIN_NORB)
        load = partial(smallnorb.load_smallnorb, factor_sizes=MAIN_NORB)
        names, sizes = smallnorb.FACTOR_NAMES, MAIN_NORB
    else:
        write_cars(folder, MAIN_CARS)
        load = partial(cars3d.load_cars3d, num_cars=MAIN_CARS)
        names, sizes = cars3d.FACTOR_NAMES, (4, 24, MAIN_CARS)

    def small(data_dir, log=print, **_):
        return load(data_dir, log=log)

    monkeypatch.setattr(module_of(name), "load", small)
    return dict(zip(names, sizes, strict=True))


@pytest.mark.parametrize(
    "name",
    [n if n == "smallnorb" else pytest.param(n, marks=pytest.mark.slow)
     for n in ("smallnorb", "shapes3d", "mpi3d_toy", "cars3d")],
)  # fmt: skip
def test_a_short_run_trains_then_evaluates(name, tmp_path, monkeypatch, capsys):
    """main.py in this process (TensorFlow starts once for all of them)."""
    import main
    from utils.metrics import headline_names

    factors = small_files(name, tmp_path / "data", monkeypatch)
    out = tmp_path / "predictions"
    common = [f"--data_dir={tmp_path / 'data'}", f"--predictions_dir={out}",
              "--run_name=r"]  # fmt: skip
    assert main.main([f"--dataset={name}", *TINY, *common]) == 0, capsys.readouterr()
    assert "Data: official" in capsys.readouterr().out
    assert (out / "r" / "checkpoints" / "latest" / "checkpoint").exists()
    assert main.main(["--mode=evaluate", *common, "--metrics_protocol=fast"]) == 0
    metrics = json.loads((out / "r" / "metrics.json").read_text())
    for key in headline_names(("fast",)):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    fast = metrics["protocols"]["fast"]
    assert fast["step"] == 2
    assert fast["provenance"]["dataset"]["name"] == name
    assert fast["provenance"]["dataset"]["factors"] == factors


@pytest.mark.slow
def test_train_on_a_folder_then_evaluate_is_refused(tmp_path, capsys):
    import main

    data = write_folder(tmp_path / "photos", count=90)
    out = tmp_path / "predictions"
    common = [f"--data_dir={data}", f"--predictions_dir={out}", "--run_name=f"]
    trained = main.main(["--dataset=folder", *TINY, "--image_size=32", *common])
    assert trained == 0, capsys.readouterr()
    assert "skipped 2 unreadable file(s) of 92" in capsys.readouterr().out
    assert (out / "f" / "checkpoints" / "latest" / "checkpoint").exists()
    assert main.main(["--mode=evaluate", *common]) == 2
    refused = capsys.readouterr().err
    assert "ground-truth factors" in refused and "folder" in refused
    assert not (out / "f" / "metrics.json").exists()


REFUSE_WITHOUT_TENSORFLOW = """
import json, sys
sys.path.insert(0, {repo!r})
import main
codes = {{}}
for name, args in json.loads(sys.argv[1]).items():
    print(f"=== {{name}}", file=sys.stderr)
    codes[name] = main.main(args)
heavy = sorted({{"tensorflow", "keras"}} & set(sys.modules))
print(json.dumps({{"codes": codes, "heavy": heavy}}))
"""


def test_missing_files_are_refused_before_tensorflow_starts(tmp_path):
    """`main.py --dataset=X --data_dir=<empty>`: exit 2 with what to download,
    from where and where to put it, in seconds: TensorFlow never imported. And
    metrics on a folder of images: refused the same way."""
    empty, out = tmp_path / "empty", tmp_path / "predictions"
    empty.mkdir()
    photos = write_folder(tmp_path / "photos", count=3, broken=0)
    (out / "f").mkdir(parents=True)
    (out / "f" / "params.json").write_text(
        json.dumps({"dataset": "folder", "data_dir": str(photos)})
    )
    names = ("shapes3d", "mpi3d_toy", "mpi3d_realistic", "mpi3d_real", "smallnorb",
             "cars3d", "folder")  # fmt: skip
    runs = {name: [f"--dataset={name}", f"--data_dir={empty}",
                   f"--predictions_dir={out}"] for name in names}  # fmt: skip
    runs["evaluate folder"] = ["--mode=evaluate", "--run_name=f",
                               f"--predictions_dir={out}"]  # fmt: skip
    script = REFUSE_WITHOUT_TENSORFLOW.format(repo=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(runs)], capture_output=True,
        text=True, cwd="/", timeout=300,
    )  # fmt: skip
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == [], result.stderr[-3000:]
    assert answer["codes"] == dict.fromkeys(runs, 2), result.stderr[-3000:]
    messages = dict(
        part.split("\n", 1) for part in result.stderr.split("=== ")[1:]
    )  # name → what it printed
    put = f"Put the file(s) in {empty}"  # the file, where to get it, where to put it
    expected = {
        "shapes3d": [f"{empty / '3dshapes.h5'}\n",
                     "https://storage.googleapis.com/3d-shapes/3dshapes.h5", put],
        "smallnorb": [str(empty / "smallnorb-5x01235x9x18x6x2x96x96-testing-info"),
                      "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/", put],
        "cars3d": [str(empty / "data/cars/*.mat"),
                   "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
                   f"(or move its 183 files to cars/) in {empty}"],
        "folder": [f"{empty} holds no image files", "point it at a folder"],
        "evaluate folder": ["the metrics need ground-truth factors, which folder"],
        **{v: [str(empty / f"{v}.npz"), f"Final_Dataset/{v}.npz", put]
           for v in ("mpi3d_toy", "mpi3d_realistic", "mpi3d_real")},
    }  # fmt: skip
    for name, needles in expected.items():
        for needle in needles:
            assert needle in messages[name], (name, needle, messages[name])
        assert "Traceback" not in messages[name]
    assert sorted(p.name for p in out.iterdir()) == ["f"]  # no run folder left
