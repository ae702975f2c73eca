"""utils.outputs.analysis (what each latent controls), on a fake linear "model": no
TensorFlow."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from utils.outputs import analysis as analysis_module
from utils.outputs.analysis import analyze, save_analysis_figure

SIZE, LATENTS = 16, 8
# Latent -> (what it controls, std of its mean over the samples). Only these three
# carry signal, and not in index order, so sorting by KL is really tested.
SIGNAL = {5: ("x", 3.0), 1: ("size", 1.5), 3: ("brightness", 0.5)}
SIGNAL_LOG_VAR = np.log(0.05)  # posterior narrower than the prior, as when trained


def fake_posterior(images):
    """A fixed projection of the centred pixels; uniform pixels have variance
    1/12, so latent j's mean has std SIGNAL[j][1]. Other latents: mean 0, log-var
    0, hence KL exactly 0."""
    rng = np.random.default_rng(1)
    projection = np.zeros((SIZE * SIZE, LATENTS))
    for j, (_, std) in SIGNAL.items():
        u = rng.normal(size=SIZE * SIZE)
        projection[:, j] = std * np.sqrt(12) * u / np.linalg.norm(u)
    z_mean = (images.reshape(len(images), -1) - 0.5) @ projection
    z_log_var = np.zeros_like(z_mean)
    z_log_var[:, list(SIGNAL)] = SIGNAL_LOG_VAR
    return z_mean, z_log_var


def fake_encode(images):
    """What analyze asks of a model: z_mean and each image's KL per latent."""
    z_mean, z_log_var = fake_posterior(images)
    return z_mean, 0.5 * (np.exp(z_log_var) + z_mean**2 - 1 - z_log_var)


