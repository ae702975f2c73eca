"""Known-answer tests for utils/metrics/ (the registry, β-VAE, FactorVAE, MIG, DCI,
the evaluation driver) on a fake ground-truth dataset whose codes are computed
from each image's factor classes. Agreement with disentanglement_lib's own code is
tested in test_conformance.py."""

import numpy as np
import pytest
from tqdm import tqdm

from utils.data.ground_truth import GroundTruthData, NoGroundTruth, require_factors
from utils.metrics import REGISTRY, dci, factor_vae, headline_names, mig, title_of
from utils.metrics.base import factor_codes, histogram_discretize
from utils.metrics.evaluate import evaluate_all

HEADLINE = ["beta_vae", "factor_vae", "mig", "dci_disentanglement"]
SMALL = {  # ~1/10 of the reference protocol, enough for stable known answers
    "beta_vae": {"batch_size": 64, "num_train": 1_000, "num_eval": 500},
    "factor_vae": {"batch_size": 64, "num_train": 1_000, "num_eval": 500,
                   "num_variance_estimate": 2_000, "prune_threshold": 0.05},
    "mig": {"num_train": 3_000, "num_bins": 20},
    "dci": {"num_train": 2_000, "num_test": 1_000, "classifier": "extra_trees"},
}  # fmt: skip
QUIET = tqdm(disable=True)


class Fake(GroundTruthData):
    name = "fake"
    image_shape = (1, 1, 1)
    splits = {}

    def __init__(self, factor_sizes=(1, 3, 6, 10, 8, 8)):
        self.factor_sizes = factor_sizes
        self.factor_names = tuple(f"f{i}" for i in range(len(factor_sizes)))


def normalised_factors(ds):
    """represent(indices): the scored factors scaled to [0, 1]."""
    sizes = np.asarray(ds.scored_sizes, dtype=np.float64)
    return lambda i: ds.classes_of(i)[:, ds.scored_factors] / (sizes - 1)


def rotated(ds, seed=6):
    """An imperfect code: the factors mixed by a fixed random rotation."""
    k = len(ds.scored_factors)
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(k, k)))
    return lambda i: normalised_factors(ds)(i) @ rotation


def scores(represent_of, ds=None, settings=SMALL, names=None):
    ds = ds or Fake()
    return evaluate_all(
        ds, represent_of(ds), quiet=True, settings=settings, names=names or SMALL
    )


@pytest.fixture(scope="module")
def factor_scores():
    return scores(normalised_factors)


def test_factors_score_near_one(factor_scores):
    assert factor_scores["beta_vae"] >= 0.95
    assert factor_scores["factor_vae"] >= 0.95
    assert factor_scores["mig"] >= 0.9
    assert factor_scores["dci_disentanglement"] >= 0.9
    assert factor_scores["dci_completeness"] >= 0.9


def test_permutation_and_rescaling_do_not_matter(factor_scores):
    permutation = np.array([3, 0, 4, 2, 1])
    scale = np.array([2.0, -0.5, 7.0, -3.0, 0.3])
    result = scores(
        lambda ds: lambda i: normalised_factors(ds)(i)[:, permutation] * scale + 1.5
    )
    for name in HEADLINE:
        assert result[name] == pytest.approx(factor_scores[name], abs=0.05), name


def test_rotation_lowers_mig_and_dci(factor_scores):
    result = scores(lambda ds: rotated(ds, seed=3))
    assert result["mig"] < factor_scores["mig"] - 0.3
    assert result["dci_disentanglement"] < factor_scores["dci_disentanglement"] - 0.3


def test_noise_scores_near_zero_or_chance():
    noise = np.random.default_rng(4)
    result = scores(lambda ds: lambda i: noise.normal(size=(len(i), 10)))
    assert result["mig"] < 0.1
    assert result["dci_disentanglement"] < 0.1
    assert result["beta_vae"] < 0.4  # chance = 1/5 scored factors
    assert result["factor_vae"] < 0.4


