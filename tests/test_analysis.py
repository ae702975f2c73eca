"""utils.analysis (what each latent controls) and utils.compare (runs side by side),
on a fake linear "model" and fake run folders: no TensorFlow."""

import json
import re

import imageio.v3 as iio
import numpy as np
import pytest

from utils.analysis import analyze
from utils.compare import compare_runs, describe_objective

SIZE, LATENTS = 16, 8
# Latent -> (what it controls, std of its mean over the samples). Only these three
# carry signal, and not in index order, so sorting by KL is really tested.
SIGNAL = {5: ("x", 3.0), 1: ("size", 1.5), 3: ("brightness", 0.5)}
SIGNAL_LOG_VAR = np.log(0.05)  # posterior narrower than the prior, as when trained


def fake_encode(images):
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
    z_mean, z_log_var = fake_encode(images)
    expected_kl = np.mean(0.5 * (np.exp(z_log_var) + z_mean**2 - 1 - z_log_var), 0)
    np.testing.assert_allclose(result["kl_per_latent"], expected_kl, rtol=1e-9)
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
        f"traversal_z{j}.gif" for j in sorted(result["top_latents"])
    ]
    for j in result["top_latents"]:
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


# --- compare_runs


def write_csv(path, header, rows):
    lines = [",".join(header)] + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def make_run(predictions, name, params, log=None, validation=None):
    folder = predictions / name
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({"latent_size": 10, **params}))
    if log:
        header = ["step", "loss", "reconstruction_loss", "kl", "beta", "kl_z0"]
        write_csv(folder / "log.csv", header, log)
    if validation:
        header = ["step", "loss", "reconstruction_loss", "kl"]
        write_csv(folder / "validation.csv", header, validation)
    return folder


def write_png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.zeros((4, 4, 3), np.uint8), extension=".png")


@pytest.fixture
def predictions(tmp_path):
    dsprites = {"dataset": "dsprites", "objective": "beta", "beta_schedule": "constant"}
    a = make_run(
        tmp_path, "a_beta4", {**dsprites, "beta": 4.0},
        log=[[100, 9, 8, 1, 4, 0.5], [200, 7, 6.5, 0.5, 4, 0.2]],
        validation=[[200, 8, 7.25, 0.75]],
    )  # fmt: skip
    (a / "metrics.json").write_text(
        json.dumps({"beta_vae": 0.91234, "factor_vae": 0.7, "mig": 0.25,
                    "dci_disentanglement": 0.333333, "details": {}})
    )  # fmt: skip
    (a / "analysis").mkdir()
    (a / "analysis" / "analysis.json").write_text(json.dumps({"active_latents": 5}))
    write_png(a / "analysis" / "traversal_grid.png")
    b = make_run(
        tmp_path, "b_warmup",
        {"dataset": "celeba", "objective": "beta", "beta": 10,
         "beta_schedule": "warmup", "beta_steps": 40000},
        log=[[500, 20, 18.5, 1.5, 0.1, 0.4], [1000, 19, 17.125, 1.875, 0.2, 0.4]],
    )  # fmt: skip
    for step in (1000, 2000):  # the newest (step 2000) should be shown
        write_png(b / "traversals" / f"traversal_{step:07d}.png")
    make_run(
        tmp_path, "c_decrease",
        {**dsprites, "beta": 1, "beta_schedule": "decrease", "beta_start": 100,
         "beta_steps": 39600},
    )  # fmt: skip
    make_run(
        tmp_path, "d_capacity",
        {"dataset": "dsprites", "objective": "capacity", "capacity_max": 25,
         "capacity_steps": 100000, "gamma": 1000},
    )  # fmt: skip
    (tmp_path / "not_a_run").mkdir()  # no params.json: ignored
    write_png(tmp_path / "not_a_run" / "x.png")
    return tmp_path


def table_rows(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| [")]


def test_compare_runs_one_row_per_run_with_numbers_and_dashes(predictions):
    html_path = compare_runs(predictions)
    assert html_path == predictions / "comparison.html"
    page = html_path.read_text()
    rows = table_rows((predictions / "comparison.md").read_text())
    assert [r.split("]")[0] for r in rows] == [
        "| [a_beta4", "| [b_warmup", "| [c_decrease", "| [d_capacity"
    ]  # fmt: skip
    assert page.count("<tr>") == 1 + 4 and "not_a_run" not in page
    a, b, c, d = ([cell.strip() for cell in r.strip("|").split("|")] for r in rows)
    # run, dataset, objective, steps, recon, KL, active, 4 metrics, image
    assert a[1:11] == ["dsprites", "β = 4", "200", "7.25", "0.75", "5 / 10",
                       "0.912", "0.700", "0.250", "0.333"]  # fmt: skip
    assert b[1:7] == ["celeba", "β warm-up 0→10 over 40000 steps", "1000",
                      "17.12 (train)", "1.88 (train)", "–"]  # fmt: skip
    assert b[7:11] == ["–"] * 4
    assert c[2:11] == ["β 100→1 over 39600 steps"] + ["–"] * 8
    assert d[2] == "capacity C→25 nats over 100000 steps, γ = 1000"
    assert c[11] == d[11] == "–"  # no traversal image
    for text in (page, "\n".join(rows)):
        assert "β = 4" in text and "β warm-up 0→10 over 40000 steps" in text


def test_compare_runs_links_are_relative_and_exist(predictions):
    page = compare_runs(predictions).read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images == [
        "a_beta4/analysis/traversal_grid.png",
        "b_warmup/traversals/traversal_0002000.png",
    ]
    links = re.findall(r'href="([^"]+)"', page)
    markdown = (predictions / "comparison.md").read_text()
    links += re.findall(r"\]\(([^)]+)\)", markdown)
    assert len(links) == 2 * (4 + 2)  # runs and images, in both files
    for link in links:
        assert not link.startswith(("/", "http")) and (predictions / link).exists()
    assert "<script" not in page and "<link" not in page  # self-contained


def test_compare_runs_named_subset_and_unknown_name(predictions):
    compare_runs(predictions, ["d_capacity", "a_beta4"])
    rows = table_rows((predictions / "comparison.md").read_text())
    assert [r.split("]")[0] for r in rows] == ["| [d_capacity", "| [a_beta4"]
    with pytest.raises(ValueError, match="nope") as error:
        compare_runs(predictions, ["a_beta4", "nope"])
    for name in ["a_beta4", "b_warmup", "c_decrease", "d_capacity"]:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="not_a_run"):
        compare_runs(predictions, ["not_a_run"])


def test_describe_objective_constant_beta_default_and_integers():
    assert describe_objective({"beta": 1.0}) == "β = 1"
    assert describe_objective({"beta": 0.5, "beta_schedule": "constant"}) == "β = 0.5"
