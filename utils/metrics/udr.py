"""UDR, Unsupervised Disentanglement Ranking (Duan et al., ICLR 2020), as
disentanglement_lib's `evaluation/udr/metrics/udr.py` (`compute_udr_sklearn`):
model selection without labels. Models that differ only in their seed are
compared pairwise: on the same images, how well each latent of one is predicted by
a single latent of the other (Lasso, or Spearman correlation, on standardised
codes, latents with KL ≤ 0.01 nats zeroed); a pair's score rewards one-to-one
correspondences; a model's UDR is the median of its pairs' scores. The idea:
disentangled representations are alike across seeds, entangled ones each in
their own way.
"""

import numpy as np

# disentanglement_lib's udr_sklearn settings (config/tests/methods/udr/udr.gin)
REFERENCE = {
    "num_data_points": 1_000,
    "batch_size": 10,
    "correlation_matrix": "lasso",  # or "spearman"
    "lasso_alpha": 0.1,
    "kl_filter_threshold": 0.01,
}


def relative_strength(corr: np.ndarray) -> float:
    """dlib's relative_strength_disentanglement: per column and per row, the
    largest squared entry over the sum, averaged; the mean of the two."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.nan_to_num(np.max(corr, axis=0) ** 2 / np.sum(corr, axis=0), nan=0.0)
        y = np.nan_to_num(np.max(corr, axis=1) ** 2 / np.sum(corr, axis=1), nan=0.0)
    return float((np.nanmean(x) + np.nanmean(y)) / 2)


def correlation(a: np.ndarray, b: np.ndarray, kind: str, alpha: float) -> np.ndarray:
    """(d_a, d_b) |coefficients| of predicting b's latents from a's."""
    if kind == "lasso":
        from sklearn.linear_model import Lasso

        return np.abs(Lasso(alpha=alpha).fit(a, b).coef_).T
    from scipy.stats import spearmanr

    return np.abs(np.array([
        [spearmanr(a[:, i], b[:, j], nan_policy="omit")[0] for j in range(b.shape[1])]
        for i in range(a.shape[1])
    ]))  # fmt: skip


def udr_scores(codes: list, kl: list, settings=REFERENCE) -> dict:
    """`codes[m]`: model m's (n, d) codes of the same n images; `kl[m]`: its (d,)
    mean KL per latent → per-model scores and the pairwise matrix."""
    from sklearn.preprocessing import StandardScaler

    s = settings
    # Standardised; latents with KL ≤ 0.01 zeroed (dlib's fixed 0.01), and masked
    # out of the pair's score at the filter threshold.
    scaled = [
        StandardScaler().fit_transform(c) * (np.asarray(k) > 0.01)
        for c, k in zip(codes, kl, strict=True)
    ]
    masks = [np.asarray(k) > s["kl_filter_threshold"] for k in kl]
    m = len(codes)
    pairwise = np.zeros((m, m))
    for i, j in np.ndindex(m, m):
        if i != j:
            corr = correlation(scaled[i], scaled[j], s["correlation_matrix"],
                               s["lasso_alpha"])  # fmt: skip
            pairwise[i, j] = relative_strength(corr[masks[i]][:, masks[j]])
    model_scores = [float(np.median(np.delete(pairwise[:, i], i))) for i in range(m)]
    return {"model_scores": model_scores, "pairwise": pairwise.tolist()}


def sample_images(ds, settings=REFERENCE, seed=0) -> np.ndarray:
    """The images every model of the group encodes: dlib's draw, batches of
    `batch_size` from RandomState(seed)."""
    random_state = np.random.RandomState(seed)
    n, batch = settings["num_data_points"], settings["batch_size"]
    factors = [ds.sample_factors(batch, random_state) for _ in range(n // batch)]
    return ds.index_of(np.concatenate(factors))
