import functools
import hashlib
import io
import pickle
import re
import struct
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import main_in_process

from utils.data import dsprites
from utils.data.dsprites import (
    FACTOR_SIZES,
    NUM_IMAGES,
    OFFICIAL_FILENAME,
    DSprites,
    classes_to_index,
    factor_values,
    index_to_classes,
    load_dsprites,
    render,
)

# The official animation (Apache-2.0, deepmind/dsprites-dataset), see data/README.md.
OFFICIAL_GIF = Path(__file__).parent / "data" / "dsprites_official.gif"
# sha256 of the packed images in dsprites_generated_v1.npy: the file name carries a
# version, so pixels must not change unnoticed (say, by another inside-the-outline
# test); if they must, bump GENERATED_FILENAME's version and this.
V1_DATASET_SHA256 = "2cac5248d0ea0872a42502266018a2ac55efe27fbdde47b9c0278a8232541a6a"
# Mean areas in px of each shape at scale 0.5 and 1, measured on the official
# animation (OFFICIAL_GIF): square ≈ 10 → 20 px a side, ellipse ≈ 12×8 → 24×16,
# heart ≈ 10×9 → 19×19.
REFERENCE_AREAS = {0: (100, 368), 1: (76, 288), 2: (58, 226)}  # scale 0.5, scale 1


def grid(**fixed):
    """Every class combination of the named factors, the others fixed (default 0)."""
    names = ["color", "shape", "scale", "orientation", "pos_x", "pos_y"]
    axes = [np.atleast_1d(fixed.get(n, 0)) for n in names]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 6)


class Log(list):
    def __call__(self, message):
        self.append(message)

    def text(self) -> str:
        return "\n".join(self)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def centre_of_mass(image):
    rows, cols = np.nonzero(image)
    return cols.mean(), rows.mean()  # x, y


# --- index <-> classes


def test_known_indices_follow_official_order():
    assert classes_to_index(np.array([[0, 2, 5, 39, 31, 31]]))[0] == NUM_IMAGES - 1
    assert classes_to_index(np.array([[0, 1, 0, 0, 0, 0]]))[0] == 245_760
    assert classes_to_index(np.array([[0, 0, 1, 2, 3, 4]]))[0] == 40960 + 2048 + 96 + 4
    # posY varies fastest, then posX
    np.testing.assert_array_equal(
        index_to_classes(np.array([1, 32]))[:, 4:], [[0, 1], [1, 0]]
    )


def test_index_round_trip():
    index = np.random.default_rng(0).integers(0, NUM_IMAGES, 1000)
    c = index_to_classes(index)
    assert c.shape == (1000, 6) and c.dtype == np.int64
    assert (c >= 0).all() and (c < FACTOR_SIZES).all()
    np.testing.assert_array_equal(classes_to_index(c), index)
    assert classes_to_index(c).dtype == np.int64
    with pytest.raises(ValueError):
        classes_to_index(np.array([[0, 3, 0, 0, 0, 0]]))  # shape class 3 does not exist


