"""The generated ground-truth datasets (utils/data/__init__.py DATASETS: dSprites,
its colour, noise and shape-less variants, disent's XYObject and XYSquares) and
Scream-dSprites on a painting the tests write: the same pixels for an index in any
process and any batching; the factor grid and index order their docstrings
document; each docstring's pixel recipe checked from first principles, not with
the module's helpers; the missing painting refused with the fix; and main.py
training and evaluating on each.

Every dSprites-based dataset reads dSprites' generated cache (377 MB, seconds to
build): one data_dir for the module, generated once, deleted at its end."""

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.data import DATASETS, DataNotFound, info, load_source

REPO = Path(__file__).resolve().parents[1]
# disentanglement_lib's bin/dlib_download_data fetches the painting from here.
SCREAM_URL = "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"

# What each module's docstring documents: factor names and sizes (row-major: the
# last factor varies fastest), images, images each in validation and test.
DSPRITES_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
DSPRITES_GRID = (DSPRITES_NAMES, (1, 3, 6, 40, 32, 32), 737_280, 5_000)
DOCUMENTED = {
    "dsprites": DSPRITES_GRID,
    "color_dsprites": DSPRITES_GRID,
    "noisy_dsprites": DSPRITES_GRID,
    "scream_dsprites": DSPRITES_GRID,
    "dsprites_noshape": (DSPRITES_NAMES, (1, 1, 6, 40, 32, 32), 245_760, 5_000),
    "xy_object": (("x", "y", "scale", "color"), (25, 25, 5, 24), 75_000, 2_500),
    "xy_squares": (("x_R", "y_R", "x_G", "y_G", "x_B", "y_B"), (8,) * 6, 262_144,
                   5_000),
}  # fmt: skip
NAMES = list(DOCUMENTED)
PAINTING_SIZE = (200, 300)  # rows, columns: fits THUMBNAIL, so PIL leaves it as is


