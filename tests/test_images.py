"""utils.outputs.images: grids, the composite page, labelled grids, PNGs, GIFs."""

import imageio.v3 as iio
import numpy as np
import pytest
from matplotlib.figure import Figure

from utils.outputs.images import (
    image_grid,
    labelled_grid_page,
    latent_gif,
    save_composite,
    save_figure,
    save_gif,
    save_labelled_grid,
    step_filename,
)
from utils.outputs.logs import read_log_csv


def flat_images(n, size=8, channels=3):
    # Image i is filled with the constant (i + 1) / (n + 1): each cell is identifiable.
    levels = (np.arange(n) + 1) / (n + 1)
    return np.broadcast_to(
        levels[:, None, None, None], (n, size, size, channels)
    ).copy()


def random_images(n, size, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels))


def gif_frames(path):
    return iio.imread(path, index=None)


def test_image_grid_places_image_r_times_cols_plus_c():
    rows, cols, pad, size = 3, 4, 2, 8
    imgs = flat_images(10, size)  # 10 of 12 cells: the last two stay blank
    grid = image_grid(imgs, rows, cols, pad=pad)
    assert grid.shape == (
        rows * size + (rows + 1) * pad,
        cols * size + (cols + 1) * pad,
        3,
    )
    assert grid.dtype == np.uint8
    for r in range(rows):
        for c in range(cols):
            top, left = pad + r * (size + pad), pad + c * (size + pad)
            cell = grid[top : top + size, left : left + size]
            i = r * cols + c
            expected = round(imgs[i, 0, 0, 0] * 255) if i < len(imgs) else 255
            assert (cell == expected).all(), (r, c)


def test_image_grid_grayscale_becomes_rgb_and_clips():
    imgs = np.stack([np.full((4, 4, 1), 0.5), np.full((4, 4, 1), 1.7)])
    grid = image_grid(imgs, 1, 2, pad=0)
    assert grid.shape == (4, 8, 3)
    assert (grid[:, :4] == 128).all() and (grid[:, 4:] == 255).all()