def fake_decode(z):
    """A Gaussian blob: x position follows z5, radius z1, brightness z3."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    cx = SIZE / 2 + 4 * np.tanh(z[:, 5] / 3)
    radius = 2.5 + 1.5 * np.tanh(z[:, 1] / 1.5)
    brightness = 0.25 + 0.75 / (1 + np.exp(-2 * z[:, 3]))
    d2 = (xx - cx[:, None, None]) ** 2 + (yy - SIZE / 2) ** 2
    blob = brightness[:, None, None] * np.exp(-d2 / (2 * radius[:, None, None] ** 2))
    return blob[..., None]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(size=(300, SIZE, SIZE, 1))


@pytest.fixture(scope="module")
def analysis(images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    return folder, analyze(fake_encode, fake_decode, images, folder, steps=7)


def test_analysis_finds_the_three_active_latents_sorted_by_kl(images, analysis):
    _, result = analysis
    z_mean, kl = fake_encode(images)
    np.testing.assert_allclose(result["kl_per_latent"], kl.mean(axis=0), rtol=1e-9)
    assert result["active_latents"] == 3
    assert result["top_latents"] == [5, 1, 3]  # the designed order of the stds
    assert result["num_samples"] == 300 and result["active_threshold"] == 0.01
    for j in range(LATENTS):
        low, high = result["ranges"][f"z{j}"]
        assert low == pytest.approx(z_mean[:, j].min())
        assert high == pytest.approx(z_mean[:, j].max())


def test_analysis_writes_every_file_and_the_json_it_returns(analysis):
    folder, result = analysis
    out = folder / "analysis"
    for name in ["traversal_grid.png", "analysis.png", "kl_per_latent.png"]:
        assert iio.imread(out / name).ndim == 3, name
    assert json.loads((out / "analysis.json").read_text()) == result
    assert sorted(p.name for p in out.glob("*.gif")) == [
        f"traversal_z{j}.gif" for j in sorted(result["gif_latents"])
    ]
    for j in result["gif_latents"]:
        frames = iio.imread(out / f"traversal_z{j}.gif", index=None)
        assert len(frames) == 2 * 7 - 2  # min → max and back (latent_gif)


def _centroid_mass_peak(frame):
    image = frame[..., 0].astype(np.float64)
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    mass = image.sum()
    return (xx * image).sum() / mass, (yy * image).sum() / mass, mass, image.max()


def test_each_traversal_varies_what_its_latent_controls(analysis):
    folder, _ = analysis
    for j, (what, _) in SIGNAL.items():
        frames = iio.imread(folder / "analysis" / f"traversal_z{j}.gif", index=None)
        x0, y0, mass0, peak0 = _centroid_mass_peak(frames[0])  # latent at its min
        x1, y1, mass1, peak1 = _centroid_mass_peak(frames[6])  # at its max
        assert abs(y1 - y0) < 0.5, what  # nothing moves vertically
        moved, grew = abs(x1 - x0) > 4, mass1 > 1.5 * mass0
        brighter = peak1 - peak0 > 60
        assert (moved, grew, brighter) == (
            what == "x",
            what in ("size", "brightness"),  # a brighter blob has more mass too
            what == "brightness",
        ), what


def test_analysis_keeps_at_least_one_latent_and_at_most_top(images, tmp_path):
    def dead_encode(x):
        return np.zeros((len(x), LATENTS)), np.zeros((len(x), LATENTS))

    result = analyze(dead_encode, fake_decode, images[:5], tmp_path, top=2, steps=3)
    assert result["active_latents"] == 0 and len(result["top_latents"]) == 1
    assert (tmp_path / "analysis" / "analysis.png").exists()


def gif_names(folder):
    return sorted(p.name for p in (folder / "analysis").glob("*.gif"))


@pytest.fixture
def without_figures(monkeypatch):
    """analysis.png and kl_per_latent.png are tested elsewhere: skip their
    matplotlib time (~2 s) in tests about other files."""
    for name in ("save_analysis_figure", "save_kl_bars"):
        monkeypatch.setattr(analysis_module, name, lambda *args: None)


def test_analysis_writes_a_gif_per_active_latent_up_to_max_gifs(
    images, tmp_path, without_figures
):
    # Fewer rows in the figures than active latents: still a GIF for each.
    result = analyze(fake_encode, fake_decode, images, tmp_path / "a", top=2, steps=3)
    assert result["top_latents"] == [5, 1]
    assert gif_names(tmp_path / "a") == [f"traversal_z{j}.gif" for j in (1, 3, 5)]
    capped = analyze(
        fake_encode, fake_decode, images, tmp_path / "b", steps=3, max_gifs=2
    )
    assert capped["gif_latents"] == [5, 1]  # the most informative ones
    assert gif_names(tmp_path / "b") == ["traversal_z1.gif", "traversal_z5.gif"]


def test_figures_say_on_what_data_the_latents_are_sorted(
    images, tmp_path, monkeypatch, without_figures
):
    notes, kl_bars = [], []
    grid = analysis_module.save_labelled_grid
    monkeypatch.setattr(
        analysis_module, "save_labelled_grid",
        lambda *args: notes.append(args[-1]) or grid(*args),
    )  # fmt: skip
    monkeypatch.setattr(
        analysis_module, "save_kl_bars", lambda *args: kl_bars.append(args[1:3])
    )
    result = analyze(fake_encode, fake_decode, images[:40], tmp_path, top=2, steps=3)
    assert notes == [["latents sorted by KL on 40 test images; top 2 of 8 latents"]]
    ((kl, num_images),) = kl_bars
    assert num_images == 40 and list(kl) == result["kl_per_latent"]


def largest_blank_square(page, block=8):
    """The largest all-white square of `page`, as a fraction of its area, in
    blocks of block × block pixels. A square, so that the thin gaps a layout
    needs (between rows, beside the inputs) do not count as blank areas."""
    white = (page[..., :3] >= 250).all(axis=-1)
    h, w = (s // block * block for s in white.shape)
    blocks = white[:h, :w].reshape(h // block, block, w // block, block)
    blocks = blocks.all(axis=(1, 3))
    side, best = np.zeros(blocks.shape[1] + 1, int), 0  # side[j + 1]: ends at j
    for row in blocks:
        above, side = side, np.zeros_like(side)
        for j in np.nonzero(row)[0]:
            side[j + 1] = 1 + min(above[j + 1], above[j], side[j])
        best = max(best, side.max())
    return best**2 / blocks.size


def test_analysis_png_leaves_no_large_blank_area(tmp_path):
    rng = np.random.default_rng(0)
    top, refs, steps = 6, 3, 11  # the defaults: six latents' sweeps, tall
    sweeps = rng.uniform(size=(top, refs, steps, SIZE, SIZE, 1))
    kl = np.sort(rng.exponential(1.0, LATENTS))[::-1]
    labels = [f"z{i}  KL {kl[i]:.2f}  [-1.00, 1.00]" for i in range(top)]
    path = tmp_path / "analysis.png"
    save_analysis_figure(
        path, kl, 300, 0.01, list(range(top)), sweeps[0, :, 0], sweeps, labels
    )
    page = iio.imread(path)
    # The side-by-side layout left ~10 % blank under the bars; stacked: ~1 %.
    assert largest_blank_square(page) < 0.03
