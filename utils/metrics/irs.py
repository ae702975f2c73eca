"""IRS, Interventional Robustness Score (Suter et al., ICML 2019), as
disentanglement_lib's `irs.compute_irs`: for each latent and factor, how far the
latent moves (its `diff_quantile` deviation) while that factor is held fixed and
the others vary, relative to its largest deviation overall; a latent's score is
its best factor's 1 − relative deviation; the mean weighted by each latent's
largest deviation. The factors are histogram-discretised first (dlib)."""

import numpy as np

from utils.metrics.base import Metric, factor_codes, histogram_discretize


def irs_scores(factors: np.ndarray, latents: np.ndarray, diff_quantile: float) -> dict:
    """disentanglement_lib's `scalable_disentanglement_score` on (n, K) factors and
    (n, d) latents."""
    max_deviations = np.max(np.abs(latents - latents.mean(axis=0)), axis=0)
    deviations = np.zeros((latents.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        values = np.unique(factors[:, k])
        for value in values:
            match = latents[factors[:, k] == value]
            diffs = np.abs(match - match.mean(axis=0))
            deviations[:, k] += np.percentile(diffs, q=diff_quantile * 100, axis=0)
        deviations[:, k] /= len(values)
    matrix = 1.0 - deviations / max_deviations[:, None]
    per_latent = matrix.max(axis=1)
    if max_deviations.sum() > 0:
        score = np.average(per_latent, weights=max_deviations)
    else:
        score = per_latent.mean()
    return {"irs": float(score), "irs_matrix": matrix.tolist()}


def irs_from_codes(codes, factors, bins, diff_quantile) -> dict:
    active = codes[:, codes.var(axis=0) > 0.0]  # dlib's _drop_constant_dims
    if not active.size:
        return {"irs": 0.0, "num_active_dims": 0}
    result = irs_scores(histogram_discretize(factors, bins), active, diff_quantile)
    # The count of active dimensions (dlib stores the sum of their values here).
    return result | {"num_active_dims": int(active.shape[1])}


def compute(ds, represent, settings, random_state, progress) -> dict:
    s = settings
    codes, factors = factor_codes(
        ds,
        represent,
        s["num_train"],
        random_state,
        progress,
        batch_size=s["batch_size"],
    )
    return irs_from_codes(codes, factors, s["num_bins"], s["diff_quantile"])


METRIC = Metric(
    name="irs",
    title="IRS",
    paper="Suter et al., ICML 2019",
    headlines={"irs": "irs"},
    reference={
        "num_train": 10_000,
        "batch_size": 16,
        "num_bins": 20,
        "diff_quantile": 0.99,
    },
    fast={"num_train": 2_000, "batch_size": 16, "num_bins": 20, "diff_quantile": 0.99},
    compute=compute,
    progress_total=lambda s, num_factors: s["num_train"],
)
