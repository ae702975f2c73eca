"""Modularity and Explicitness (Ridgeway & Mozer, NeurIPS 2018), as
disentanglement_lib's `modularity_explicitness`: modularity, per latent, how much
of its (histogram-discretised) mutual information goes to one factor alone;
explicitness, per factor, the ROC-AUC of a logistic regression predicting it from
the whole normalised code (one-vs-rest), mean over factors."""

import warnings

import numpy as np

from utils.metrics.base import (
    Metric,
    discrete_mutual_info,
    factor_codes,
    histogram_discretize,
)


def modularity(mutual_information: np.ndarray) -> float:
    """Mean over latents of 1 − δ, δ = Σ_k≠max θ_k² / (θ_max² (K − 1)); a latent
    with no information scores 0."""
    squared = np.square(mutual_information)
    top = squared.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - top) / (top * (squared.shape[1] - 1.0))
    per_latent = np.where(top == 0.0, 0.0, 1.0 - delta)
    return float(np.mean(per_latent))


def explicitness(x_train, y_train, x_test, y_test) -> tuple[float, float]:
    """One factor's (train, test) ROC-AUC, as disentanglement_lib: default
    LogisticRegression, classes binarised with MultiLabelBinarizer."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression().fit(x_train, y_train)
    labels = MultiLabelBinarizer()
    train = roc_auc_score(
        labels.fit_transform(y_train[:, None]), model.predict_proba(x_train)
    )
    test = roc_auc_score(
        labels.fit_transform(y_test[:, None]), model.predict_proba(x_test)
    )
    return float(train), float(test)


def modularity_from_codes(x_train, y_train, x_test, y_test, bins) -> dict:
    mi = discrete_mutual_info(histogram_discretize(x_train, bins), y_train)
    # Both splits normalised with the training split's mean and std (dlib).
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    train_norm, test_norm = (x_train - mean) / std, (x_test - mean) / std
    scores = np.array([
        explicitness(train_norm, y_train[:, k], test_norm, y_test[:, k])
        for k in range(y_train.shape[1])
    ])  # fmt: skip
    return {
        "modularity": modularity(mi),
        "explicitness_train": float(scores[:, 0].mean()),
        "explicitness_test": float(scores[:, 1].mean()),
    }


def compute(ds, represent, settings, random_state, progress) -> dict:
    s = settings
    x_train, y_train = factor_codes(
        ds, represent, s["num_train"], random_state, progress
    )
    x_test, y_test = factor_codes(ds, represent, s["num_test"], random_state, progress)
    return modularity_from_codes(x_train, y_train, x_test, y_test, s["num_bins"])


METRIC = Metric(
    name="modularity_explicitness",
    title="Modularity & Explicitness",
    paper="Ridgeway & Mozer, NeurIPS 2018",
    headlines={"modularity": "modularity", "explicitness": "explicitness_test"},
    reference={"num_train": 10_000, "num_test": 5_000, "num_bins": 20},
    fast={"num_train": 2_000, "num_test": 1_000, "num_bins": 20},
    compute=compute,
    progress_total=lambda s, num_factors: s["num_train"] + s["num_test"],
    notes={"explicitness": "LogisticRegression() on normalised codes, ROC-AUC"},
)
