"""utils.outputs.plots: loss curves driven by the objective's description, KL bars."""

import imageio.v3 as iio
import numpy as np
import pytest

from utils.objectives import OBJECTIVES
from utils.outputs.plots import (
    DISENTANGLEMENT_TITLE,
    MAX_BARS,
    kl_bars_figure,
    loss_curves_figure,
    moving_average,
    save_kl_bars,
    save_loss_curves,
)

COMMON_TITLES = [
    "reconstruction loss",
    "KL (nats)",
    "negative ELBO = reconstruction + KL",
]


def synthetic_log(n=300, seed=0):
    """Noisy losses, and every objective's terms: a β warm-up, a capacity ramp,
    a constant β of 4 under "beta_constant", noisy tc and DIP terms."""
    rng = np.random.default_rng(seed)
    step = np.arange(1, n + 1) * 10.0
    reconstruction = 2000 * np.exp(-step / 500) + 30 + rng.normal(0, 3, n)
    kl = 10 * (1 - np.exp(-step / 1000)) + rng.normal(0, 0.3, n)
    return {
        "step": step, "loss": reconstruction + kl,
        "reconstruction_loss": reconstruction, "kl": kl,
        "negative_elbo": reconstruction + kl,
        "beta": np.minimum(4, step / 500), "beta_constant": np.full(n, 4.0),
        "capacity": np.minimum(25, step / 100),
        **{k: rng.normal(2, 0.5, n) for k in ("tc", "discriminator_loss",
                                               "dip_off_diagonal", "dip_diagonal")},
    }  # fmt: skip


def validation_of(train, columns=("loss", "reconstruction_loss", "kl")):
    return {k: train[k][::50] for k in ("step", *columns)}


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def panel(fig, starts):
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith(starts)]
    return ax


@pytest.mark.parametrize(
    "objective, own_titles",
    [
        ("capacity", []),  # C is drawn on the KL panel, not on its own
        ("tc", ["total correlation (nats, minibatch estimate)"]),
        ("factor", ["total correlation (discriminator's estimate)",
                    "discriminator loss"]),
        ("dip2", ["Σ_i≠j C_ij² (C: latent covariance)", "Σ_i (C_ii − 1)²"]),
    ],
)  # fmt: skip
def test_loss_curves_have_the_common_panels_then_the_objectives_terms(
    objective, own_titles
):
    fig = loss_curves_figure(synthetic_log(), {}, {"objective": objective})
    found = titles(fig)
    assert len(found) == 4 + len(own_titles)
    assert [t.split("\n")[0] for t in found[1:4]] == COMMON_TITLES
    assert found[0].startswith(f"loss: {OBJECTIVES[objective].paper}\n")
    assert found[4:] == own_titles


def test_a_beta_that_never_changes_has_no_panel_a_schedule_has_one():
    train = synthetic_log()
    warmup = loss_curves_figure(train, {}, {"objective": "beta"})
    assert titles(warmup)[4:] == ["β"]
    # A schedule is drawn as logged, not smoothed: no rounded corners.
    (line,) = panel(warmup, "β").get_lines()
    np.testing.assert_array_equal(line.get_ydata(), train["beta"])
    train["beta"] = train.pop("beta_constant")
    constant = loss_curves_figure(train, {}, {"objective": "beta"})
    assert len(titles(constant)) == 4 and "β" not in titles(constant)


def test_capacity_target_is_drawn_on_the_kl_panel():
    train = synthetic_log()
    fig = loss_curves_figure(train, {}, {"objective": "capacity"})
    lines = {line.get_label(): line for line in panel(fig, "KL").get_lines()}
    target = lines["capacity C (nats)"]
    np.testing.assert_array_equal(target.get_ydata(), train["capacity"])
    assert target.get_linestyle() == "--"


