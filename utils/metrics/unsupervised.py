"""The unsupervised scores of disentanglement_lib (Locatello et al., ICML 2019,
`unsupervised_metrics`): on the code's covariance C over sampled images, the total
correlation of a Gaussian with covariance C (KL from the product of its
marginals), the Wasserstein-2 distance between the two Gaussians (and divided by
tr C), and the mean mutual information between pairs of discretised latents. They
use no factor labels: a low value is what disentanglement-minded objectives aim
for, not proof of disentanglement."""

import numpy as np

from utils.metrics.base import (
    Metric,
    discrete_mutual_info,
    factor_codes,
    histogram_discretize,
)

KEYS = (
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm",
    "mutual_info_score",
)


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """KL(N(0, C) ‖ N(0, diag C)) = ½ (Σ log C_ii − log det C)."""
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """W₂² between N(0, C) and N(0, diag C): 2 tr C − 2 tr (diag(C) C)^½."""
    from scipy.linalg import sqrtm

    root = sqrtm(cov * np.diag(cov)[:, None])
    return float(np.real(2 * np.trace(cov) - 2 * np.trace(root)))


def unsupervised_from_codes(codes: np.ndarray, bins: int) -> dict:
    cov = np.cov(codes.T)
    wasserstein = gaussian_wasserstein_correlation(cov)
    binned = histogram_discretize(codes, bins)
    mi = discrete_mutual_info(binned, binned)
    np.fill_diagonal(mi, 0.0)
    d = codes.shape[1]
    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / float(np.trace(cov)),
        "mutual_info_score": float(mi.sum() / (d * d - d)),
    }


def compute(ds, represent, settings, random_state, progress) -> dict:
    codes, _ = factor_codes(
        ds, represent, settings["num_train"], random_state, progress
    )
    return unsupervised_from_codes(codes, settings["num_bins"])


METRIC = Metric(
    name="unsupervised",
    title="Unsupervised",
    paper="Locatello et al., ICML 2019",
    headlines={key: key for key in KEYS},
    reference={"num_train": 10_000, "num_bins": 20},
    fast={"num_train": 2_000, "num_bins": 20},
    compute=compute,
    progress_total=lambda s, num_factors: s["num_train"],
)
