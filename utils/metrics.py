"""Disentanglement metrics of a representation on a dataset with ground-truth factors.

`REFERENCE` follows disentanglement_lib (Locatello et al., ICML 2019): its protocols,
sizes and classifiers, so that a number here means what the same name means in a
paper. `FAST` is a smaller variant for quick looks; its numbers are stored under
names of their own (ending in `_fast`) and are not comparable with published ones.

`ds` needs `factor_sizes`, `sample_classes(n, rng)` and `images_for_classes(classes)`;
`represent(images) -> (n, d)` is the encoder mean. Only factors with more than one
value are scored (dSprites: shape, scale, orientation, posX, posY).
"""

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import entropy
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from tqdm import tqdm

Represent = Callable[[np.ndarray], np.ndarray]
CHUNK_IMAGES = 8192  # images per represent() call: 32 MB of 64x64 uint8 dSprites


@dataclass(frozen=True)
class Protocol:  # defaults = disentanglement_lib's
    name: str = "reference"
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
    # gradient_boosting: disentanglement_lib's GradientBoostingClassifier() with
    # default settings (minutes on a CPU for dSprites' 113 classes); extra_trees:
    # the fast variant, which scored DCI 0.036 lower on the same codes.
    dci_classifier: str = "gradient_boosting"

    @property
    def suffix(self) -> str:
        """What this protocol's numbers are stored under: `mig`, `mig_fast`."""
        return "" if self.name == "reference" else f"_{self.name}"


REFERENCE = Protocol()
FAST = Protocol(
    name="fast",
    beta_vae_train=500,
    beta_vae_eval=250,
    factor_vae_train=500,
    factor_vae_eval=250,
    factor_vae_variance_points=1_000,
    mig_points=2_000,
    dci_train=2_000,
    dci_test=1_000,
    dci_classifier="extra_trees",
)
PROTOCOLS = {p.name: p for p in (REFERENCE, FAST)}


# --- sampling and representing in chunks


def _varying_factors(ds) -> np.ndarray:
    return np.flatnonzero(np.asarray(ds.factor_sizes) > 1)


def _codes(ds, represent: Represent, classes: np.ndarray) -> np.ndarray:
    return np.asarray(represent(ds.images_for_classes(classes)), dtype=np.float64)