def test_factor_values_are_the_official_ones():
    values = factor_values()
    assert [len(v) for v in values] == list(FACTOR_SIZES)
    np.testing.assert_array_equal(values[1], [1, 2, 3])
    np.testing.assert_allclose(values[2], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert values[3][0] == 0 and values[3][-1] == pytest.approx(2 * np.pi)  # both ends
    np.testing.assert_allclose(np.diff(values[3]), 2 * np.pi / 39)
    np.testing.assert_allclose(values[4], np.arange(32) / 31)
    np.testing.assert_array_equal(values[4], values[5])


# --- the renderer


@pytest.fixture(scope="module")
def at_origin():
    """(3, 6, 40, 64, 64) bool: every shape, scale and orientation at position 0, 0."""
    images = render(grid(shape=range(3), scale=range(6), orientation=range(40)))
    return images.reshape(3, 6, 40, 64, 64).astype(bool)


def test_render_is_binary_uint8_and_never_touches_the_border():
    every_mask = {"shape": range(3), "scale": range(6), "orientation": range(40)}
    for pos_x, pos_y in [(0, 0), (0, 31), (31, 0), (31, 31)]:
        images = render(grid(**every_mask, pos_x=pos_x, pos_y=pos_y))
        assert images.shape == (720, 64, 64) and images.dtype == np.uint8
        assert set(np.unique(images)) == {0, 1}
        assert images.sum(axis=(1, 2)).min() > 0
        border = images[:, [0, -1], :].sum() + images[:, :, [0, -1]].sum()
        assert border == 0, f"a shape touches the border at position {pos_x, pos_y}"


def test_areas_match_the_official_animation(at_origin):
    for shape, (small, large) in REFERENCE_AREAS.items():
        areas = at_origin[shape].sum(axis=(2, 3)).mean(axis=1)  # mean over orientations
        assert areas[0] == pytest.approx(small, rel=0.15), f"shape {shape} at scale 0.5"
        assert areas[-1] == pytest.approx(large, rel=0.15), f"shape {shape} at scale 1"
        assert (np.diff(areas) > 0).all()  # grows with scale


def test_position_moves_the_centre_from_15_5_to_47_5():
    expected = 15.5 + np.arange(32) * 32 / 31
    along_x = render(grid(scale=5, pos_x=range(32)))  # square, posY 0
    along_y = render(grid(scale=5, pos_y=range(32)))
    x = np.array([centre_of_mass(im) for im in along_x])
    y = np.array([centre_of_mass(im) for im in along_y])
    np.testing.assert_allclose(x[:, 0], expected, atol=0.5)  # x = column, left to right
    np.testing.assert_allclose(x[:, 1], 15.5)
    np.testing.assert_allclose(y[:, 1], expected, atol=0.5)  # y = row, top to bottom
    np.testing.assert_allclose(y[:, 0], 15.5)


def test_rotation_symmetries(at_origin):
    square, ellipse, heart = at_origin[:, 5]
    # Orientations are 2π/39 apart: 10 steps ≈ 92°, 20 steps ≈ 185°.
    assert iou(square[0], square[10]) > 0.85
    assert iou(ellipse[0], ellipse[20]) > 0.85
    assert iou(ellipse[0], ellipse[10]) < 0.5
    assert iou(heart[0], heart[20]) < 0.6
    for shape in at_origin:
        np.testing.assert_array_equal(shape[:, 0], shape[:, -1])  # 0 and 2π


def test_shapes_differ(at_origin):
    for scale in (0, 5):
        square, ellipse, heart = at_origin[:, scale, 0]
        assert max(iou(square, ellipse), iou(square, heart), iou(ellipse, heart)) < 0.9


def test_heart_turns_counter_clockwise_with_lobes_up(at_origin):
    heart = at_origin[2, 5]
    x0, y0 = centre_of_mass(heart[0])
    x10, _ = centre_of_mass(heart[10])
    assert y0 < 15.0 and abs(x0 - 15.5) < 0.1  # the lobes hold more area than the tip
    assert x10 < 14.5  # turned ~90° counter-clockwise on screen: lobes to the left


def test_matches_the_official_animation(at_origin):
    imageio = pytest.importorskip("imageio.v3")
    gif = imageio.imread(OFFICIAL_GIF, index=None) > 0
    # Frames at position (0, 0): scale 0.5..1 at orientation 0, then the 40
    # orientations at scale 1, for heart, ellipse and square.
    first_frames = {2: (0, 18), 1: (192, 210), 0: (256, 274)}
    for shape, (scales_at, orientations_at) in first_frames.items():
        pairs = [(gif[scales_at + s], at_origin[shape, s, 0]) for s in range(6)]
        pairs += [(gif[orientations_at + k], at_origin[shape, 5, k]) for k in range(40)]
        assert np.mean([iou(a, b) for a, b in pairs]) > 0.97, f"shape {shape}"
    # posY runs down the image: frames 58..89 move the heart from posY 0 to 31.
    heart_y = [centre_of_mass(gif[58 + i])[1] for i in (0, 31)]
    ours_y = [
        centre_of_mass(im)[1]
        for im in render(grid(shape=2, scale=5, orientation=39, pos_y=[0, 31]))
    ]
    np.testing.assert_allclose(ours_y, heart_y, atol=0.5)


# --- the official npz


def write_official_npz(path, n=10, compressed=True, drop=None, **replace):
    c = index_to_classes(np.arange(n))
    arrays = {
        "imgs": render(c),
        "latents_classes": c,
        "latents_values": np.stack(
            [v[c[:, i]] for i, v in enumerate(factor_values())], 1
        ),
        "metadata": np.array({"description": "tiny test copy"}, dtype=object),
    }
    arrays.update(replace)
    arrays.pop(drop, None)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


@pytest.mark.parametrize("compressed", [True, False])
def test_read_official_packs_the_images(tmp_path, compressed):
    path = tmp_path / OFFICIAL_FILENAME
    arrays = write_official_npz(path, n=10, compressed=compressed)
    packed, c, values = dsprites._read_official(path, num_images=10, chunk_rows=3)
    assert packed.shape == (10, 512) and packed.dtype == np.uint8
    np.testing.assert_array_equal(
        np.unpackbits(packed, axis=1).reshape(10, 64, 64), arrays["imgs"]
    )
    np.testing.assert_array_equal(c, arrays["latents_classes"])
    np.testing.assert_array_equal(values, arrays["latents_values"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"drop": "latents_classes"}, "no latents_classes"),
        ({"imgs": np.zeros((10, 32, 32), np.uint8)}, "imgs is uint8"),
        ({"imgs": np.zeros((10, 64, 64), np.float32)}, "imgs is float32"),
        ({"latents_values": np.zeros((10, 5))}, "latents_values is float64"),
        ({"latents_classes": index_to_classes(np.arange(10))[::-1]}, "official order"),
    ],
)
def test_malformed_official_npz_is_a_clear_error(tmp_path, change, message):
    path = tmp_path / OFFICIAL_FILENAME
    write_official_npz(path, n=10, **change)
    with pytest.raises(ValueError, match=message) as error:
        dsprites._read_official(path, num_images=10)
    assert str(path) in str(error.value) and "Delete it" in str(error.value)


