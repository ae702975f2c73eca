"""Known answers for SAP, Modularity & Explicitness, IRS and the unsupervised
scores on hand-made codes; their agreement with disentanglement_lib's own code
is tested in test_conformance.py."""

import numpy as np
import pytest

from utils.metrics import irs, modularity, sap, unsupervised

RNG = np.random.default_rng(0)
FACTORS = np.stack([RNG.integers(3, size=2000), RNG.integers(4, size=2000)], 1)


def perfect(factors, extra=2):
    """Each factor in a latent of its own, plus near-constant noise latents."""
    noise = 1e-3 * np.random.default_rng(1).normal(size=(len(factors), extra))
    return np.hstack([factors / factors.max(axis=0), noise])


def test_sap_is_the_gap_between_the_two_most_predictive_latents():
    x = perfect(FACTORS)
    result = sap.sap_from_codes(x, FACTORS, x, FACTORS)
    matrix = np.array(result["score_matrix"])
    assert matrix.shape == (4, 2)
    top = np.sort(matrix, axis=0)
    assert result["score"] == pytest.approx(np.mean(top[-1] - top[-2]))
    assert result["score"] > 0.2
    # The same factor in two latents: no gap, SAP 0 (without the top-2 gap: > 0).
    twice = np.hstack([x[:, :1], x[:, :1]])
    assert sap.sap_from_codes(twice, FACTORS[:, :1], twice, FACTORS[:, :1])[
        "score"
    ] == pytest.approx(0.0)


def test_modularity_by_hand():
    # Latent 0 all on factor 0; latent 1 split evenly over two factors: 1 − 1 = 0.
    mi = np.array([[2.0, 0.0], [1.0, 1.0]])
    assert modularity.modularity(mi) == pytest.approx(0.5)
    assert modularity.modularity(np.zeros((2, 2))) == 0.0  # no information: 0


def test_modularity_and_explicitness_of_a_perfect_and_a_random_code():
    x = perfect(FACTORS, extra=0)
    good = modularity.modularity_from_codes(x, FACTORS, x, FACTORS, bins=20)
    assert good["modularity"] > 0.95 and good["explicitness_test"] > 0.95
    noise = np.random.default_rng(2).normal(size=(2000, 2))
    bad = modularity.modularity_from_codes(noise, FACTORS, noise, FACTORS, bins=20)
    assert bad["explicitness_test"] < 0.6  # chance: an ROC-AUC of 0.5


def test_irs_of_a_perfect_and_an_entangled_code():
    x = perfect(FACTORS, extra=0)
    assert irs.irs_from_codes(x, FACTORS, 20, 0.99)["irs"] == pytest.approx(1.0)
    mixed = x @ np.array([[1.0, 1.0], [1.0, -1.0]])
    assert irs.irs_from_codes(mixed, FACTORS, 20, 0.99)["irs"] < 0.7
    constant = np.ones((2000, 3))
    assert irs.irs_from_codes(constant, FACTORS, 20, 0.99) == {
        "irs": 0.0, "num_active_dims": 0,
    }  # fmt: skip


def test_gaussian_scores_in_closed_form():
    rho = 0.6
    cov = np.array([[1.0, rho], [rho, 1.0]])
    assert unsupervised.gaussian_total_correlation(cov) == pytest.approx(
        -0.5 * np.log(1 - rho**2)
    )
    # W₂² between N(0, C) and N(0, I): 2 tr C − 2 tr C^½; C^½ has eigenvalues
    # √(1 ± ρ).
    expected = 4 - 2 * (np.sqrt(1 + rho) + np.sqrt(1 - rho))
    assert unsupervised.gaussian_wasserstein_correlation(cov) == pytest.approx(expected)
    assert unsupervised.gaussian_total_correlation(np.diag([2.0, 3.0])) == 0.0


def test_unsupervised_scores_of_independent_and_dependent_latents():
    independent = np.random.default_rng(3).normal(size=(5000, 3))
    low = unsupervised.unsupervised_from_codes(independent, bins=20)
    assert low["gaussian_total_correlation"] < 0.01
    assert low["gaussian_wasserstein_correlation_norm"] < 0.01
    copies = np.hstack([independent[:, :1]] * 3)
    high = unsupervised.unsupervised_from_codes(copies + 1e-3 * independent, bins=20)
    assert high["mutual_info_score"] > 2.0 > low["mutual_info_score"]
    assert high["gaussian_total_correlation"] > 5