def _point_chunks(num_points: int, images_per_point: int, progress: tqdm):
    """Yield chunk sizes of about CHUNK_IMAGES images, advancing `progress`."""
    per_chunk = max(1, CHUNK_IMAGES // images_per_point)
    for start in range(0, num_points, per_chunk):
        size = min(per_chunk, num_points - start)
        yield size
        progress.update(size)


def _sample_codes(ds, represent, n, rng, progress):
    """n random points: codes (n, d) and classes of the varying factors (n, K)."""
    classes = ds.sample_classes(n, rng)
    codes, start = [], 0
    for size in _point_chunks(n, 1, progress):
        codes.append(_codes(ds, represent, classes[start : start + size]))
        start += size
    return np.concatenate(codes), classes[:, _varying_factors(ds)]


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


# --- beta-VAE score (Higgins et al., ICLR 2017)


def _beta_vae_points(ds, represent, num_points, batch, rng, progress):
    """Features = mean |r(x1) - r(x2)| over `batch` pairs sharing factor k; label k."""
    varying = _varying_factors(ds)
    features, labels = [], []
    for p in _point_chunks(num_points, 2 * batch, progress):
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


def beta_vae_score(ds, represent, protocol: Protocol, rng, progress) -> dict:
    s = protocol
    x_train, y_train = _beta_vae_points(
        ds, represent, s.beta_vae_train, s.beta_vae_batch, rng, progress
    )
    x_eval, y_eval = _beta_vae_points(
        ds, represent, s.beta_vae_eval, s.beta_vae_batch, rng, progress
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


def _factor_vae_votes(ds, represent, num_votes, batch, rng, global_var, active, bar):
    """votes[k, j] = how often active dim j had the smallest normalised variance
    when factor k was held fixed over a batch."""
    varying = _varying_factors(ds)
    votes = np.zeros((len(varying), int(active.sum())), dtype=np.int64)
    for p in _point_chunks(num_votes, batch, bar):
        k = rng.integers(len(varying), size=p)  # index into `varying`
        classes = ds.sample_classes(p * batch, rng).reshape(p, batch, -1)
        points, fixed = np.arange(p), varying[k]
        classes[points, :, fixed] = classes[points, 0, fixed][:, None]
        codes = _codes(ds, represent, classes.reshape(p * batch, -1))
        local_var = codes.reshape(p, batch, -1).var(axis=1, ddof=1)
        argmin = (local_var[:, active] / global_var[active]).argmin(axis=1)
        np.add.at(votes, (k, argmin), 1)
    return votes


def factor_vae_score(ds, represent, protocol: Protocol, rng, progress) -> dict:
    s = protocol
    codes, _ = _sample_codes(ds, represent, s.factor_vae_variance_points, rng, progress)
    global_var = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= s.factor_vae_min_std
    if not active.any():  # disentanglement_lib's convention for a collapsed code
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    args = (s.factor_vae_batch, rng, global_var, active, progress)
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


def mig(ds, represent, protocol: Protocol, rng, progress) -> dict:
    # This is disentanglement_lib's estimator: MI between the *discretised* encoder
    # mean and the factor, from samples. Chen et al. instead estimate I(z_j; v_k)
    # by sampling q(z|x); the two give different numbers for the same model.
    codes, factors = _sample_codes(ds, represent, protocol.mig_points, rng, progress)
    binned = _histogram_discretize(codes, protocol.mig_bins)
    mi = np.array(
        [[mutual_info_score(f, c) for f in factors.T] for c in binned.T]
    )  # (d, K), nats
    factor_entropy = np.array([mutual_info_score(f, f) for f in factors.T])
    # A zero row keeps the gap defined for a 1-dim code (MI >= 0, so it never
    # changes the top two otherwise).
    top = np.sort(np.vstack([mi, np.zeros(mi.shape[1])]), axis=0)[::-1]
    per_factor = (top[0] - top[1]) / factor_entropy
    return {
        "mig": float(per_factor.mean()),
        "per_factor": per_factor.tolist(),
        # The latent with the most information about each factor: what captures it.
        "latent_per_factor": mi.argmax(axis=0).tolist(),
    }


# --- DCI (Eastwood & Williams, ICLR 2018)


def _one_minus_entropy(importance: np.ndarray) -> np.ndarray:
    """Per row, 1 − entropy of the row normalised, in base the row's length;
    1e-11 as in disentanglement_lib."""
    return 1.0 - entropy(importance.T + 1e-11, base=importance.shape[1])


def _weighted_score(importance: np.ndarray) -> float:
    """Sum over rows of (1 - entropy over columns) x the row's share of importance:
    disentanglement on (codes, factors), completeness on its transpose."""
    per_row = _one_minus_entropy(importance)
    if importance.sum() == 0:
        importance = np.ones_like(importance)
    share = importance.sum(axis=1) / importance.sum()
    return float(np.sum(per_row * share))


def _fit_factor(x_train, y_train, x_test, y_test, classifier, seed):
    """One classifier predicting one factor → (importance per code, train and
    test accuracy)."""
    if classifier == "gradient_boosting":
        # disentanglement_lib's GradientBoostingClassifier() with its defaults;
        # random_state only fixes the ties its trees break at random.
        model = GradientBoostingClassifier(random_state=seed)
    else:
        # Extremely randomised trees (Geurts et al. 2006), every feature tried at
        # each split as boosting does; min_samples_leaf bounds tree size when the
        # codes are noise-like.
        model = ExtraTreesClassifier(
            n_estimators=50, max_features=None, min_samples_leaf=10, random_state=seed
        )
    model.fit(x_train, y_train)
    return (
        np.abs(model.feature_importances_),
        float(model.score(x_train, y_train)),
        float(model.score(x_test, y_test)),
    )


def dci(ds, represent, protocol: Protocol, rng, progress) -> dict:
    s = protocol
    x_train, y_train = _sample_codes(ds, represent, s.dci_train, rng, progress)
    x_test, y_test = _sample_codes(ds, represent, s.dci_test, rng, progress)
    factors = range(y_train.shape[1])
    seeds = [_seed(rng) for _ in factors]
    # One classifier per factor, fitted in parallel over factors (processes: the
    # trees hold the GIL for much of their fit).
    fits = Parallel(n_jobs=min(len(factors), _cores()), return_as="generator")(
        delayed(_fit_factor)(
            x_train, y_train[:, k], x_test, y_test[:, k], s.dci_classifier, seeds[k]
        )
        for k in factors
    )
    importance = np.zeros((x_train.shape[1], y_train.shape[1]))  # (d, K)
    accuracy = np.zeros((2, y_train.shape[1]))
    for k, (weights, train, test) in enumerate(fits):
        importance[:, k], accuracy[:, k] = weights, (train, test)
        progress.update(s.dci_train + s.dci_test)  # one factor's classifier done
    return {
        "disentanglement": _weighted_score(importance),
        "completeness": _weighted_score(importance.T),
        "informativeness_train": float(accuracy[0].mean()),
        "informativeness_test": float(accuracy[1].mean()),
        "classifier": s.dci_classifier,
    }


# --- all of them


METRICS = {  # name -> (function, stream id, progress steps per protocol)
    "beta_vae": (beta_vae_score, 0),
    "factor_vae": (factor_vae_score, 1),
    "mig": (mig, 2),
    "dci": (dci, 3),
}
HEADLINES = {  # key in results -> (metric, key of its details)
    "beta_vae": ("beta_vae", "eval_accuracy"),
    "factor_vae": ("factor_vae", "eval_accuracy"),
    "mig": ("mig", "mig"),
    "dci_disentanglement": ("dci", "disentanglement"),
    "dci_completeness": ("dci", "completeness"),
    "dci_informativeness": ("dci", "informativeness_test"),
}
TITLES = {
    "beta_vae": "β-VAE score",
    "factor_vae": "FactorVAE score",
    "mig": "MIG",
    "dci": "DCI",
}


def _progress_total(name: str, s: Protocol, num_factors: int) -> int:
    return {
        "beta_vae": s.beta_vae_train + s.beta_vae_eval,
        "factor_vae": s.factor_vae_variance_points
        + s.factor_vae_train
        + s.factor_vae_eval,
        "mig": s.mig_points,
        # sampling, then one classifier per factor
        "dci": (s.dci_train + s.dci_test) * (1 + num_factors),
    }[name]


def evaluate_all(ds, represent, protocol: Protocol = REFERENCE, quiet=False) -> dict:
    """Every metric of `protocol` → {headline: score, "details", "settings",
    "seconds"}. A tqdm bar per metric (encoding happens inside: see evaluate.py)."""
    result = {"details": {}, "settings": asdict(protocol), "seconds": {}}
    num_factors = len(_varying_factors(ds))
    for name, (metric, stream) in METRICS.items():
        # One generator per metric, keyed by (seed, stream): a metric's result does
        # not depend on which other metrics ran before it.
        rng = np.random.default_rng([protocol.seed, stream])
        total = _progress_total(name, protocol, num_factors)
        bar = tqdm(
            total=total, desc=f"{TITLES[name]} ({protocol.name})", unit="point",
            disable=quiet, dynamic_ncols=True, mininterval=1.0,
        )  # fmt: skip
        start = time.perf_counter()
        with bar:
            result["details"][name] = metric(ds, represent, protocol, rng, bar)
        result["seconds"][name] = time.perf_counter() - start
    for key, (name, detail) in HEADLINES.items():
        result[key] = float(result["details"][name][detail])
    return result