def test_load_rejects_an_official_file_of_the_wrong_size(tmp_path):
    write_official_npz(tmp_path / OFFICIAL_FILENAME, n=10)
    with pytest.raises(ValueError, match=f"expected {NUM_IMAGES}x6") as error:
        load_dsprites(tmp_path, log=lambda message: None)
    assert OFFICIAL_FILENAME in str(error.value)


# --- the generated cache


def test_generated_cache_is_written_once_and_atomically(tmp_path, monkeypatch):
    calls = []
    tiny = np.arange(4 * 512, dtype=np.uint8).reshape(4, 512)
    monkeypatch.setattr(dsprites, "generate_packed", lambda: calls.append(1) or tiny)
    cache, messages = tmp_path / dsprites.GENERATED_FILENAME, []
    np.testing.assert_array_equal(
        dsprites._load_generated(cache, messages.append, 4), tiny
    )
    assert cache.exists() and len(calls) == 1
    assert any("generating" in m for m in messages)
    assert re.fullmatch(
        rf"wrote {re.escape(str(cache))} \(4 images, 0 MB\) in [\d.]+ s", messages[-1]
    )
    np.testing.assert_array_equal(
        dsprites._load_generated(cache, messages.append, 4), tiny
    )
    assert len(calls) == 1  # the second load read the cache
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # no temporary file


def test_interrupted_generation_leaves_no_file(tmp_path, monkeypatch):
    def interrupted_save(file, array):
        file.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(
        dsprites, "generate_packed", lambda: np.zeros((4, 512), np.uint8)
    )
    monkeypatch.setattr(np, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        dsprites._load_generated(tmp_path / dsprites.GENERATED_FILENAME, print)
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_waits_for_the_generation_then_loads_it(tmp_path, monkeypatch):
    cache, tiny = tmp_path / dsprites.GENERATED_FILENAME, np.ones((4, 512), np.uint8)
    generating, finish, calls = threading.Event(), threading.Event(), []

    def slow_generation():
        calls.append(1)
        generating.set()
        finish.wait(10)
        return tiny

    monkeypatch.setattr(dsprites, "generate_packed", slow_generation)
    first, second, results = Log(), Log(), {}

    def run(log):
        results[id(log)] = dsprites._load_generated(cache, log, 4)

    threads = [threading.Thread(target=run, args=(log,)) for log in (first, second)]
    threads[0].start()
    assert generating.wait(10)
    threads[1].start()
    deadline = time.monotonic() + 5
    while "waiting" not in second.text() and time.monotonic() < deadline:
        time.sleep(0.01)
    finish.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1, "both runs generated the dataset"
    assert f"waiting: another process is building {cache}" in second.text()
    for log in (first, second):
        np.testing.assert_array_equal(results[id(log)], tiny)
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # lock removed


def test_the_next_generation_removes_a_killed_ones_temporaries(tmp_path, monkeypatch):
    cache = tmp_path / dsprites.GENERATED_FILENAME
    leftovers = [
        tmp_path / f"{cache.name}.4242.tmp",  # what it wrote before atomic_writer
        tmp_path / f".{cache.name}.4242.0123abcd.tmp",  # atomic_writer's
    ]
    others = [tmp_path / "notes.4242.tmp", tmp_path / f".{cache.name}.notes.tmp"]
    for path in leftovers + others:
        path.write_bytes(b"54 MB of a killed generation")
    monkeypatch.setattr(
        dsprites, "generate_packed", lambda: np.ones((4, 512), np.uint8)
    )
    log = Log()
    dsprites._load_generated(cache, log)
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in others)  # not a generation's names
    assert all(f"removing {path.name}, left by" in log.text() for path in leftovers)


