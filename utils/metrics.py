"""Disentanglement metrics of a representation on a dataset with ground-truth factors.

Protocols and default sizes follow disentanglement_lib (Locatello et al., ICML 2019).
`ds` needs `factor_sizes`, `sample_classes(n, rng)` and `images_for_classes(classes)`;
`represent(images_uint8) -> (n, d)` is the encoder mean. Only factors with more than
one value are scored (dSprites: shape, scale, orientation, posX, posY).
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score

Represent = Callable[[np.ndarray], np.ndarray]
CHUNK_IMAGES = 8192  # images per represent() call: 32 MB of 64x64 uint8 dSprites


@dataclass
class MetricSettings:  # defaults = disentanglement_lib's protocol
    seed: int = 0  # each metric draws from its own stream derived from this
    beta_vae_batch: int = 64  # pairs averaged into one feature vector
    beta_vae_train: int = 10_000  # classifier training points
    beta_vae_eval: int = 5_000
    factor_vae_batch: int = 64  # images sharing the fixed factor, per vote
    factor_vae_train: int = 10_000  # votes
    factor_vae_eval: int = 5_000
    factor_vae_variance_points: int = 10_000  # images for the global variance
    factor_vae_min_std: float = 0.05  # dims below this std are "collapsed"
    mig_points: int = 10_000
    mig_bins: int = 20  # equal-width bins per code dimension
    dci_train: int = 10_000
    dci_test: int = 5_000


# --- sampling and representing in chunks


def _varying_factors(ds) -> np.ndarray:
    return np.flatnonzero(np.asarray(ds.factor_sizes) > 1)


def _codes(ds, represent: Represent, classes: np.ndarray) -> np.ndarray:
    return np.asarray(represent(ds.images_for_classes(classes)), dtype=np.float64)


def _point_chunks(num_points: int, images_per_point: int):
    """Yield chunk sizes so that one chunk is about CHUNK_IMAGES images."""
    per_chunk = max(1, CHUNK_IMAGES // images_per_point)
    for start in range(0, num_points, per_chunk):
        yield min(per_chunk, num_points - start)


def _sample_codes(ds, represent: Represent, n: int, rng: np.random.Generator):
    """n random points: codes (n, d) and classes of the varying factors (n, K)."""
    classes = ds.sample_classes(n, rng)
    codes = [
        _codes(ds, represent, classes[start : start + CHUNK_IMAGES])
        for start in range(0, n, CHUNK_IMAGES)
    ]
    return np.concatenate(codes), classes[:, _varying_factors(ds)]


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


# --- beta-VAE score (Higgins et al., ICLR 2017)


def _beta_vae_points(ds, represent, num_points, batch, rng):
    """Features = mean |r(x1) - r(x2)| over `batch` pairs sharing factor k; label k."""
    varying = _varying_factors(ds)
    features, labels = [], []
    for p in _point_chunks(num_points, 2 * batch):
        k = rng.choice(varying, size=p)
        first = ds.sample_classes(p * batch, rng)
        second = ds.sample_classes(p * batch, rng)
        rows, shared = np.arange(p * batch), np.repeat(k, batch)
        second[rows, shared] = first[rows, shared]
        codes = _codes(ds, represent, np.concatenate([first, second]))
        diff = np.abs(codes[: p * batch] - codes[p * batch :])
        features.append(diff.reshape(p, batch, -1).mean(axis=1))
        labels.append(k)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(ds, represent, settings: MetricSettings, rng) -> dict:
    s = settings
    x_train, y_train = _beta_vae_points(
        ds, represent, s.beta_vae_train, s.beta_vae_batch, rng
    )
    x_eval, y_eval = _beta_vae_points(
        ds, represent, s.beta_vae_eval, s.beta_vae_batch, rng
    )
    # disentanglement_lib: sklearn's default LogisticRegression (no feature scaling).
    # max_iter is raised from 100 only so that lbfgs converges on unscaled features.
    model = LogisticRegression(max_iter=1000, random_state=_seed(rng))
    model.fit(x_train, y_train)
    return {
        "train_accuracy": float(model.score(x_train, y_train)),
        "eval_accuracy": float(model.score(x_eval, y_eval)),
    }


# --- FactorVAE score (Kim & Mnih, ICML 2018)


def _factor_vae_votes(ds, represent, num_votes, batch, rng, global_var, active):
    """votes[k, j] = how often active dim j had the smallest normalised variance
    when factor k was held fixed over a batch."""
    varying = _varying_factors(ds)
    votes = np.zeros((len(varying), int(active.sum())), dtype=np.int64)
    for p in _point_chunks(num_votes, batch):
        k = rng.integers(len(varying), size=p)  # index into `varying`
        classes = ds.sample_classes(p * batch, rng).reshape(p, batch, -1)
        points, fixed = np.arange(p), varying[k]
        classes[points, :, fixed] = classes[points, 0, fixed][:, None]
        codes = _codes(ds, represent, classes.reshape(p * batch, -1))
        local_var = codes.reshape(p, batch, -1).var(axis=1, ddof=1)
        argmin = (local_var[:, active] / global_var[active]).argmin(axis=1)
        np.add.at(votes, (k, argmin), 1)
    return votes


def factor_vae_score(ds, represent, settings: MetricSettings, rng) -> dict:
    s = settings
    codes, _ = _sample_codes(ds, represent, s.factor_vae_variance_points, rng)
    global_var = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= s.factor_vae_min_std
    if not active.any():  # disentanglement_lib's convention for a collapsed code
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    args = (s.factor_vae_batch, rng, global_var, active)
    train_votes = _factor_vae_votes(ds, represent, s.factor_vae_train, *args)
    eval_votes = _factor_vae_votes(ds, represent, s.factor_vae_eval, *args)
    # Majority-vote classifier: each dim predicts the factor it voted for most often.
    predicted = train_votes.argmax(axis=0)
    dims = np.arange(train_votes.shape[1])

    def accuracy(votes):
        return float(votes[predicted, dims].sum() / votes.sum())

    return {
        "train_accuracy": accuracy(train_votes),
        "eval_accuracy": accuracy(eval_votes),
        "num_active_dims": int(active.sum()),
    }


# --- Mutual Information Gap (Chen et al., NeurIPS 2018)


def _histogram_discretize(codes: np.ndarray, bins: int) -> np.ndarray:
    """Per dimension, equal-width bins over its observed range (disentanglement_lib)."""
    return np.stack(
        [np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T], axis=1
    )


def mig(ds, represent, settings: MetricSettings, rng) -> dict:
    # This is disentanglement_lib's estimator: MI between the *discretised* encoder
    # mean and the factor, from samples. Chen et al. instead estimate I(z_j; v_k)
    # by sampling q(z|x); the two give different numbers for the same model.
    codes, factors = _sample_codes(ds, represent, settings.mig_points, rng)
    binned = _histogram_discretize(codes, settings.mig_bins)
    mi = np.array(
        [[mutual_info_score(f, c) for f in factors.T] for c in binned.T]
    )  # (d, K), nats
    entropy = np.array([mutual_info_score(f, f) for f in factors.T])
    # A zero row keeps the gap defined for a 1-dim code (MI >= 0, so it never
    # changes the top two otherwise).
    top = np.sort(np.vstack([mi, np.zeros(mi.shape[1])]), axis=0)[::-1]
    per_factor = (top[0] - top[1]) / entropy
    return {"mig": float(per_factor.mean()), "per_factor": per_factor.tolist()}


# --- DCI disentanglement (Eastwood & Williams, ICLR 2018)


def _one_minus_entropy(weights: np.ndarray, base: int) -> np.ndarray:
    """1 - H_base(row / row sum) per row; 1e-11 as in disentanglement_lib."""
    if base < 2:
        return np.ones(weights.shape[0])
    p = weights + 1e-11
    p = p / p.sum(axis=1, keepdims=True)
    return np.clip(1 + (p * np.log(p)).sum(axis=1) / np.log(base), 0.0, 1.0)


def _weighted_score(importance: np.ndarray) -> float:
    """Sum over rows of (1 - entropy over columns) x the row's share of importance."""
    total = importance.sum()
    share = importance.sum(axis=1) / total if total > 0 else None
    per_row = _one_minus_entropy(importance, base=importance.shape[1])
    return float(np.average(per_row, weights=share))


