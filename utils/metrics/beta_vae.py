"""β-VAE score (Higgins et al., ICLR 2017), as disentanglement_lib's
`beta_vae.compute_beta_vae_sklearn`: each point fixes one random factor k across
`batch_size` pairs of images, its feature is the mean |r(x1) − r(x2)| over them, its
label k; a logistic regression predicts k; the score is its evaluation accuracy."""

import warnings

import numpy as np

from utils.metrics.base import CHUNK_IMAGES, Metric, codes_of


def _points(ds, represent, num_points, batch_size, random_state, progress):
    """Draw for draw as disentanglement_lib: per point the factor, then both
    batches of factors; encoded chunk by chunk."""
    per_chunk = max(1, CHUNK_IMAGES // (2 * batch_size))
    features, labels = [], []
    for start in range(0, num_points, per_chunk):
        size = min(per_chunk, num_points - start)
        k = np.zeros(size, dtype=np.int64)
        first, second = [], []
        for p in range(size):
            k[p] = random_state.randint(len(ds.scored_factors))
            a = ds.sample_factors(batch_size, random_state)
            b = ds.sample_factors(batch_size, random_state)
            b[:, k[p]] = a[:, k[p]]
            first.append(a)
            second.append(b)
        codes = codes_of(represent, ds.index_of(np.concatenate(first + second)))
        half = size * batch_size
        diff = np.abs(codes[:half] - codes[half:]).reshape(size, batch_size, -1)
        features.append(diff.mean(axis=1))
        labels.append(k)
        progress.update(size)
    return np.concatenate(features), np.concatenate(labels)


def compute(ds, represent, settings, random_state, progress) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    s = settings
    x_train, y_train = _points(
        ds, represent, s["num_train"], s["batch_size"], random_state, progress
    )
    # disentanglement_lib's LogisticRegression() with scikit-learn's defaults (today
    # lbfgs, 100 iterations; it was liblinear before scikit-learn 0.22). Unscaled
    # features may stop it before convergence: that is part of the reference.
    model = LogisticRegression()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    train_accuracy = float(model.score(x_train, y_train))
    x_eval, y_eval = _points(
        ds, represent, s["num_eval"], s["batch_size"], random_state, progress
    )
    return {
        "train_accuracy": train_accuracy,
        "eval_accuracy": float(model.score(x_eval, y_eval)),
    }


METRIC = Metric(
    name="beta_vae",
    title="β-VAE score",
    paper="Higgins et al., ICLR 2017",
    headlines={"beta_vae": "eval_accuracy"},
    reference={"batch_size": 64, "num_train": 10_000, "num_eval": 5_000},
    fast={"batch_size": 64, "num_train": 500, "num_eval": 250},
    compute=compute,
    progress_total=lambda s, num_factors: s["num_train"] + s["num_eval"],
    notes={"classifier": "LogisticRegression() (scikit-learn defaults)"},
)
