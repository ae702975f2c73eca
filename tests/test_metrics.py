"""Known-answer tests for utils/metrics.py on a fake ground-truth dataset whose
"images" are the factor classes themselves, so `represent` maps factors to codes."""

import numpy as np
import pytest

from utils import metrics
from utils.metrics import MetricSettings, evaluate_all

HEADLINE = ["beta_vae", "factor_vae", "mig", "dci_disentanglement"]
SMALL = MetricSettings(  # ~1/10 of the protocol, enough for stable known answers
    beta_vae_train=1_000,
    beta_vae_eval=500,
    factor_vae_train=1_000,
    factor_vae_eval=500,
    factor_vae_variance_points=2_000,
    mig_points=3_000,
    dci_train=2_000,
    dci_test=1_000,
)


class FakeFactors:
    def __init__(self, factor_sizes=(1, 3, 6, 10, 8, 8)):
        self.factor_sizes = factor_sizes

    def sample_classes(self, n, rng):
        columns = [rng.integers(size, size=n) for size in self.factor_sizes]
        return np.stack(columns, axis=1).astype(np.int64)

    def images_for_classes(self, classes):
        return classes.astype(np.float64)


def normalised_factors(images, sizes):
    """The 5 varying factors scaled to [0, 1] (the color factor is constant)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    return (images / np.maximum(sizes - 1, 1))[:, sizes > 1]


def rotated(x):
    """An imperfect code: the factors mixed by a fixed random rotation."""
    rotation, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(5, 5)))
    return normalised_factors(x, FakeFactors().factor_sizes) @ rotation


def scores(represent, settings=SMALL, ds=None):
    return evaluate_all(ds or FakeFactors(), represent, settings)


@pytest.fixture(scope="module")
def factor_scores():
    return scores(lambda x: normalised_factors(x, FakeFactors().factor_sizes))


def test_factors_score_near_one(factor_scores):
    assert factor_scores["beta_vae"] >= 0.95
    assert factor_scores["factor_vae"] >= 0.95
    assert factor_scores["mig"] >= 0.9
    assert factor_scores["dci_disentanglement"] >= 0.9
    assert factor_scores["details"]["dci_disentanglement"]["completeness"] >= 0.9


def test_permutation_and_rescaling_do_not_matter(factor_scores):
    sizes = FakeFactors().factor_sizes
    permutation = np.array([3, 0, 4, 2, 1])
    scale = np.array([2.0, -0.5, 7.0, -3.0, 0.3])

    def represent(x):
        return normalised_factors(x, sizes)[:, permutation] * scale + 1.5

    result = scores(represent)
    for name in HEADLINE:
        assert result[name] == pytest.approx(factor_scores[name], abs=0.05), name


def test_permutation_and_rescaling_of_an_imperfect_code():
    permutation = np.array([3, 0, 4, 2, 1])
    scale = np.array([2.0, -0.5, 7.0, -3.0, 0.3])
    base = scores(rotated)
    result = scores(lambda x: rotated(x)[:, permutation] * scale + 1.5)
    # The beta-VAE score is left out: its logistic regression sees unscaled
    # features (as in disentanglement_lib), so rescaling moves it by a few points.
    for name in ["factor_vae", "mig", "dci_disentanglement"]:
        assert result[name] == pytest.approx(base[name], abs=0.02), name


def test_rotation_lowers_mig_and_dci(factor_scores):
    sizes = FakeFactors().factor_sizes
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(5, 5)))
    result = scores(lambda x: normalised_factors(x, sizes) @ rotation)
    assert result["mig"] < factor_scores["mig"] - 0.3
    assert result["dci_disentanglement"] < factor_scores["dci_disentanglement"] - 0.3


def test_noise_scores_near_zero_or_chance():
    noise = np.random.default_rng(4)
    result = scores(lambda x: noise.normal(size=(len(x), 10)))
    assert result["mig"] < 0.1
    assert result["dci_disentanglement"] < 0.1
    assert result["beta_vae"] < 0.4  # chance = 1/5 varying factors
    assert result["factor_vae"] < 0.4


def test_extra_noise_dims_keep_dci_and_factor_vae_high():
    sizes = FakeFactors().factor_sizes
    noise = np.random.default_rng(5)

    def represent(x):
        return np.hstack([normalised_factors(x, sizes), noise.normal(size=(len(x), 5))])

    result = scores(represent)
    assert result["dci_disentanglement"] >= 0.9
    assert result["factor_vae"] >= 0.95


def test_collapsed_code_scores_zero_factor_vae():
    result = metrics.factor_vae_score(
        FakeFactors(), lambda x: np.zeros((len(x), 4)), SMALL, np.random.default_rng(0)
    )
    assert result == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_same_seed_same_results_different_seed_different():
    tiny = MetricSettings(
        beta_vae_train=300, beta_vae_eval=200, factor_vae_train=300,
        factor_vae_eval=200, factor_vae_variance_points=500, mig_points=1_000,
        dci_train=500, dci_test=300,
    )  # fmt: skip
    first, again = scores(rotated, tiny), scores(rotated, tiny)
    other = scores(rotated, MetricSettings(**{**vars(tiny), "seed": 1}))
    assert first["details"] == again["details"]
    for name in HEADLINE:
        assert first[name] == again[name]
    assert first["details"] != other["details"]
    assert first["mig"] != other["mig"]


def test_each_metric_independent_of_the_others():
    ds, result = FakeFactors(), scores(rotated)
    for name, (metric, stream, _) in metrics.METRICS.items():
        rng = np.random.default_rng([SMALL.seed, stream])
        assert metric(ds, rotated, SMALL, rng) == result["details"][name]


def test_evaluate_all_layout_and_ranges():
    result = scores(rotated)
    assert set(result) == set(HEADLINE) | {"details", "settings", "seconds"}
    assert result["settings"] == vars(SMALL)
    assert set(result["seconds"]) == set(HEADLINE) == set(result["details"])
    for name in HEADLINE:
        assert 0.0 <= result[name] <= 1.0
    details = result["details"]
    assert set(details["beta_vae"]) == {"train_accuracy", "eval_accuracy"}
    assert details["factor_vae"]["num_active_dims"] == 5
    assert len(details["mig"]["per_factor"]) == 5
    dci = details["dci_disentanglement"]
    assert set(dci) == {"disentanglement", "completeness", "informativeness_test"}
    for value in [*dci.values(), *details["mig"]["per_factor"]]:
        assert 0.0 <= value <= 1.0


def test_histogram_discretize_equal_width_bins():
    codes = np.array([[0.0, 5.0], [0.24, 5.0], [0.5, 5.0], [1.0, 5.0]])
    binned = metrics._histogram_discretize(codes, bins=4)
    # Edges 0, .25, .5, .75 (, 1): the maximum lands in the last bin.
    assert binned[:, 0].tolist() == [1, 1, 3, 4]
    assert len(set(binned[:, 1])) == 1


def test_dci_weighted_score_by_hand():
    assert metrics._weighted_score(np.eye(3)) == pytest.approx(1.0)
    assert metrics._weighted_score(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-9)
    # Code 0 all on factor 0 (weight 2/3), code 1 split evenly (1/3): D = 2/3.
    importance = np.array([[2.0, 0.0], [0.5, 0.5]])
    assert metrics._weighted_score(importance) == pytest.approx(2 / 3)


def test_default_protocol_on_dsprites_sized_factors():
    ds = FakeFactors((1, 3, 6, 40, 32, 32))
    result = evaluate_all(ds, lambda x: normalised_factors(x, ds.factor_sizes))
    assert result["settings"] == vars(MetricSettings())
    assert result["beta_vae"] >= 0.95 and result["factor_vae"] >= 0.95
    assert result["dci_disentanglement"] >= 0.9
    # 40 orientations and 32 positions share 20 bins: MI < entropy even when perfect.
    assert 0.8 <= result["mig"] < 1.0