def test_load_dsprites_generates_then_reuses_the_cache(tmp_path, monkeypatch):
    calls = []
    blank = np.zeros((NUM_IMAGES, 512), np.uint8)
    monkeypatch.setattr(dsprites, "generate_packed", lambda: calls.append(1) or blank)
    data_dir, messages = tmp_path / "new" / "data", []
    data = load_dsprites(data_dir, log=messages.append)
    assert data.source == f"generated (cache: {data_dir / dsprites.GENERATED_FILENAME})"
    assert any("generating dSprites (737,280 images)" in m for m in messages)
    data = load_dsprites(data_dir, log=messages.append)
    assert len(calls) == 1 and data.packed.shape == (NUM_IMAGES, 512)
    (data_dir / dsprites.GENERATED_FILENAME).unlink()  # pytest keeps old tmp folders


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz_bytes(**members) -> bytes:
    """An npz whose members are these bytes (key → the bytes of key.npy)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as npz:
        for key, data in members.items():
            npz.writestr(f"{key}.npy", data)
    return buffer.getvalue()


TINY = np.arange(4 * 512).astype(np.uint8).reshape(4, 512)
# What may be found where the generated cache belongs → what the warning says.
DAMAGED_CACHES = {
    "truncated": (npy_bytes(TINY)[:-100], "truncated: 1,948 of 2,048 bytes"),
    "zero bytes": (b"", "not a .npy file"),
    "a pickle": (pickle.dumps({"imgs": TINY}), "not a .npy file"),
    "an object array": (npy_bytes(np.array([None] * 4, object)), "object[4]"),
    "an npz": (npz_bytes(imgs=npy_bytes(TINY)), "not a .npy file"),
    "too few rows": (npy_bytes(TINY[:3]), "uint8[3, 512], expected 4x512 uint8"),
    "floats": (npy_bytes(TINY.astype(np.float32)), "float32[4, 512]"),
    "Fortran order": (npy_bytes(np.asfortranarray(TINY)), "in Fortran order"),
}


@pytest.mark.parametrize("found", DAMAGED_CACHES)
def test_a_damaged_generated_cache_is_generated_again(tmp_path, monkeypatch, found):
    """The generated cache is the repo's own file: whatever it holds, if it is not
    what generation writes it is generated again, saying which file and why."""
    contents, problem = DAMAGED_CACHES[found]
    cache = tmp_path / dsprites.GENERATED_FILENAME
    cache.write_bytes(contents)
    monkeypatch.setattr(dsprites, "generate_packed", lambda: TINY)
    log = Log()
    np.testing.assert_array_equal(dsprites._load_generated(cache, log, 4), TINY)
    assert f"WARNING: {cache} is damaged ({problem}" in log.text()
    assert "generating it again" in log.text() and "allow_pickle" not in log.text()
    np.testing.assert_array_equal(np.load(cache), TINY)  # replaced, whole
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # no temporary left


def test_load_dsprites_generates_a_damaged_cache_again(tmp_path, monkeypatch):
    cache = tmp_path / dsprites.GENERATED_FILENAME
    np.save(cache, TINY)  # 4 rows, not 737,280
    blank = np.zeros((NUM_IMAGES, 512), np.uint8)
    monkeypatch.setattr(dsprites, "generate_packed", lambda: blank)
    log = Log()
    assert load_dsprites(tmp_path, log=log).packed.shape == (NUM_IMAGES, 512)
    assert f"{cache} is damaged (uint8[4, 512], expected 737280x512" in log.text()
    assert np.load(cache, mmap_mode="r").shape == (NUM_IMAGES, 512)
    cache.unlink()  # pytest keeps old tmp folders


def invert_member_bytes(npz: bytes, member: str) -> bytes:
    """`npz` with 8 bytes in the middle of `member`'s stored data inverted."""
    with zipfile.ZipFile(io.BytesIO(npz)) as opened:
        info = opened.getinfo(member)
    name_size, extra_size = struct.unpack_from("<2H", npz, info.header_offset + 26)
    middle = info.header_offset + 30 + name_size + extra_size + info.compress_size // 2
    inverted = bytes(b ^ 0xFF for b in npz[middle : middle + 8])
    return npz[:middle] + inverted + npz[middle + 8 :]


