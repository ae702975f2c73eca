"""Known-answer tests for utils/metrics.py on a fake ground-truth dataset whose
"images" are the factor classes themselves, so `represent` maps factors to codes."""

from dataclasses import asdict, replace

import numpy as np
import pytest

from utils import metrics
from utils.metrics import FAST, REFERENCE, Protocol, evaluate_all

HEADLINE = ["beta_vae", "factor_vae", "mig", "dci_disentanglement"]
SMALL = Protocol(  # ~1/10 of the protocol, enough for stable known answers
    name="small",
    beta_vae_train=1_000,
    beta_vae_eval=500,
    factor_vae_train=1_000,
    factor_vae_eval=500,
    factor_vae_variance_points=2_000,
    mig_points=3_000,
    dci_train=2_000,
    dci_test=1_000,
    dci_classifier="extra_trees",  # gradient boosting: tested on its own, below
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
    return evaluate_all(ds or FakeFactors(), represent, settings, quiet=True)


@pytest.fixture(scope="module")
def factor_scores():
    return scores(lambda x: normalised_factors(x, FakeFactors().factor_sizes))


def test_factors_score_near_one(factor_scores):
    assert factor_scores["beta_vae"] >= 0.95
    assert factor_scores["factor_vae"] >= 0.95
    assert factor_scores["mig"] >= 0.9
    assert factor_scores["dci_disentanglement"] >= 0.9
    assert factor_scores["dci_completeness"] >= 0.9


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
        FakeFactors(), lambda x: np.zeros((len(x), 4)), SMALL,
        np.random.default_rng(0), metrics.tqdm(disable=True),
    )  # fmt: skip
    assert result == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_same_seed_same_results_different_seed_different():
    tiny = replace(
        SMALL, beta_vae_train=300, beta_vae_eval=200, factor_vae_train=300,
        factor_vae_eval=200, factor_vae_variance_points=500, mig_points=1_000,
        dci_train=500, dci_test=300,
    )  # fmt: skip
    first, again = scores(rotated, tiny), scores(rotated, tiny)
    other = scores(rotated, replace(tiny, seed=1))
    assert first["details"] == again["details"]
    for name in HEADLINE:
        assert first[name] == again[name]
    assert first["details"] != other["details"]
    assert first["mig"] != other["mig"]


def test_each_metric_independent_of_the_others():
    ds, result = FakeFactors(), scores(rotated)
    for name, (metric, stream) in metrics.METRICS.items():
        rng = np.random.default_rng([SMALL.seed, stream])
        quiet = metrics.tqdm(disable=True)
        assert metric(ds, rotated, SMALL, rng, quiet) == result["details"][name]


def test_evaluate_all_layout_and_ranges():
    result = scores(rotated)
    headlines = set(metrics.HEADLINES)
    assert set(result) == headlines | {"details", "settings", "seconds"}
    assert result["settings"] == asdict(SMALL)
    assert set(result["seconds"]) == set(metrics.METRICS) == set(result["details"])
    for name in headlines:
        assert 0.0 <= result[name] <= 1.0
    details = result["details"]
    assert set(details["beta_vae"]) == {"train_accuracy", "eval_accuracy"}
    assert details["factor_vae"]["num_active_dims"] == 5
    assert len(details["mig"]["per_factor"]) == 5
    assert set(details["dci"]) == {
        "disentanglement", "completeness", "informativeness_train",
        "informativeness_test", "classifier",
    }  # fmt: skip
    assert result["dci_informativeness"] == details["dci"]["informativeness_test"]


def test_mig_is_the_gap_between_the_two_most_informative_latents():
    sizes = FakeFactors().factor_sizes

    def duplicated(x):  # every factor captured perfectly, but twice: no gap
        factors = normalised_factors(x, sizes)
        return np.hstack([factors, factors])

    result = scores(duplicated)
    assert result["mig"] == pytest.approx(0.0, abs=1e-9)
    # …while each latent alone carries as much as a perfect code's does.
    assert scores(lambda x: normalised_factors(x, sizes))["mig"] > 0.9


def test_mig_names_the_latent_that_captures_each_factor():
    sizes = FakeFactors().factor_sizes
    permutation = np.array([3, 0, 4, 2, 1])  # latent j holds factor permutation[j]
    result = scores(lambda x: normalised_factors(x, sizes)[:, permutation])
    assert result["details"]["mig"]["latent_per_factor"] == [1, 4, 3, 0, 2]


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
    # Completeness is the same score on the transpose: factor 0 is spread over
    # codes 0 and 1 (2 : 0.5), factor 1 lies in code 1 alone.
    p = np.array([2.0, 0.5]) / 2.5
    factor_0 = 1 + (p * np.log(p)).sum() / np.log(2)
    expected = factor_0 * 2.5 / 3 + 1.0 * 0.5 / 3
    assert metrics._weighted_score(importance.T) == pytest.approx(expected)


def test_reference_dci_is_disentanglement_libs_default_gradient_boosting(
    monkeypatch,
):
    made = []

    class Recorded(metrics.GradientBoostingClassifier):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(metrics, "GradientBoostingClassifier", Recorded)

    def in_this_process(**_):  # where the recording class is
        return lambda tasks: [fit(*args, **kwargs) for fit, args, kwargs in tasks]

    monkeypatch.setattr(metrics, "Parallel", in_this_process)
    sizes = (1, 3, 4)
    tiny = replace(REFERENCE, dci_train=300, dci_test=100)
    result = metrics.dci(
        FakeFactors(sizes), lambda x: normalised_factors(x, sizes), tiny,
        np.random.default_rng(0), metrics.tqdm(disable=True),
    )  # fmt: skip
    # One classifier per factor, default settings (the seed only breaks ties).
    assert len(made) == 2 and all(set(kwargs) == {"random_state"} for kwargs in made)
    assert result["classifier"] == "gradient_boosting"
    assert result["disentanglement"] > 0.9 and result["informativeness_test"] > 0.9


def test_protocols_are_disentanglement_libs_and_a_named_fast_variant():
    assert REFERENCE.suffix == "" and FAST.suffix == "_fast"
    assert (REFERENCE.beta_vae_train, REFERENCE.beta_vae_eval) == (10_000, 5_000)
    assert (REFERENCE.factor_vae_train, REFERENCE.factor_vae_eval) == (10_000, 5_000)
    assert REFERENCE.factor_vae_variance_points == 10_000
    assert (REFERENCE.mig_points, REFERENCE.mig_bins) == (10_000, 20)
    assert (REFERENCE.dci_train, REFERENCE.dci_test) == (10_000, 5_000)
    assert REFERENCE.dci_classifier == "gradient_boosting"
    assert FAST.dci_classifier == "extra_trees"


@pytest.mark.slow
def test_default_protocol_on_dsprites_sized_factors():
    ds = FakeFactors((1, 3, 6, 40, 32, 32))
    result = evaluate_all(ds, lambda x: normalised_factors(x, ds.factor_sizes))
    assert result["settings"] == asdict(REFERENCE)
    assert result["beta_vae"] >= 0.95 and result["factor_vae"] >= 0.95
    assert result["dci_disentanglement"] >= 0.9
    # 40 orientations and 32 positions share 20 bins: MI < entropy even when perfect.
    assert 0.8 <= result["mig"] < 1.0
