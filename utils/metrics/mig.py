"""Mutual Information Gap (Chen et al., NeurIPS 2018), as disentanglement_lib's
`mig.compute_mig`: per factor, the gap between the two code dimensions with the most
mutual information about it, divided by the factor's entropy; the mean over factors.

This is disentanglement_lib's estimator: MI between the encoder mean, discretised
into equal-width bins, and the factor, from samples. Chen et al. estimate I(z_j; v_k)
by sampling q(z|x) instead; the two give different numbers for the same model."""

import numpy as np

from utils.metrics.base import (
    Metric,
    discrete_entropy,
    discrete_mutual_info,
    factor_codes,
    histogram_discretize,
)


def mig_from_codes(codes, factors, bins) -> dict:
    mi = discrete_mutual_info(histogram_discretize(codes, bins), factors)  # (d, K)
    # A zero row keeps the gap defined for a 1-dimensional code (MI ≥ 0, so it
    # never changes the top two otherwise).
    top = np.sort(np.vstack([mi, np.zeros(mi.shape[1])]), axis=0)[::-1]
    per_factor = (top[0] - top[1]) / discrete_entropy(factors)
    return {
        "mig": float(per_factor.mean()),
        "per_factor": per_factor.tolist(),
        # The latent with the most information about each factor: what captures it.
        "latent_per_factor": mi.argmax(axis=0).tolist(),
        "mutual_information": mi.tolist(),  # the latent × factor matrix, nats
    }


def compute(ds, represent, settings, random_state, progress) -> dict:
    codes, factors = factor_codes(
        ds, represent, settings["num_train"], random_state, progress
    )
    return mig_from_codes(codes, factors, settings["num_bins"])


METRIC = Metric(
    name="mig",
    title="MIG",
    paper="Chen et al., NeurIPS 2018",
    headlines={"mig": "mig"},
    reference={"num_train": 10_000, "num_bins": 20},
    fast={"num_train": 2_000, "num_bins": 20},
    compute=compute,
    progress_total=lambda s, num_factors: s["num_train"],
    notes={"estimator": "histogram discretiser (equal-width bins) of the code"},
)