def official_members() -> dict:
    """The .npy bytes of each array of a tiny official npz (10 images)."""
    c = index_to_classes(np.arange(10))
    values = np.stack([v[c[:, i]] for i, v in enumerate(factor_values())], 1)
    arrays = {"imgs": render(c), "latents_classes": c, "latents_values": values}
    return {key: npy_bytes(array) for key, array in arrays.items()}


def damaged_official() -> dict:
    """What may be found under the official npz's name → what the message says."""
    buffer = io.BytesIO()
    write_official_npz(buffer, n=10)
    good = buffer.getvalue()
    members = official_members()
    classes = members["latents_classes"]
    objects = npy_bytes(np.full((10, 6), None, object))
    return {
        "truncated": (good[: len(good) // 2], "it is not a whole .npz (zip) file"),
        "zero bytes": (b"", "it is not a whole .npz (zip) file"),
        "a pickle": (pickle.dumps({"imgs": 0}), "it is not a whole .npz (zip) file"),
        "an .npy": (npy_bytes(np.zeros(3)), "it is not a whole .npz (zip) file"),
        "a folder": (None, "it is a folder"),
        "pickled latents_classes": (
            npz_bytes(**members | {"latents_classes": objects}),
            "latents_classes is object[10, 6], expected 10x6 integer",
        ),
        "imgs not an .npy": (
            npz_bytes(**members | {"imgs": b"garbage"}),
            "imgs is not a readable .npy array",
        ),
        "latents_classes truncated": (
            npz_bytes(**members | {"latents_classes": classes[:200]}),
            "latents_classes is truncated",
        ),
        "imgs damaged": (invert_member_bytes(good, "imgs.npy"), "it is damaged ("),
        "no latents_values": (
            npz_bytes(imgs=members["imgs"], latents_classes=classes),
            "it has no latents_values array",
        ),
    }


DAMAGED_OFFICIAL = damaged_official()


def main_py(capsys, data_dir: Path, out: Path) -> tuple[int, str]:
    return main_in_process(
        capsys, "--dataset=dsprites", f"--data_dir={data_dir}",
        f"--predictions_dir={out}",
        "--run_name=r",
    )  # fmt: skip


@pytest.mark.parametrize("found", DAMAGED_OFFICIAL)
def test_a_damaged_official_npz_is_refused_naming_it_and_the_fix(
    tmp_path, capsys, monkeypatch, found
):
    """Whatever bytes (or folder) are under the official npz's name: main.py
    exits 2 saying which file, what is wrong and what to do, never a traceback
    nor advice about allow_pickle."""
    contents, problem = DAMAGED_OFFICIAL[found]
    data_dir = tmp_path / "data"
    path = data_dir / OFFICIAL_FILENAME
    if contents is None:
        path.mkdir(parents=True)
    else:
        data_dir.mkdir()
        path.write_bytes(contents)
    # A whole official file is 737,280 images (3 GB): these have 10.
    tiny = functools.partial(dsprites._read_official, num_images=10)
    monkeypatch.setattr(dsprites, "_read_official", tiny)
    code, err = main_py(capsys, data_dir, tmp_path / "predictions")
    assert code == 2
    assert f"{path} is not the official dSprites file: {problem}" in err
    assert "Delete it" in err and "download it again" in err
    assert "allow_pickle" not in err
    assert sorted(p.name for p in data_dir.iterdir()) == [OFFICIAL_FILENAME]


def test_a_folder_where_the_generated_cache_belongs_is_refused(tmp_path, capsys):
    cache = tmp_path / dsprites.GENERATED_FILENAME
    (cache / "notes").mkdir(parents=True)  # someone's, not ours to delete
    code, err = main_py(capsys, tmp_path, tmp_path / "predictions")
    assert code == 2
    assert f"{cache} is a folder, where the generated dSprites belong" in err
    assert "move or delete it" in err
    assert (cache / "notes").is_dir()


# --- the dataset object


@pytest.fixture(scope="module")
def dataset():
    """The full-size dataset, blank except for 300 rendered images (fast to build)."""
    rendered = np.random.default_rng(1).choice(NUM_IMAGES, 300, replace=False)
    packed = np.zeros((NUM_IMAGES, 512), np.uint8)
    packed[rendered] = np.packbits(
        render(index_to_classes(rendered)).reshape(300, -1), 1
    )
    return DSprites(packed, "test"), rendered


def test_read_returns_0_255_images_in_the_order_given(dataset):
    data, rendered = dataset
    images = data.read(rendered)
    assert images.shape == (300, 64, 64, 1) and images.dtype == np.uint8
    assert set(np.unique(images)) == {0, 255}
    np.testing.assert_array_equal(
        images[..., 0], render(index_to_classes(rendered)) * 255
    )
    np.testing.assert_array_equal(data.read(rendered[::-1]), images[::-1])
    c = index_to_classes(rendered[:7])
    np.testing.assert_array_equal(data.images_for_classes(c), images[:7])


def test_latents_agree_with_the_index(dataset):
    data, rendered = dataset
    assert data.latents_classes.shape == data.latents_values.shape == (NUM_IMAGES, 6)
    np.testing.assert_array_equal(
        data.latents_classes[rendered], index_to_classes(rendered)
    )
    c = data.latents_classes[rendered]
    for f, values in enumerate(factor_values()):
        np.testing.assert_array_equal(data.latents_values[rendered, f], values[c[:, f]])


def test_sample_factors_is_uniform_and_in_disentanglement_libs_draw_order(dataset):
    data, _ = dataset
    c = data.sample_factors(40_000, np.random.RandomState(3))
    scored = FACTOR_SIZES[1:]  # colour has one value and is not scored
    assert c.shape == (40_000, 5) and (c >= 0).all() and (c < scored).all()
    for f, size in enumerate(scored):
        counts = np.bincount(c[:, f], minlength=size)
        assert counts.min() > 0.7 * 40_000 / size
    # disentanglement_lib: one randint(size, size=n) per scored factor, in order.
    rs = np.random.RandomState(3)
    expected = np.stack([rs.randint(size, size=40_000) for size in scored], axis=1)
    np.testing.assert_array_equal(c, expected)
    index = data.index_of(c[:5])
    np.testing.assert_array_equal(data.classes_of(index)[:, 1:], c[:5])
    assert data.name == "dsprites" and data.scored_names[0] == "shape"


def test_splits_are_fixed_disjoint_and_complete(dataset):
    data, _ = dataset
    splits = data.splits
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [
        NUM_IMAGES - 10_000,
        5_000,
        5_000,
    ]
    everything = np.concatenate(list(splits.values()))
    np.testing.assert_array_equal(np.sort(everything), np.arange(NUM_IMAGES))
    for split in splits.values():
        assert split.dtype == np.int64 and (np.diff(split) > 0).all()
    other = DSprites(data.packed, "test", data.latents_classes, data.latents_values)
    for k in splits:
        np.testing.assert_array_equal(other.splits[k], splits[k])


def test_generate_packed_matches_render_and_v1(capsys):
    packed = dsprites.generate_packed()
    assert "rendering dSprites: 100%" in capsys.readouterr().err  # tqdm's bar
    assert packed.shape == (NUM_IMAGES, 512) and packed.dtype == np.uint8
    assert hashlib.sha256(packed.tobytes()).hexdigest() == V1_DATASET_SHA256
    index = np.random.default_rng(2).integers(0, NUM_IMAGES, 2000)
    images = render(index_to_classes(index)).reshape(len(index), -1)
    np.testing.assert_array_equal(np.packbits(images, axis=1), packed[index])
