"""UDR (Duan et al., ICLR 2020) on hand-made groups of codes: alike across seeds
up to permutation and sign → the most it can be; unrelated → low; the degraded
seed ranks last."""

import numpy as np
import pytest

from utils.metrics.udr import REFERENCE, relative_strength, udr_scores

N, D = 1000, 5


def group(seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(N, D))
    kl = np.array([2.0, 1.5, 1.0, 0.5, 0.0])  # the last latent inactive
    base[:, 4] = 0.0
    copies = [base, base[:, [2, 0, 1, 3, 4]] * [1, -1, 1, -2, 1], base * 3 + 1]
    kls = [kl, kl[[2, 0, 1, 3, 4]], kl]
    return copies, kls


def test_relative_strength_by_hand():
    assert relative_strength(np.eye(3)) == pytest.approx(1.0)
    # Each row and column spread evenly over two: max²/sum = 1/4 / 1 per entry.
    assert relative_strength(np.full((2, 2), 0.5)) == pytest.approx(0.25)


def test_permuted_and_rescaled_copies_score_one_less_the_lassos_shrinkage():
    """On standardised codes the Lasso (α = 0.1) shrinks a one-to-one coefficient
    from 1 to 0.9, so a perfect match scores max²/sum = 0.9, as in
    disentanglement_lib."""
    codes, kl = group()
    result = udr_scores(codes, kl)
    assert np.shape(result["pairwise"]) == (3, 3)
    assert result["model_scores"] == pytest.approx([0.9] * 3, abs=1e-3)


def test_unrelated_codes_score_low_and_a_degraded_seed_ranks_last():
    codes, kl = group()
    rng = np.random.default_rng(9)
    mixed = codes[0] @ np.linalg.qr(rng.normal(size=(D, D)))[0]  # rotated: entangled
    result = udr_scores([codes[0], codes[1], mixed], [kl[0], kl[1], np.ones(D)])
    scores = result["model_scores"]
    assert scores[2] < min(scores[:2]) and scores[2] < 0.7
    noise = [rng.normal(size=(N, D)) for _ in range(3)]
    low = udr_scores(noise, [np.ones(D)] * 3)["model_scores"]
    assert max(low) < 0.5


def test_spearman_variant_agrees_on_copies():
    codes, kl = group()
    settings = REFERENCE | {"correlation_matrix": "spearman"}
    # Spearman keeps the small chance correlations of unrelated latents: < 1.
    assert min(udr_scores(codes, kl, settings)["model_scores"]) > 0.85