def painting(shape=PAINTING_SIZE, seed=7) -> np.ndarray:
    """Uniform noise: no two 64×64 crops of it look alike."""
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One data_dir for the module: dSprites' cache is generated into it once
    (377 MB, removed at the end: pytest keeps old tmp folders), and the
    painting is written as scream.jpg (a PNG: lossless, so its pixels are known)."""
    folder = tmp_path_factory.mktemp("generated")
    Image.fromarray(painting()).save(folder / "scream.jpg", format="PNG")
    yield folder
    for cache in folder.glob("dsprites_generated_*.npy"):
        cache.unlink()


@pytest.fixture(scope="module")
def sources(data_dir):
    """name → its source, each loaded (through the registry) once."""
    loaded = {}

    def source(name):
        if name not in loaded:
            loaded[name] = load_source(name, data_dir, 64, 128, log=lambda m: None)
        return loaded[name]

    yield source
    loaded.clear()


def probe_indices(num_images: int) -> np.ndarray:
    """610 indices, unsorted: the last image twice (first and fifth), large ones,
    ones on both sides of the paint batches' edges (256, 512), random ones."""
    edges = [num_images - 1, 0, num_images // 2 + 1, 257, num_images - 1]
    more = [3, 255, 256, 511, 512, num_images - 2]
    picked = np.random.default_rng(11).integers(0, num_images, 599)
    return np.concatenate([edges, picked, more]).astype(np.int64)


def digests(images) -> list[str]:
    return [hashlib.sha256(image.tobytes()).hexdigest() for image in images]


# --- the same pixels for an index, in any process and batching ----------------------

READ_IN_ANOTHER_PROCESS = """
import hashlib, json, sys
import numpy as np
from utils.data import load_source
data_dir, probes, results = sys.argv[1:4]
out = {}
for name, indices in json.loads(open(probes).read()).items():
    source = load_source(name, data_dir, 64, 128, log=lambda message: None)
    images = source.read(np.array(indices))
    out[name] = {"version": source.version, "shape": list(images.shape),
                 "sha256": [hashlib.sha256(i.tobytes()).hexdigest() for i in images]}
    del source, images
open(results, "w").write(json.dumps(out))
"""


@pytest.fixture(scope="module")
def other_process(data_dir, tmp_path_factory):
    """What a fresh Python process reads at each dataset's probe indices: its
    version, shape, and each image's sha256."""
    folder = tmp_path_factory.mktemp("other_process")
    sizes = {name: DOCUMENTED[name][2] for name in NAMES}
    probes = {name: probe_indices(n).tolist() for name, n in sizes.items()}
    (folder / "probes.json").write_text(json.dumps(probes))
    results = folder / "results.json"
    done = subprocess.run(
        [sys.executable, "-c", READ_IN_ANOTHER_PROCESS, str(data_dir),
         str(folder / "probes.json"), str(results)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(results.read_text())


@pytest.mark.parametrize("name", NAMES)
def test_an_index_gives_the_same_pixels_in_any_process_and_batching(
    name, sources, other_process
):
    source = sources(name)
    indices = probe_indices(source.num_images)
    whole = source.read(indices)
    channels = info(name).channels
    assert whole.dtype == np.uint8 and whole.shape == (len(indices), 64, 64, channels)
    np.testing.assert_array_equal(whole[0], whole[4])  # the same index twice
    one_by_one = np.concatenate([source.read([i]) for i in indices])
    backwards = indices[::-1]
    in_sevens = np.concatenate(
        [source.read(backwards[s : s + 7]) for s in range(0, len(backwards), 7)]
    )[::-1]
    there = other_process[name]
    assert there["version"] == source.version
    assert there["shape"] == list(whole.shape)
    assert digests(whole) == there["sha256"]
    assert digests(one_by_one) == there["sha256"]
    assert digests(in_sevens) == there["sha256"]
    assert len(set(there["sha256"])) > 500  # not one blank image: indices differ


# --- the factor grid and the index order ------------------------------------------


def row_major(index: int, sizes) -> list[int]:
    """Classes of `index` when the last factor varies fastest, by hand."""
    classes = []
    for size in reversed(sizes):
        index, rest = divmod(index, size)
        classes.insert(0, rest)
    assert index == 0
    return classes


def test_every_generated_dataset_is_documented_here():
    generated = {name for name, (_, about) in DATASETS.items() if about.generated}
    # scream_dsprites is made here too, but from a painting the user supplies.
    assert generated | {"scream_dsprites"} == set(DOCUMENTED)
    assert not info("scream_dsprites").generated


@pytest.mark.parametrize("name", NAMES)
def test_factor_grid_and_index_order_are_the_documented_ones(name, sources):
    names, sizes, num_images, holdout = DOCUMENTED[name]
    source = sources(name)
    assert tuple(source.factor_names) == names
    assert tuple(source.factor_sizes) == sizes
    assert source.num_images == num_images == math.prod(sizes)
    assert source.image_shape == (64, 64, info(name).channels)
    assert info(name).image_size == 64 and info(name).has_factors
    assert source.scored_names == [
        n for n, s in zip(names, sizes, strict=True) if s > 1
    ]
    indices = [0, 1, num_images - 1, num_images // 3, 12_345 % num_images]
    expected = [row_major(i, sizes) for i in indices]
    np.testing.assert_array_equal(source.classes_of(np.array(indices)), expected)
    scored = np.array(expected)[:, np.asarray(sizes) > 1]
    np.testing.assert_array_equal(source.index_of(scored), indices)
    splits = source.splits
    assert [len(splits[k]) for k in ("validation", "test")] == [holdout, holdout]
    everything = np.concatenate([splits[k] for k in ("train", "validation", "test")])
    np.testing.assert_array_equal(np.sort(everything), np.arange(num_images))
    assert isinstance(source.version, str) and source.version


@pytest.mark.parametrize("name", NAMES)
def test_an_index_outside_the_grid_is_refused(name, sources):
    # Not wrapped around as numpy would (-1 → the last image): a metric or a
    # split that computed a wrong index must fail, not score another image.
    source = sources(name)
    for index in (-1, source.num_images):
        with pytest.raises((IndexError, ValueError)):
            source.read(np.array([0, index]))


# --- SplitMix64, as its author publishes it -------------------------------------------

MASK_64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def splitmix64(seed: int, n: int) -> int:
    """Output number n (0 = the first) of Vigna's splitmix64.c seeded with `seed`:
    its state after n + 1 increments, mixed."""
    z = (seed + (n + 1) * GAMMA) & MASK_64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK_64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK_64
    return z ^ (z >> 31)


def uniform(n: int) -> float:
    """An output as a float in [0, 1): its top 53 bits (utils/data/draws.py)."""
    return (n >> 11) * 2.0**-53


def seed_of(source) -> int:
    """The seed its `version` records: it alone must fix the nuisances."""
    found = re.search(r"\(seed (\d+)\)", source.version)
    assert found, f"{source.name}'s version {source.version!r} records no seed"
    return int(found.group(1))


def test_the_reference_splitmix64_gives_the_published_outputs():
    # splitmix64.c (Vigna), seeded 1234567: the test vector other ports check.
    published = [6457827717110365317, 3203168211198807973, 9817491932198370423,
                 4593380528125082431, 16408922859458223821]  # fmt: skip
    assert [splitmix64(1234567, n) for n in range(5)] == published


# --- dSprites and dsprites_noshape ----------------------------------------------------


def centre_of_mass(image):
    rows, columns = np.nonzero(image)
    return columns.mean(), rows.mean()  # x, y


def test_dsprites_pixels_are_0_or_255_and_posx_posy_move_columns_rows(sources):
    data = sources("dsprites")
    sizes = DOCUMENTED["dsprites"][1]
    # The square at scale 1, orientation 0, at posX, posY ∈ {0, 31}: its centre
    # goes from pixel 15.5 to 47.5 (the centre half of the image), x along columns.
    corners = [(0, 0), (31, 0), (0, 31), (31, 31)]
    index = [np.ravel_multi_index((0, 0, 5, 0, x, y), sizes) for x, y in corners]
    images = data.read(index)[..., 0]
    assert set(np.unique(images)) == {0, 255}
    for image, (x, y) in zip(images, corners, strict=True):
        centre = (15.5 + x * 32 / 31, 15.5 + y * 32 / 31)  # positions 32/31 px apart
        assert centre_of_mass(image) == pytest.approx(centre, abs=0.5)
    # Larger scale classes draw a larger shape, for each of the three shapes.
    for shape in range(3):
        scales = [
            np.ravel_multi_index((0, shape, s, 0, 9, 20), sizes) for s in range(6)
        ]
        areas = (data.read(scales) > 0).sum(axis=(1, 2, 3))
        assert (np.diff(areas) > 0).all(), (shape, areas)


def test_dsprites_noshape_is_dsprites_squares(sources):
    noshape, dsprites = sources("dsprites_noshape"), sources("dsprites")
    count = noshape.num_images
    indices = np.concatenate(
        [[0, count - 1], np.random.default_rng(4).integers(0, count, 300)]
    )
    np.testing.assert_array_equal(noshape.read(indices), dsprites.read(indices))
    theirs = dsprites.classes_of(indices)
    assert (theirs[:, 1] == 0).all()  # dSprites' shape class 0: the square
    ours = noshape.classes_of(indices)
    np.testing.assert_array_equal(ours[:, [0, 2, 3, 4, 5]], theirs[:, [0, 2, 3, 4, 5]])
    assert noshape.scored_names == ["scale", "orientation", "posX", "posY"]
    with pytest.raises(IndexError):
        noshape.read([count])  # dSprites' first ellipse is not one of its images


# --- color_dsprites -------------------------------------------------------------------


def masks_of(sources, indices) -> np.ndarray:
    """(n, 64, 64) bool: dSprites' sprite at each index."""
    return sources("dsprites").read(indices)[..., 0] == 255


def test_color_dsprites_is_the_mask_times_one_colour_per_image(sources):
    data = sources("color_dsprites")
    indices = np.random.default_rng(3).choice(data.num_images, 2000, replace=False)
    images, mask = data.read(indices).astype(np.int64), masks_of(sources, indices)
    assert (images[~mask] == 0).all()  # black background
    colours = []
    for image, on in zip(images, mask, strict=True):
        sprite = image[on]
        assert (sprite == sprite[0]).all()  # one colour over the whole sprite
        colours.append(sprite[0])
    colours = np.array(colours)
    # round(255 · c), c ~ U(0.5, 1) per channel: 128..255, mean 191.25, channels
    # independent (Locatello et al. 2019; disentanglement_lib's ColorDSprites).
    assert colours.min() == 128 and colours.max() == 255
    np.testing.assert_allclose(colours.mean(axis=0), 191.25, atol=3)
    np.testing.assert_allclose(colours.std(axis=0), 127.5 / 12**0.5, rtol=0.1)
    assert np.abs(np.corrcoef(colours.T) - np.eye(3)).max() < 0.1
    # c = 0.5 + 0.5 · U of SplitMix64 outputs 3i, 3i + 1, 3i + 2 (R, G, B).
    seed = seed_of(data)
    for i, colour in zip(indices[:20], colours[:20], strict=True):
        u = np.array([uniform(splitmix64(seed, 3 * int(i) + k)) for k in range(3)])
        np.testing.assert_array_equal(colour, np.rint(255 * (0.5 + 0.5 * u)))


# --- noisy_dsprites -------------------------------------------------------------------


def noise_by_hand(seed: int, index: int) -> np.ndarray:
    """(64, 64, 3): image `index`'s noise as the docstring gives it: SplitMix64
    outputs index · 3072 + j, four 16-bit values b each, least significant first,
    pixels in C order; each b → ⌊(b − ⌊b/256⌋ + 128) / 256⌋."""
    values = []
    for j in range(64 * 64 * 3 // 4):
        word = splitmix64(seed, index * 3072 + j)
        for lane in range(4):
            b = (word >> (16 * lane)) & 0xFFFF
            values.append((b - b // 256 + 128) // 256)
    return np.array(values, np.uint8).reshape(64, 64, 3)


def test_noisy_dsprites_is_white_sprites_on_uniform_noise(sources):
    data = sources("noisy_dsprites")
    indices = np.random.default_rng(5).choice(data.num_images, 64, replace=False)
    images, mask = data.read(indices), masks_of(sources, indices)
    assert (images[mask] == 255).all()  # min(x + n, 1) = 1 on the sprite
    background = images[~mask].astype(np.int64)  # (pixels, 3)
    # round(255 · n), n ~ U(0, 1): 1..254 each 1/255 of the time, 0 and 255 half
    # that. Generous bounds: each bin holds ~2,900 values (sd ~54).
    counts = np.bincount(background.ravel(), minlength=256)
    expected = background.size / 255
    np.testing.assert_allclose(counts[1:255], expected, rtol=0.15)
    np.testing.assert_allclose(counts[[0, 255]], expected / 2, rtol=0.25)
    # Independent per channel and pixel (here: each pixel and its right neighbour).
    assert abs(np.corrcoef(background.T)[0, 1:]).max() < 0.01
    both = ~mask[:, :, :-1] & ~mask[:, :, 1:]
    left, right = images[:, :, :-1][both], images[:, :, 1:][both]
    assert abs(np.corrcoef(left.ravel(), right.ravel())[0, 1]) < 0.01
    assert (images[0] != images[1]).mean() > 0.9  # each image has its own noise
    seed = seed_of(data)
    for k in (0, 1):
        by_hand = noise_by_hand(seed, int(indices[k]))
        np.testing.assert_array_equal(images[k][~mask[k]], by_hand[~mask[k]])


def test_the_noise_levels_are_round_255n_but_for_128_values():
    b = np.arange(1 << 16)
    levels = (b - b // 256 + 128) // 256
    exact = np.floor(255 * b / 65535 + 0.5)
    assert (levels != exact).sum() == 128 and np.abs(levels - exact).max() == 1
    counts = np.bincount(levels, minlength=256)
    assert set(counts[1:255]) == {257, 258} and set(counts[[0, 255]]) == {128, 129}


# --- scream_dsprites ------------------------------------------------------------------


def find_crop(image, background, canvas):
    """The crop p of `canvas` and the shift v (3,) with
    image = round((p + v) / 2) on `background`: (row, column, v), searched over
    every position; asserts there is exactly one."""
    b = image.astype(np.float64)
    rows, columns = np.nonzero(background)
    pick = np.linspace(0, len(rows) - 1, 12).astype(int)
    height, width = canvas.shape[0] - 63, canvas.shape[1] - 63
    # 2·b − p = v ± 1 on every background pixel (b is rounded): spread ≤ 2.
    shifted = np.stack(
        [2 * b[rows[k], columns[k]]
         - canvas[rows[k] : rows[k] + height, columns[k] : columns[k] + width]
         for k in pick]
    )  # fmt: skip
    spread = shifted.max(axis=0) - shifted.min(axis=0)  # (height, width, 3)
    found = []
    for r, c in zip(*np.nonzero((spread <= 2).all(axis=-1)), strict=True):
        d = 2 * b[background] - canvas[r : r + 64, c : c + 64][background]
        if (d.max(axis=0) - d.min(axis=0) <= 2).all():
            found.append((int(r), int(c), (d.max(axis=0) + d.min(axis=0)) / 2))
    assert len(found) == 1, f"{len(found)} crops match"
    return found[0]


def test_scream_dsprites_inverts_a_crop_of_the_painting_on_the_sprite(sources):
    data = sources("scream_dsprites")
    canvas = painting().astype(np.float64)
    height, width = PAINTING_SIZE
    digest = hashlib.sha256(painting().tobytes()).hexdigest()[:16]
    assert f"painting {width}x{height} sha256:{digest}" in data.version
    indices = np.random.default_rng(6).choice(data.num_images, 40, replace=False)
    images, mask = data.read(indices), masks_of(sources, indices)
    seed = seed_of(data)
    for i, image, on in zip(indices, images, mask, strict=True):
        # Background b = (p + 255u) / 2 for a crop p and u ∈ [0, 1)³.
        r, c, v = find_crop(image, ~on, canvas)
        assert 0 <= r <= height - 65 and 0 <= c <= width - 65
        assert (v >= -1).all() and (v <= 256).all()
        # On the sprite, 255 − b: the background inverted.
        b = (canvas[r : r + 64, c : c + 64][on] + v) / 2
        assert np.abs(image[on] - (255 - b)).max() <= 1.01
        # r, c, u: SplitMix64 outputs 5i … 5i + 4, r = ⌊U · (H − 64)⌋ (dlib's
        # randint(0, H − 64)), c likewise, then u.
        draws = [uniform(splitmix64(seed, 5 * int(i) + k)) for k in range(5)]
        assert (r, c) == (int(draws[0] * (height - 64)), int(draws[1] * (width - 64)))
        np.testing.assert_allclose(v, 255 * np.array(draws[2:]), atol=1)


def test_scream_dsprites_shrinks_the_painting_as_disentanglement_lib(
    sources, data_dir, tmp_path
):
    # dlib's layout (scream/scream.jpg), a painting larger than 350×274: PIL's
    # thumbnail((350, 274)) makes it 350×274. dSprites' cache is the module's.
    (tmp_path / "scream").mkdir()
    large = painting((548, 700), seed=8)
    Image.fromarray(large).save(tmp_path / "scream" / "scream.jpg", quality=95)
    sources("dsprites")  # generated into data_dir, if it was not yet
    for cache in data_dir.glob("dsprites_generated_*.npy"):
        (tmp_path / cache.name).symlink_to(cache)
    data = load_source("scream_dsprites", tmp_path, 64, 128, log=lambda m: None)
    with Image.open(tmp_path / "scream" / "scream.jpg") as image:
        image.thumbnail((350, 274))
        shrunk = np.asarray(image.convert("RGB"))
    assert shrunk.shape == (274, 350, 3)
    digest = hashlib.sha256(shrunk.tobytes()).hexdigest()[:16]
    assert f"painting 350x274 sha256:{digest}" in data.version
    # Too small once shrunk (60 px high): refused, naming the fix.
    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(painting((60, 200))).save(small / "scream.jpg", format="PNG")
    with pytest.raises(ValueError, match=r"200×60 px .* more than 64 px per side"):
        load_source("scream_dsprites", small, 64, 128, log=lambda m: None)


def assert_names_the_painting(message, folder):
    assert str(folder / "scream.jpg") in message
    assert SCREAM_URL in message


def test_scream_dsprites_without_the_painting_says_where_to_put_it(tmp_path):
    for folder in (tmp_path, tmp_path / "absent"):
        with pytest.raises(DataNotFound) as missing:
            load_source("scream_dsprites", folder, 64, 128, log=lambda m: None)
        assert_names_the_painting(str(missing.value), folder)
    assert not any(tmp_path.iterdir())  # refused before dSprites is generated


def main_py(*args, capsys=None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python main.py ARGS`: in a fresh process,
    or with `capsys` in this one (main.py is `sys.exit(main())`), which spares
    the default suite a second TensorFlow start-up."""
    if capsys is not None:
        import main

        code = main.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err
    done = subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args], cwd=REPO,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "fresh_process", [False, pytest.param(True, marks=pytest.mark.slow)]
)
def test_main_py_without_the_painting_exits_2_before_training(
    fresh_process, tmp_path, capsys
):
    empty, predictions = tmp_path / "data", tmp_path / "predictions"
    empty.mkdir()
    code, out, err = main_py(
        "--dataset=scream_dsprites", f"--data_dir={empty}",
        f"--predictions_dir={predictions}",
        capsys=None if fresh_process else capsys,
    )  # fmt: skip
    assert code == 2, out[-2000:] + err[-2000:]
    assert err.startswith("error: scream_dsprites needs"), err
    assert_names_the_painting(err, empty)
    assert "Traceback" not in err
    assert "Data:" not in out and "Step" not in out
    assert not any(empty.iterdir())  # no dSprites generated
    assert not predictions.exists() or not any(predictions.rglob("*"))  # no run


# --- xy_object and xy_squares ---------------------------------------------------------

HUES = {"R": (1, 0, 0), "Y": (1, 1, 0), "G": (0, 1, 0), "C": (0, 1, 1),
        "B": (0, 0, 1), "M": (1, 0, 1)}  # fmt: skip


def xy_object_by_hand(x, y, scale, color) -> np.ndarray:
    """The docstring's image: a square of side 7 + 2·scale, top-left at column
    2x + r, row 2y + r, r = (15 − side) // 2, in colour `color`: hue color % 6
    (R, Y, G, C, B, M) at brightness ⌊255 · (color // 6 + 1) / 4⌋."""
    side = 7 + 2 * scale
    r = (15 - side) // 2
    hue = np.array(list(HUES.values())[color % 6])
    image = np.zeros((64, 64, 3), np.uint8)
    image[2 * y + r : 2 * y + r + side, 2 * x + r : 2 * x + r + side] = hue * (
        255 * (color // 6 + 1) // 4
    )
    return image


def test_xy_object_draws_the_documented_square(sources):
    data = sources("xy_object")
    # Every scale and colour, at the grid's corners and inside.
    grid = [(x, y, s, c) for x in (0, 24, 7) for y in (0, 24, 13)
            for s in range(5) for c in range(24)]  # fmt: skip
    indices = [((x * 25 + y) * 5 + s) * 24 + c for x, y, s, c in grid]
    images = data.read(indices)
    for image, classes in zip(images, grid, strict=True):
        np.testing.assert_array_equal(image, xy_object_by_hand(*classes), classes)
    # Every scale shares the centre (the first 120: x = y = 0); the brightness
    # levels of hue M (c = 5, 11, 17, 23) are disent's 255 · i // 4, i = 1..4.
    centres = {centre_of_mass(image.any(-1)) for image in images[:120]}
    assert centres == {(7.0, 7.0)}
    brightest = images[[5, 11, 17, 23]].max(axis=(1, 2, 3))
    assert list(brightest) == [63, 127, 191, 255]


def test_xy_squares_draws_one_square_per_channel(sources):
    data = sources("xy_squares")
    rng = np.random.default_rng(9)
    classes = np.concatenate([[[0] * 6, [7] * 6], rng.integers(0, 8, (300, 6))])
    indices = [sum(int(c) * 8 ** (5 - f) for f, c in enumerate(row)) for row in classes]
    images = data.read(indices)
    for image, (xr, yr, xg, yg, xb, yb) in zip(images, classes, strict=True):
        expected = np.zeros((64, 64, 3), np.uint8)
        for k, (x, y) in enumerate([(xr, yr), (xg, yg), (xb, yb)]):
            expected[8 * y : 8 * y + 8, 8 * x : 8 * x + 8, k] = 255
        np.testing.assert_array_equal(image, expected)
    # One factor changed, by any amount: 128 channel values change (disent's point).
    base = classes[5]
    for factor in range(6):
        for value in {(base[factor] + 1) % 8, (base[factor] + 5) % 8}:
            other = base.copy()
            other[factor] = value
            pair = data.read(data.index_of(np.stack([base, other])))
            assert (pair[0] != pair[1]).sum() == 128, (factor, value)


# --- parameters -----------------------------------------------------------------------


def test_every_dataset_has_a_default_for_each_parameter_left_to_it():
    from utils.settings import cli

    specs = cli.read_params(cli.import_params(REPO / "params.py"))
    per_dataset = specs.pop("dataset_defaults")[0]
    # The names params.py leaves None for the dataset to fill: those a dataset's
    # defaults give. Others left None mean something of their own ("None: named
    # from the parameters", or a feature that is off), which their comment says.
    given = {k for defaults in per_dataset.values() for k in defaults}
    left = {n for n, (v, _) in specs.items() if v is None} & given
    assert {"image_size", "latent_size", "reconstruction_loss"} <= left
    assert given <= set(specs), "a default for a name params.py does not have"
    assert set(per_dataset) == set(DATASETS)
    for name in DATASETS:
        missing = left - {k for k, v in per_dataset[name].items() if v is not None}
        assert not missing, f"dataset_defaults[{name!r}] has no {sorted(missing)}"
        if info(name).image_size is not None:
            assert per_dataset[name]["image_size"] == info(name).image_size, name


# --- main.py trains and evaluates on each ---------------------------------------------

TINY = [
    "--image_size=64", "--latent_size=3", "--batch_size=8",
    "--conv_layers=[[4,4,2],[4,4,2],[4,4,2],[4,4,2]]", "--dense_layers=[[16]]",
    "--validation_batches=1", "--validation_step=4", "--plot_step=100",
    "--checkpoint_step=4", "--num_steps=4", "--metrics_at_end=False",
]  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [n if n == "xy_object" else pytest.param(n, marks=pytest.mark.slow) for n in NAMES],
)
def test_a_short_run_trains_then_evaluates(name, data_dir, sources, tmp_path, capsys):
    from utils.metrics import headline_names

    out = tmp_path / "predictions"
    common = [f"--data_dir={data_dir}", f"--predictions_dir={out}", "--run_name=r"]
    # In this process: one TensorFlow start-up for training and evaluating.
    code, stdout, err = main_py(f"--dataset={name}", *TINY, *common, capsys=capsys)
    assert code == 0, stdout[-2000:] + err[-3000:]
    assert "Step 4: reached num_steps" in stdout
    assert not (out / "r" / "metrics.json").exists()  # metrics_at_end=False
    code, stdout, err = main_py(
        "--mode=evaluate", *common, "--metrics_protocol=fast", capsys=capsys
    )
    assert code == 0, stdout[-2000:] + err[-3000:]
    metrics = json.loads((out / "r" / "metrics.json").read_text())
    for key in headline_names(("fast",)):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    fast = metrics["protocols"]["fast"]
    assert fast["step"] == 4
    dataset = fast["provenance"]["dataset"]
    names, sizes, _, _ = DOCUMENTED[name]
    assert dataset["name"] == name and dataset["version"] == sources(name).version
    assert dataset["factors"] == dict(zip(names, sizes, strict=True))