def dci(ds, represent, settings: MetricSettings, rng) -> dict:
    x_train, y_train = _sample_codes(ds, represent, settings.dci_train, rng)
    x_test, y_test = _sample_codes(ds, represent, settings.dci_test, rng)
    importance = np.zeros((x_train.shape[1], y_train.shape[1]))  # (d, K)
    accuracy = []
    for k in range(y_train.shape[1]):
        # disentanglement_lib fits GradientBoostingClassifier() (100 stages, one
        # tree per class per stage): ~36 s per 10 stages for dSprites' 113 classes,
        # so minutes at its defaults. Extremely randomised trees (Geurts et al. 2006)
        # with all features tried at every split, as in boosting, give the same
        # kind of impurity importances in ~5 s for all factors; min_samples_leaf
        # bounds tree size when codes are noise-like.
        model = ExtraTreesClassifier(
            n_estimators=50,
            max_features=None,
            min_samples_leaf=10,
            n_jobs=-1,
            random_state=_seed(rng),
        )
        model.fit(x_train, y_train[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        accuracy.append(model.score(x_test, y_test[:, k]))
    return {
        "disentanglement": _weighted_score(importance),
        "completeness": _weighted_score(importance.T),
        "informativeness_test": float(np.mean(accuracy)),
    }


# --- all four


METRICS = {  # name -> (function, stream id, key of the headline number)
    "beta_vae": (beta_vae_score, 0, "eval_accuracy"),
    "factor_vae": (factor_vae_score, 1, "eval_accuracy"),
    "mig": (mig, 2, "mig"),
    "dci_disentanglement": (dci, 3, "disentanglement"),
}


def evaluate_all(ds, represent, settings: MetricSettings | None = None) -> dict:
    settings = settings or MetricSettings()
    result = {"details": {}, "settings": asdict(settings), "seconds": {}}
    for name, (metric, stream, key) in METRICS.items():
        # One generator per metric, keyed by (seed, stream): a metric's result does
        # not depend on which other metrics ran before it.
        rng = np.random.default_rng([settings.seed, stream])
        start = time.perf_counter()
        details = metric(ds, represent, settings, rng)
        result["seconds"][name] = time.perf_counter() - start
        result["details"][name] = details
        result[name] = float(details[key])
    return result