def test_validation_points_on_each_panel_whose_column_validation_has():
    train = synthetic_log()
    validation = validation_of(train, ("loss", "kl", "negative_elbo"))
    fig = loss_curves_figure(train, validation, {"objective": "tc"})
    for title, column in [("loss", "loss"), ("KL", "kl"), ("negative", "negative_elbo"),
                          ("reconstruction", None), ("total", None)]:  # fmt: skip
        points = [ln for ln in panel(fig, title).get_lines() if ln.get_marker() == "o"]
        if column is None:
            assert not points, title
        else:
            np.testing.assert_array_equal(points[0].get_xdata(), validation["step"])
            np.testing.assert_array_equal(points[0].get_ydata(), validation[column])
    # The panel with what model selection compares says so.
    assert "model selection" in panel(fig, "negative ELBO").get_title()


def test_noisy_losses_are_smoothed_over_the_faint_raw_curve():
    train = synthetic_log()
    raw, smooth = panel(loss_curves_figure(train, {}, {}), "KL").get_lines()
    np.testing.assert_array_equal(raw.get_ydata(), train["kl"])
    assert raw.get_alpha() < 0.5 and np.std(np.diff(smooth.get_ydata())) < np.std(
        np.diff(train["kl"])
    )


def test_empty_logs_give_the_common_panels_saying_no_data(tmp_path):
    fig = loss_curves_figure({}, {}, {"objective": "factor"})
    assert len(fig.axes) == 4
    assert all(ax.texts[0].get_text() == "no data" for ax in fig.axes)
    save_loss_curves(tmp_path / "empty.png", {}, {}, {})
    assert iio.imread(tmp_path / "empty.png").ndim == 3


def test_moving_average_ignores_nan_and_uses_fewer_points_at_the_ends():
    values = np.array([1.0, np.nan, 3.0, 5.0])
    np.testing.assert_allclose(moving_average(values, 3), [1.0, 2.0, 4.0, 4.0])


def test_kl_bars_largest_first_at_most_max_bars_saying_what_is_left_out():
    kl = np.random.default_rng(0).exponential(0.05, size=100)
    ax = kl_bars_figure(kl, 512).axes[0]
    order = np.argsort(-kl)[:MAX_BARS]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"z{i}" for i in order]
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, kl[order])
    rest = np.sort(kl)[::-1][MAX_BARS]
    assert ax.get_xlabel() == (
        "latents sorted by KL on 512 test images\n"
        f"40 of 100 shown; the other 60 have KL ≤ {rest:.2g} nats"
    )


def test_kl_bars_for_few_latents_show_all_and_count_the_active(tmp_path):
    kl = np.array([0.0, 2.5, 1e-4, 0.3, 0.02, 0.005])
    ax = kl_bars_figure(kl, 300).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["z1", "z3", "z4", "z5", "z2", "z0"]
    assert ax.get_xlabel() == "latents sorted by KL on 300 test images"
    assert ax.get_title().startswith("3 of 6 latents active")
    save_kl_bars(tmp_path / "kl.png", kl, 300)
    assert iio.imread(tmp_path / "kl.png").shape[1] > 300


def test_metrics_during_training_get_a_panel_of_their_own():
    metrics = {
        "step": np.array([1000.0, 2000.0, 3000.0]),
        "mig_fast": np.array([0.05, 0.1, 0.2]),
        "beta_vae_fast": np.array([0.6, 0.7, 0.8]),
        "factor_vae_fast": np.array([0.5, 0.55, 0.6]),
        "dci_disentanglement_fast": np.array([0.1, np.nan, 0.3]),
        "sap_fast": np.array([0.01, 0.02, 0.03]),  # not on the panel's [0, 1] scores
    }
    fig = loss_curves_figure(synthetic_log(), {}, {"objective": "beta"}, metrics)
    assert titles(fig)[-1] == DISENTANGLEMENT_TITLE
    panel = fig.axes[len(titles(fig)) - 1]
    lines = {line.get_label(): line.get_ydata() for line in panel.get_lines()}
    assert list(lines) == [
        "β-VAE score",
        "FactorVAE score",
        "MIG",
        "DCI disentanglement",
    ]
    np.testing.assert_array_equal(lines["MIG"], [0.05, 0.1, 0.2])
    without = loss_curves_figure(synthetic_log(), {}, {"objective": "beta"}, {})
    assert DISENTANGLEMENT_TITLE not in titles(without)
