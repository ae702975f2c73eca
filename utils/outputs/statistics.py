"""Statistics for seed studies, as the compare page shows them: numpy and scipy only,
no page layout and no files (utils.outputs.compare_page renders the results).

Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised Learning
of Disentangled Representations" (ICML), found that the random seed moves the
disentanglement metrics about as much as the choice of objective does, and that the
metrics agree with each other only partly (their rank correlations between metrics).
With the 3 seeds a study here can afford, a difference of means says little unless
it comes with its uncertainty: an interval, an exact test that says how small its
p-value can be at all with so few seeds, and how many seeds would be needed.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05  # two-sided
POWER = 0.8
# A fixed seed, and a fresh generator per interval: a page rebuilt from the same
# runs shows the same intervals, whatever else it computed first.
SEED = 0
RESAMPLES = 9999  # scipy's default
# With fewer values a bootstrap resamples from 1 or 2 numbers: an interval that
# says nothing about the mean's uncertainty (with 2, it is the pair's range).
MIN_BOOTSTRAP = 3
# Two groups are compared seed by seed from this many seeds in common: one pair
# is no more than the two runs' own rows.
MIN_PAIRS = 2
# Spearman's ρ of 2 points is ±1 whatever they are.
MIN_CORRELATION = 3
# 2^20 sign flips (a million means) take a second; beyond, random flips.
MAX_EXACT_PAIRS = 20


def finite(values) -> np.ndarray:
    """The finite numbers among `values`: None, NaN and ±inf are left out."""
    numbers = [
        float(v)
        for v in values
        if isinstance(v, int | float | np.number) and not isinstance(v, bool)
    ]
    return np.array([v for v in numbers if math.isfinite(v)], dtype=float)


def bootstrap_interval(values, confidence=CONFIDENCE) -> tuple[float, float] | None:
    """A `confidence` bootstrap interval for the mean of the finite `values`, or
    None when there are fewer than MIN_BOOTSTRAP.

    The percentile method, not BCa (scipy's default): BCa's acceleration is a
    jackknife estimate, which with 3 to 10 values and ties (equal metric values)
    is unstable or undefined (scipy warns and may return NaN); the percentile
    interval always exists. Both undercover at such n: with 3 values the 95 %
    percentile interval is the values' range (each extreme is resampled thrice
    with probability 1/27 > 2.5 %).
    """
    numbers = finite(values)
    if len(numbers) < MIN_BOOTSTRAP:
        return None
    result = stats.bootstrap(
        (numbers,),
        np.mean,
        n_resamples=RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def smallest_p_value(pairs: int) -> float:
    """The smallest two-sided p-value an exact sign-flip test of `pairs` paired
    differences can give: of the 2^n flips, only the observed signs and their
    opposite are as extreme as differences that all have one sign."""
    return min(1.0, 2 / 2**pairs)


def fewest_pairs(alpha=ALPHA) -> int:
    """The fewest pairs with which the exact sign-flip test can reach p ≤ `alpha`
    (6 at 0.05: 2/2^6 = 0.031, while 2/2^5 = 0.0625)."""
    pairs = 1
    while smallest_p_value(pairs) > alpha:
        pairs += 1
    return pairs


def sign_flip_p_value(differences) -> float | None:
    """The two-sided paired permutation test of a zero mean difference: under the
    null hypothesis each pair's difference is as likely to have either sign, so
    the observed mean is ranked among the means of all 2^n sign flips (exact,
    scipy.stats.permutation_test with permutation_type="samples" on one sample);
    beyond MAX_EXACT_PAIRS, among RESAMPLES random flips."""
    d = finite(differences)
    if not len(d):
        return None
    exact = len(d) <= MAX_EXACT_PAIRS
    result = stats.permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",
        n_resamples=np.inf if exact else RESAMPLES,
        vectorized=True,
        alternative="two-sided",
        rng=np.random.default_rng(SEED),
    )
    return float(result.pvalue)


def seeds_needed(mean_difference, sd, alpha=ALPHA, power=POWER) -> int | None:
    """The paired seeds a two-sided test at `alpha` needs to detect
    `mean_difference` with `power`, when paired differences spread by `sd`:
    n = ((z_{1-α/2} + z_power) · sd / |mean difference|)², rounded up (the normal
    approximation; a t-based calculation asks one or two more), and at least
    fewest_pairs(alpha), below which the exact test cannot reach `alpha` at all.
    None when no difference was observed (no number of seeds would do) or the
    spread is unknown."""
    if sd is None or not math.isfinite(sd) or not math.isfinite(mean_difference):
        return None
    if mean_difference == 0:
        return None
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    # The 1e-9 keeps a product such as 9.000000000000002 from asking for 10.
    n = math.ceil((z * sd / abs(mean_difference)) ** 2 - 1e-9)
    return max(n, fewest_pairs(alpha))


@dataclass(frozen=True)
class PairedComparison:
    """B − A over the seeds both groups ran, for one metric."""

    differences: np.ndarray  # one per seed, B − A
    mean: float
    interval: tuple[float, float] | None  # bootstrap over the differences
    p_value: float
    sd: float | None  # sample std of the differences (ddof=1); None with one pair
    seeds_needed: int | None

    @property
    def pairs(self) -> int:
        return len(self.differences)


def paired_comparison(first: Sequence, second: Sequence) -> PairedComparison | None:
    """`second` − `first`, seed by seed (the two aligned by seed); a seed either
    lacks (None or NaN) is left out. None when no seed has both."""
    both = [
        (float(x), float(y))
        for x, y in zip(first, second, strict=True)
        if len(finite([x, y])) == 2
    ]
    if not both:
        return None
    d = np.array([y - x for x, y in both])
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if len(d) > 1 else None
    return PairedComparison(
        differences=d,
        mean=mean,
        interval=bootstrap_interval(d),
        p_value=sign_flip_p_value(d),
        sd=sd,
        seeds_needed=seeds_needed(mean, sd),
    )


def verdict(p_value: float, pairs: int, alpha=ALPHA) -> str:
    """The test's answer in words, saying when the seeds were too few for any."""
    seeds = f"{pairs} seed{'s' * (pairs != 1)}"
    floor = smallest_p_value(pairs)
    if floor > alpha:
        return (
            f"not distinguishable with {seeds} (p = {p_value:.2g}): an exact paired "
            f"test of {seeds} cannot give p below {floor:.2g}"
        )
    if p_value <= alpha:
        return f"differ (p = {p_value:.2g})"
    return f"not distinguishable (p = {p_value:.2g})"


@dataclass(frozen=True)
class Correlation:
    rho: float | None  # None: fewer than MIN_CORRELATION runs, or a constant metric
    runs: int  # the runs that have both metrics


def rank_correlation(x: Sequence, y: Sequence) -> Correlation:
    """Spearman's ρ of two aligned columns (one entry per run), over the runs that
    have both numbers."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if len(finite([a, b])) == 2]
    if len(pairs) < MIN_CORRELATION:
        return Correlation(None, len(pairs))
    u, v = np.array(pairs, dtype=float).T
    if np.ptp(u) == 0 or np.ptp(v) == 0:  # ρ is undefined (scipy warns, gives NaN)
        return Correlation(None, len(pairs))
    return Correlation(float(stats.spearmanr(u, v).statistic), len(pairs))


def rank_correlations(columns: dict[str, Sequence]) -> dict[tuple, Correlation]:
    """{(metric, other metric): Correlation} for every two of `columns` ({metric:
    its number in each run, aligned}), both orders: Locatello et al. 2019's
    metric × metric table of rank correlations over trained models."""
    table, names = {}, list(columns)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            table[a, b] = table[b, a] = rank_correlation(columns[a], columns[b])
    return table
