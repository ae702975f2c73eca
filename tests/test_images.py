"""Image and plot artifacts: grids, composite, traversal, GIFs, log plots, CSV."""

import imageio.v3 as iio
import numpy as np
import pytest

from utils.images import (
    image_grid,
    latent_gif,
    save_composite,
    save_gif,
    save_traversal,
    step_filename,
)
from utils.plots import read_log_csv, save_kl_bars, save_loss_curves


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
        save_composite(path, 1234, imgs, imgs, random_images(64, 64, seed=1))
        assert path.read_bytes()[:2] == b"\xff\xd8"  # JPEG magic
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


def test_save_traversal_height_grows_with_rows(tmp_path):
    n_values, latent_dim = 11, 10
    kl = np.linspace(3, 0, latent_dim)
    values = np.linspace(-3, 3, n_values)
    heights = []
    for rows in (3, 10):
        path = tmp_path / f"traversal_{rows}.png"
        traversals = random_images(rows * n_values, 64).reshape(
            rows, n_values, 64, 64, 3
        )
        order = np.argsort(-kl)
        save_traversal(path, 500 if rows == 3 else None, traversals, kl, values, order)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        heights.append(iio.imread(path).shape[0])
    assert heights[1] - heights[0] >= 7 * 64  # each extra row is at least 64 px tall


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


def synthetic_log(n=300, schedule="beta"):
    step = np.arange(n) * 10.0
    reconstruction = 2000 * np.exp(-step / 500) + 30
    kl = 10 * (1 - np.exp(-step / 1000))
    log = {"step": step, "reconstruction_loss": reconstruction, "kl": kl}
    log[schedule] = np.minimum(10, step / 100) if schedule == "beta" else step / 300
    log["loss"] = reconstruction + kl
    return log


@pytest.mark.parametrize("schedule", ["beta", "capacity"])
@pytest.mark.parametrize("with_validation", [True, False])
def test_save_loss_curves(tmp_path, schedule, with_validation):
    train = synthetic_log(schedule=schedule)
    validation = {}
    if with_validation:
        validation = {
            k: train[k][::50] for k in ("step", "loss", "reconstruction_loss")
        }
        validation["kl"] = train["kl"][::50]
    path = tmp_path / "curves.png"
    save_loss_curves(path, train, validation)
    assert path.stat().st_size > 10_000
    assert iio.imread(path).shape[0] > 400


def test_save_loss_curves_empty_logs(tmp_path):
    save_loss_curves(tmp_path / "empty.png", {}, {})
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_save_kl_bars(tmp_path):
    kl = np.array([0.0, 2.5, 1e-4, 0.3, 0.02, 0.005])
    path = tmp_path / "kl.png"
    save_kl_bars(path, kl, active_threshold=0.01)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert iio.imread(path).shape[1] > 300


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


def test_step_images_are_drawn_in_the_background_and_errors_reach_the_loop(tmp_path):
    import threading

    from models import BetaVAE
    from utils.visualize import BackgroundDrawing, step_images

    model = BetaVAE((32, 32, 3), [[8, 4, 2]] * 4, [[16]], 3)
    draw = step_images(model, random_images(16, 32), tmp_path, 7)
    assert not list(tmp_path.iterdir())  # the model's part only, so far
    drawing, threads = BackgroundDrawing(), []
    drawing.submit(lambda: threads.append(threading.current_thread()) or draw())
    drawing.close()
    assert threads and threads[0] is not threading.main_thread()
    composite = iio.imread(tmp_path / "composites" / "step_0000007.jpg")
    traversal = iio.imread(tmp_path / "traversals" / "traversal_0000007.png")
    assert composite.shape[1] >= 16 * 32 and traversal.shape[0] > 3 * 32

    def full_disk():
        raise OSError(28, "No space left on device")

    drawing = BackgroundDrawing()
    drawing.submit(full_disk)
    with pytest.raises(OSError, match="No space left"):
        drawing.submit(draw)  # the next images: the failure is raised first
    drawing.submit(full_disk)
    with pytest.raises(OSError, match="No space left"):
        drawing.close()