def test_extra_noise_dims_keep_dci_and_factor_vae_high():
    noise = np.random.default_rng(5)

    def represent_of(ds):
        exact = normalised_factors(ds)
        return lambda i: np.hstack([exact(i), noise.normal(size=(len(i), 5))])

    result = scores(represent_of)
    assert result["dci_disentanglement"] >= 0.9
    assert result["factor_vae"] >= 0.95


def test_collapsed_code_scores_zero_factor_vae():
    result = factor_vae.compute(
        Fake(), lambda i: np.zeros((len(i), 4)), SMALL["factor_vae"],
        np.random.RandomState(0), QUIET,
    )  # fmt: skip
    assert result == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_every_metric_draws_from_its_own_seeded_random_state():
    """Each metric gets RandomState(0) of its own, as disentanglement_lib evaluates
    each metric in a run of its own: the same numbers alone or after the others."""
    first, again = scores(rotated), scores(rotated)
    assert first["details"] == again["details"]
    alone = scores(rotated, names=["mig"])
    assert alone["details"]["mig"] == first["details"]["mig"]
    ds = Fake()
    direct = mig.compute(ds, rotated(ds), SMALL["mig"], np.random.RandomState(0), QUIET)
    assert direct == first["details"]["mig"]


def test_sampling_is_disentanglement_libs_generate_batch_factor_code():
    """Batches of 16 points, each batch's factors drawn one factor at a time."""
    ds = Fake((1, 3, 5))
    _, factors = factor_codes(ds, normalised_factors(ds), 40, np.random.RandomState(7))
    rs, expected = np.random.RandomState(7), []
    for size in (16, 16, 8):
        expected.append(
            np.stack([rs.randint(3, size=size), rs.randint(5, size=size)], 1)
        )
    np.testing.assert_array_equal(factors, np.concatenate(expected))


def test_evaluate_all_layout_and_ranges():
    result = scores(rotated)
    assert set(result) == set(HEADLINE) | {
        "dci_completeness", "dci_informativeness", "details", "settings", "seconds",
        "estimators",
    }  # fmt: skip
    assert result["settings"] == SMALL
    assert set(result["seconds"]) == set(SMALL) == set(result["details"])
    for name in set(HEADLINE) | {"dci_completeness", "dci_informativeness"}:
        assert 0.0 <= result[name] <= 1.0
    details = result["details"]
    assert set(details["beta_vae"]) == {"train_accuracy", "eval_accuracy"}
    assert details["factor_vae"]["num_active_dims"] == 5
    assert len(details["mig"]["per_factor"]) == 5
    assert np.shape(details["mig"]["mutual_information"]) == (5, 5)
    assert np.shape(details["dci"]["importance"]) == (5, 5)
    assert result["dci_informativeness"] == details["dci"]["informativeness_test"]


def test_mig_by_hand_on_a_tiny_code_is_at_most_one():
    """MIG's division by the factor's entropy: without it a perfect code scores
    H(v) (here log 3 = 1.10 for a 3-valued factor), not 1."""
    factors = np.array([[0], [1], [2], [0], [1], [2]])
    perfect = np.array([[0.0, 5], [1, 5], [2, 5], [0, 5], [1, 5], [2, 5]])
    assert mig.mig_from_codes(perfect, factors, bins=3)["mig"] == pytest.approx(1.0)
    # Latent 0 tells {0} from {1, 2}: I = H(v) − 2/3·log 2 = log 3 − 2/3 log 2.
    half = np.array([[0.0, 5], [1, 5], [1, 5], [0, 5], [1, 5], [1, 5]])
    expected = (np.log(3) - 2 / 3 * np.log(2)) / np.log(3)
    result = mig.mig_from_codes(half, factors, bins=2)
    assert result["mig"] == pytest.approx(expected) and result["mig"] <= 1.0


def test_mig_is_the_gap_between_the_two_most_informative_latents():
    def duplicated(ds):  # every factor captured perfectly, but twice: no gap
        exact = normalised_factors(ds)
        return lambda i: np.hstack([exact(i), exact(i)])

    assert scores(duplicated, names=["mig"])["mig"] == pytest.approx(0.0, abs=1e-9)


