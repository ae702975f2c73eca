"""InfoMEC: InfoM (modularity), InfoE (explicitness), InfoC (compactness), from
Hsu, Dorrell, Whittington, Wu & Finn, "Disentanglement via Latent Quantization",
NeurIPS 2023, as the authors' standalone `compute_infomec`
(kylehkhsu/latent_quantization, disentangle/metrics/infomec.py, commit 9a420a3).

- NMI[k, j] = I(s_k; z_j) / H(s_k): the share of factor k's entropy that latent j
  holds. I by the KSG estimator for a continuous and a discrete variable (Kraskov
  et al. 2004; Ross 2014: scikit-learn's `mutual_info_classif`, 10 neighbours) on
  the standardised latent, H plug-in. The codes are not binned.
- Inactive latents are pruned: a latent whose range over the points is not above
  1/20 of the largest latent range.
- InfoM: per active latent, the share of its NMI held by its top factor; the mean
  over latents, rescaled so that an even spread over the K factors gives 0 and
  one factor 1: (mean − 1/K) / (1 − 1/K). InfoC: the same per factor, over the L
  active latents (1/L in place of 1/K).
- InfoE: per factor, the normalised predictive information of a linear
  classifier, (H_null − CE) / H_null: CE the cross-entropy of an unpenalised
  multinomial logistic regression (balanced class weights, lbfgs, 100 iterations)
  from the standardised code on the points it was fitted on, H_null that of the
  same fit to an all-zero code; the mean over factors.

Where this differs from the authors' code, and why:
- Their training script (scripts/train_ae.py, which logged the paper's tables)
  estimates the same NMI with mutual_info_classif's default 3 neighbours and
  prunes at 1/8 of the largest range; its README offers the standalone file
  (10 neighbours, 1/20) to other projects, and that is the one followed here.
  Settings `n_neighbors=3, prune_range_fraction=0.125` give the script's numbers.
  Its binned estimates (10, 20, 50 bins) were logged only to show how much
  binning moves them; the README recommends KSG for continuous latents.
- Undefined values, where their code returns NaN: a factor that no active latent
  informs (all its KSG estimates 0) is left out of InfoC's mean, as their
  training script leaves uninformative latents out of InfoM (an uninformative
  active latent is left out of InfoM here too); one active latent gives InfoC 1
  (every informed factor sits in that latent), one factor InfoM 1; nothing
  active or informative gives 0.
- The KSG jitter (1e-10 noise breaking ties) comes from the metric's seeded
  RandomState, not NumPy's global generator: reproducible. Pruned latents are
  not estimated (None in `nmi`), but their jitter is drawn, so the others' get
  the same noise as in the authors' order.
- Only continuous codes (the encoder's mean or a sample of q(z|x)): their
  `discrete_latents=True` path for quantised latents is not ported.
- The paper normalises InfoE by the factor's entropy H(s_k); the code by the
  zero-code fit, which with balanced class weights predicts the uniform
  distribution: H_null = log(number of classes). The same for the uniformly drawn
  factors here; the code's is followed.
- A two-class factor gets scikit-learn ≥ 1.8's binary logistic regression, not
  the authors' two-class softmax: unpenalised, the same fitted probabilities but
  for where lbfgs stops.
"""

import warnings

import numpy as np

from utils.metrics.base import Metric, discrete_entropy, factor_codes


def active_latents(codes: np.ndarray, prune_range_fraction: float) -> np.ndarray:
    """(d,) True for the latents whose range is above that share of the largest."""
    ranges = codes.max(axis=0) - codes.min(axis=0)
    return ranges > ranges.max() * prune_range_fraction


def normalized_mutual_information(codes, factors, active, n_neighbors, random_state,
                                  progress=None) -> np.ndarray:  # fmt: skip
    """(K, d) I(s_k; z_j) / H(s_k) in the authors' orientation and order (factor
    by factor, latent by latent: the order the jitter is drawn in); NaN where a
    latent is pruned. The bar moves by n points a factor."""
    from sklearn.feature_selection import mutual_info_classif
    from sklearn.preprocessing import StandardScaler

    n, d = codes.shape
    standardised = np.concatenate(
        [StandardScaler().fit_transform(codes[:, j][:, None]) for j in range(d)],
        axis=1,
    )
    nmi = np.full((factors.shape[1], d), np.nan)
    for k, entropy in enumerate(discrete_entropy(factors)):
        for j in range(d):
            if not active[j]:
                random_state.standard_normal(size=(n, 1))  # the jitter it would use
                continue
            (nmi[k, j],) = mutual_info_classif(
                standardised[:, j][:, None], factors[:, k], discrete_features=False,
                n_neighbors=n_neighbors, random_state=random_state,
            )  # fmt: skip
        nmi[k] /= entropy
        if progress is not None:
            progress.update(n)
    return nmi


