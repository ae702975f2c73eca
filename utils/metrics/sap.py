"""SAP score, Separated Attribute Predictability (Kumar et al., ICLR 2018), as
disentanglement_lib's `sap_score.compute_sap` with discrete factors: for each
(latent, factor) pair a linear SVM predicts the factor from that latent alone;
its test accuracy fills a (latent × factor) matrix; the score is the mean over
factors of the gap between the two most predictive latents."""

import numpy as np

from utils.metrics.base import Metric, factor_codes


def score_matrix(x_train, y_train, x_test, y_test, continuous=False) -> np.ndarray:
    """(d, K): per pair, a one-latent predictor's test accuracy (discrete factors)
    or the squared correlation on the training points (continuous ones)."""
    from sklearn.svm import LinearSVC

    matrix = np.zeros((x_train.shape[1], y_train.shape[1]))
    for i, j in np.ndindex(matrix.shape):
        if continuous:
            cov = np.cov(x_train[:, i], y_train[:, j], ddof=1)
            matrix[i, j] = (
                cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
            )
        else:
            # disentanglement_lib's LinearSVC(C=0.01, class_weight="balanced").
            model = LinearSVC(C=0.01, class_weight="balanced")
            model.fit(x_train[:, i : i + 1], y_train[:, j])
            matrix[i, j] = np.mean(model.predict(x_test[:, i : i + 1]) == y_test[:, j])
    return matrix


def sap_from_codes(x_train, y_train, x_test, y_test, continuous=False) -> dict:
    matrix = score_matrix(x_train, y_train, x_test, y_test, continuous)
    top = np.sort(matrix, axis=0)
    return {"score": float(np.mean(top[-1] - top[-2])), "score_matrix": matrix.tolist()}


def compute(ds, represent, settings, random_state, progress) -> dict:
    s = settings
    x_train, y_train = factor_codes(
        ds, represent, s["num_train"], random_state, progress
    )
    x_test, y_test = factor_codes(ds, represent, s["num_test"], random_state, progress)
    return sap_from_codes(x_train, y_train, x_test, y_test, s["continuous_factors"])


METRIC = Metric(
    name="sap",
    title="SAP score",
    paper="Kumar et al., ICLR 2018",
    headlines={"sap": "score"},
    reference={"num_train": 10_000, "num_test": 5_000, "continuous_factors": False},
    fast={"num_train": 2_000, "num_test": 1_000, "continuous_factors": False},
    compute=compute,
    progress_total=lambda s, num_factors: s["num_train"] + s["num_test"],
    notes={"classifier": "LinearSVC(C=0.01, class_weight='balanced') per pair"},
)