def test_mig_names_the_latent_that_captures_each_factor():
    permutation = np.array([3, 0, 4, 2, 1])  # latent j holds factor permutation[j]
    result = scores(
        lambda ds: lambda i: normalised_factors(ds)(i)[:, permutation], names=["mig"]
    )
    assert result["details"]["mig"]["latent_per_factor"] == [1, 4, 3, 0, 2]


def test_histogram_discretize_equal_width_bins():
    codes = np.array([[0.0, 5.0], [0.24, 5.0], [0.5, 5.0], [1.0, 5.0]])
    binned = histogram_discretize(codes, bins=4)
    # Edges 0, .25, .5, .75 (, 1): the maximum lands in the last bin.
    assert binned[:, 0].tolist() == [1, 1, 3, 4]
    assert len(set(binned[:, 1])) == 1


def test_dci_weighted_score_by_hand():
    assert dci.weighted_score(np.eye(3)) == pytest.approx(1.0)
    assert dci.weighted_score(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-9)
    # Code 0 all on factor 0 (weight 2/3), code 1 split evenly (1/3): D = 2/3.
    importance = np.array([[2.0, 0.0], [0.5, 0.5]])
    assert dci.weighted_score(importance) == pytest.approx(2 / 3)
    # Completeness is the same score on the transpose: factor 0 is spread over
    # codes 0 and 1 (2 : 0.5), factor 1 lies in code 1 alone.
    p = np.array([2.0, 0.5]) / 2.5
    factor_0 = 1 + (p * np.log(p)).sum() / np.log(2)
    expected = factor_0 * 2.5 / 3 + 1.0 * 0.5 / 3
    assert dci.weighted_score(importance.T) == pytest.approx(expected)


def test_reference_dci_is_disentanglement_libs_default_gradient_boosting(
    monkeypatch,
):
    from sklearn import ensemble

    made = []

    class Recorded(ensemble.GradientBoostingClassifier):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(ensemble, "GradientBoostingClassifier", Recorded)

    def in_this_process(**_):  # where the recording class is
        return lambda tasks: [fit(*args, **kwargs) for fit, args, kwargs in tasks]

    monkeypatch.setattr(dci, "Parallel", in_this_process)
    ds = Fake((1, 3, 4))
    tiny = dci.METRIC.reference | {"num_train": 300, "num_test": 100}
    result = dci.compute(
        ds, normalised_factors(ds), tiny, np.random.RandomState(0), QUIET
    )
    # One classifier per factor, default settings (the seed only breaks ties).
    assert len(made) == 2 and all(set(kwargs) == {"random_state"} for kwargs in made)
    assert result["classifier"] == "gradient_boosting"
    assert result["disentanglement"] > 0.9 and result["informativeness_test"] > 0.9


def test_registry_names_every_number_and_its_title():
    assert REGISTRY["dci"].reference["classifier"] == "gradient_boosting"
    assert REGISTRY["dci"].fast["classifier"] == "extra_trees"
    names = headline_names()
    assert "mig" in names and "mig_fast" in names and "dci_completeness_fast" in names
    assert len(names) == len(set(names))
    assert title_of("mig_fast") == "MIG (fast)"
    assert title_of("dci_completeness") == "DCI completeness"
    for metric in REGISTRY.values():
        assert metric.paper and metric.title and metric.headlines
        assert set(metric.reference) == set(metric.fast), metric.name


def test_a_dataset_without_factors_is_refused_by_name():
    class Folder:
        name, has_factors = "celeba", False

    with pytest.raises(NoGroundTruth, match="'celeba' has no ground-truth factors"):
        require_factors(Folder())


@pytest.mark.slow
def test_reference_protocol_on_dsprites_sized_factors():
    ds = Fake((1, 3, 6, 40, 32, 32))
    result = evaluate_all(ds, normalised_factors(ds), names=HEADLINE[:3] + ["dci"])
    assert result["beta_vae"] >= 0.95 and result["factor_vae"] >= 0.95
    assert result["dci_disentanglement"] >= 0.9
    # 40 orientations and 32 positions share 20 bins: MI < entropy even when perfect.
    assert 0.8 <= result["mig"] < 1.0