def sparsity(nmi: np.ndarray, axis: int) -> float:
    """Mean over the other axis of max / sum along `axis`, rescaled from
    [1/n, 1] to [0, 1] (n = the length of `axis`); entries with no information
    are left out (see the module's docstring for the degenerate cases)."""
    n = nmi.shape[axis]
    if nmi.size == 0:  # no active latent
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.max(nmi, axis=axis) / np.sum(nmi, axis=axis)
    shares = shares[np.isfinite(shares)]
    if shares.size == 0:
        return 0.0
    if n == 1:
        return 1.0
    return float((np.mean(shares) - 1 / n) / (1 - 1 / n))


def cross_entropy(x: np.ndarray, y: np.ndarray, max_iter: int) -> float:
    """Training cross-entropy (nats) of the authors' logistic regression."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    # C=inf: no penalty (scikit-learn ≥ 1.8's spelling of penalty=None); lbfgs
    # fits the multinomial model for 3+ classes.
    model = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=max_iter)
    with warnings.catch_warnings():
        # Separable factors (a perfect code) stop at max_iter, as the authors'.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return float(log_loss(y, model.predict_proba(x)))


def explicitness(codes, factors, max_iter) -> np.ndarray:
    """(K,) per factor (H_null − CE) / H_null."""
    from sklearn.preprocessing import StandardScaler

    standardised = StandardScaler().fit_transform(codes)
    null = np.zeros_like(codes)
    per_factor = []
    for factor in factors.T:
        predictive = cross_entropy(standardised, factor, max_iter)
        marginal = cross_entropy(null, factor, max_iter)
        per_factor.append((marginal - predictive) / marginal)
    return np.array(per_factor)


def check_points(codes: np.ndarray, factors: np.ndarray):
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(
            f"InfoMEC needs codes (n, d) and factors (n, K) of the same points; got "
            f"{codes.shape} and {factors.shape}"
        )
    single = [k for k, f in enumerate(factors.T) if np.unique(f).size < 2]
    if single:
        raise ValueError(
            f"InfoMEC: factor column(s) {single} take a single value among the "
            f"{len(codes)} points, so nothing predicts them; draw more points "
            "(num_train) or score only factors that vary"
        )


def infomec_from_codes(codes, factors, n_neighbors, prune_range_fraction, max_iter,
                       random_state, progress=None) -> dict:  # fmt: skip
    codes = np.asarray(codes, dtype=np.float64)
    check_points(codes, factors)
    active = active_latents(codes, prune_range_fraction)
    nmi = normalized_mutual_information(
        codes, factors, active, n_neighbors, random_state, progress
    )
    pruned = nmi[:, active]  # (K, L)
    per_factor = explicitness(codes, factors, max_iter)
    return {
        "modularity": sparsity(pruned, axis=0),  # InfoM
        "explicitness": float(np.mean(per_factor)),  # InfoE
        "compactness": sparsity(pruned, axis=1),  # InfoC
        "explicitness_per_factor": per_factor.tolist(),
        "active_latents": active.tolist(),
        # latent × factor like the other metrics' matrices; None: pruned
        "nmi": [[None if np.isnan(v) else float(v) for v in row] for row in nmi.T],
    }


def check_settings(s: dict):
    if s["num_train"] <= s["n_neighbors"]:
        raise ValueError(
            f"InfoMEC: num_train={s['num_train']} points cannot give "
            f"n_neighbors={s['n_neighbors']} neighbours; draw more points"
        )
    if not 0 <= s["prune_range_fraction"] < 1:
        raise ValueError(
            f"InfoMEC: prune_range_fraction={s['prune_range_fraction']} must be in "
            "[0, 1): the share of the largest latent range a latent must exceed"
        )


def compute(ds, represent, settings, random_state, progress) -> dict:
    s = settings
    check_settings(s)  # before the points are drawn and encoded
    codes, factors = factor_codes(ds, represent, s["num_train"], random_state,
                                  progress)  # fmt: skip
    return infomec_from_codes(
        codes, factors, s["n_neighbors"], s["prune_range_fraction"], s["max_iter"],
        random_state, progress,
    )  # fmt: skip


# The authors' standalone file's constants; 10,000 points as their evaluations
# (configs/train_ae.yaml, data.num_val_data).
REFERENCE = {
    "num_train": 10_000,
    "n_neighbors": 10,
    "prune_range_fraction": 0.05,
    "max_iter": 100,
}

METRIC = Metric(
    name="infomec",
    title="InfoMEC",
    paper="Hsu et al., NeurIPS 2023",
    # "InfoMEC modularity" … wherever a title is shown (registry's title_of)
    headlines={
        "infom": "modularity",
        "infoe": "explicitness",
        "infoc": "compactness",
    },
    reference=REFERENCE,
    fast=REFERENCE | {"num_train": 2_000},
    compute=compute,
    progress_total=lambda s, num_factors: s["num_train"] * (1 + num_factors),
    notes={
        "nmi": "KSG (mutual_info_classif, n_neighbors) / plug-in factor entropy",
        "infoe": "LogisticRegression(C=inf, class_weight='balanced') training "
        "cross-entropy against a zero code's",
    },
)