def test_save_composite_writes_readable_jpeg_growing_with_images(tmp_path):
    sizes = {}
    for n in (8, 32):
        path = tmp_path / f"composite_{n}.jpg"
        imgs = random_images(n, 64)
        jpeg = save_composite(path, 1234, imgs, imgs, random_images(64, 64, seed=1))
        assert path.read_bytes() == jpeg and jpeg[:2] == b"\xff\xd8"  # JPEG magic
        page = iio.imread(path)
        assert page.ndim == 3 and page.shape[2] == 3
        sizes[n] = page.shape
        # The header "Step: N" is dark text on white: the top rows are not blank.
        header = page[: page.shape[0] // 12]
        assert (header < 100).any() and (header > 200).mean() > 0.5
    assert sizes[32][0] > sizes[8][0]  # 32 originals take two rows of 16


@pytest.mark.parametrize("size, channels", [(32, 1), (128, 3)])
def test_save_composite_other_sizes(tmp_path, size, channels):
    path = tmp_path / "c.jpg"
    imgs = random_images(16, size, channels)
    save_composite(path, 0, imgs, imgs, random_images(64, size, channels))
    assert iio.imread(path).shape[1] >= 16 * size


def test_step_filename_sorts_numerically():
    names = [step_filename("composite", s, "jpg") for s in (10, 2, 100000, 0)]
    assert names[0] == "composite_0000010.jpg"
    assert sorted(names) == [
        step_filename("composite", s, "jpg") for s in (0, 2, 10, 100000)
    ]


def write_frames(folder, n, size=16):
    paths = []
    for i, image in enumerate(random_images(n, size)):
        paths.append(folder / step_filename("frame", i, "png"))
        iio.imwrite(paths[-1], (image * 255).astype(np.uint8))
    return paths


def test_save_gif_frame_count_and_subsampling(tmp_path):
    paths = write_frames(tmp_path, 7)
    save_gif(tmp_path / "all.gif", paths, fps=4)
    frames = gif_frames(tmp_path / "all.gif")
    assert frames.shape == (7, 16, 16, 3)
    assert iio.immeta(tmp_path / "all.gif")["loop"] == 0  # loop forever
    save_gif(tmp_path / "few.gif", paths, max_frames=3)
    assert len(gif_frames(tmp_path / "few.gif")) == 3


def test_save_gif_pads_frames_of_different_sizes(tmp_path):
    small, large = tmp_path / "a.png", tmp_path / "b.png"
    iio.imwrite(small, np.zeros((10, 12, 3), np.uint8))
    iio.imwrite(large, np.zeros((14, 20, 3), np.uint8))
    save_gif(tmp_path / "mixed.gif", [small, large])
    assert gif_frames(tmp_path / "mixed.gif").shape == (2, 14, 20, 3)


def test_latent_gif_sweeps_forth_and_back_upscaled(tmp_path):
    n = 6
    latent_gif(tmp_path / "sweep.gif", flat_images(n, 8, channels=1))
    frames = gif_frames(tmp_path / "sweep.gif")
    assert frames.shape == (2 * n - 2, 16, 16, 3)
    levels = frames[:, 0, 0, 0].astype(int)
    expected = [round((i + 1) / (n + 1) * 255) for i in [0, 1, 2, 3, 4, 5, 4, 3, 2, 1]]
    assert np.abs(levels - expected).max() <= 2  # GIF palette rounding


def cell_colors(rows, cols):
    # Cell (r, c) is pure (R, 0, B) with R, B set by r, c: unlike the page's grey
    # text (R = G = B), so each cell can be found in the page by its colour.
    return [[(40 + 50 * r, 0, 30 + 40 * c) for c in range(cols)] for r in range(rows)]


def test_labelled_grid_page_rows_in_order_enlarged_and_labelled():
    rows, cols, size = 3, 4, 8
    colors = cell_colors(rows, cols)
    sweeps = np.zeros((rows, cols, size, size, 3))
    sweeps[:] = np.array(colors)[:, :, None, None, :] / 255
    labels = ["z7  KL 2.00", "z1  KL 1.00", "z3  KL 0.50"]
    page = np.asarray(
        labelled_grid_page(sweeps, labels, list("abcd"), "Title", ["a note"])
    )
    boxes = {}
    for r in range(rows):
        for c in range(cols):
            ys, xs = np.nonzero((page == colors[r][c]).all(axis=-1))
            boxes[r, c] = (ys.min(), ys.max(), xs.min(), xs.max())
            # 8-pixel images are enlarged 8× (nearest): a solid 64-pixel square.
            assert ys.max() - ys.min() + 1 == 64 and xs.max() - xs.min() + 1 == 64
            assert len(ys) == 64 * 64
    tops = [boxes[r, 0][0] for r in range(rows)]
    lefts = [boxes[0, c][2] for c in range(cols)]
    assert tops == sorted(tops) and lefts == sorted(lefts)  # row r is r-th down
    dark = (page < 100).all(axis=-1)
    grid_left, grid_top = lefts[0], tops[0]
    for r in range(rows):  # each row's label: dark text left of it, at its height
        top, bottom = boxes[r, 0][:2]
        assert dark[top : bottom + 1, :grid_left].any(), r
    assert dark[: grid_top - 20].any()  # title, note and column labels above
    assert not dark[grid_top:, boxes[0, cols - 1][3] + 1 :].any()  # nothing right


def test_save_labelled_grid_writes_the_png_it_returns(tmp_path):
    sweeps = random_images(6, 16).reshape(2, 3, 16, 16, 3)
    path = tmp_path / "sub" / "grid.png"
    png = save_labelled_grid(path, sweeps, ["a", "b"], ["x", "y", "z"], "T")
    assert path.read_bytes() == png and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temporary


def test_save_figure_writes_the_png_it_returns_at_the_figure_dpi(tmp_path):
    fig = Figure(figsize=(3, 2), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    path = tmp_path / "figure.png"
    png = save_figure(fig, path)
    assert path.read_bytes() == png
    assert iio.imread(path).shape[:2] == (100, 150)


def test_read_log_csv_round_trip_with_empty_cells(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,loss,validation_loss\n0,5.5,\n10,4.25,3.0\n20,4,\n")
    log = read_log_csv(path)
    assert list(log) == ["step", "loss", "validation_loss"]
    np.testing.assert_array_equal(log["step"], [0, 10, 20])
    np.testing.assert_array_equal(log["loss"], [5.5, 4.25, 4.0])
    np.testing.assert_array_equal(log["validation_loss"], [np.nan, 3.0, np.nan])
    assert read_log_csv(tmp_path / "missing.csv") == {}
    header_only = tmp_path / "header.csv"
    header_only.write_text("step,loss\n")
    assert {k: len(v) for k, v in read_log_csv(header_only).items()} == {
        "step": 0,
        "loss": 0,
    }
