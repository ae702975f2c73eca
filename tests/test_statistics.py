"""utils.outputs.statistics against scipy and against hand enumeration, on numbers
written here: intervals, exact paired tests, seeds needed, rank correlations."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from utils.outputs import statistics as s
from utils.outputs.compare_page import summary

MIG = [0.081, 0.046, 0.129, 0.102, 0.064]  # five seeds' MIG, say


def scipy_interval(values, method="percentile"):
    result = stats.bootstrap(
        (np.array(values),), np.mean, n_resamples=9999, confidence_level=0.95,
        method=method, rng=np.random.default_rng(s.SEED),
    )  # fmt: skip
    return tuple(result.confidence_interval)


def enumerated_p_value(differences):
    """Two-sided: the share of all 2^n sign flips whose mean is at least as far
    from 0 as the observed one."""
    d = np.array(differences, dtype=float)
    observed = abs(d.mean())
    flips = list(itertools.product((1, -1), repeat=len(d)))
    extreme = sum(abs((np.array(f) * d).mean()) >= observed - 1e-12 for f in flips)
    return extreme / len(flips)


# --- intervals


def test_the_interval_is_scipys_percentile_bootstrap_with_the_fixed_seed():
    expected = scipy_interval(MIG)
    assert s.bootstrap_interval(MIG) == pytest.approx(expected, abs=1e-12)
    assert s.bootstrap_interval(MIG) == s.bootstrap_interval(MIG)  # reproducible
    # The percentile method, not scipy's default BCa, which differs here.
    assert scipy_interval(MIG, "BCa") != pytest.approx(expected, abs=1e-4)
    low, high = expected
    assert low < np.mean(MIG) < high


def test_missing_values_are_left_out_of_the_interval():
    with_gaps = [MIG[0], None, MIG[1], math.nan, *MIG[2:], math.inf, "0.5", True]
    assert s.bootstrap_interval(with_gaps) == s.bootstrap_interval(MIG)


def test_fewer_than_three_numbers_give_no_interval():
    for values in ([], [0.1], [0.1, 0.2], [0.1, 0.2, None, math.nan]):
        assert s.bootstrap_interval(values) is None
    assert s.bootstrap_interval([0.1, 0.2, 0.4]) is not None
    # On the page: mean ± std alone, with no degenerate interval.
    two = [(0.1, ""), (0.2, "")]
    assert summary(two, 2, ".3f", ".3f", interval=True) == "0.150 ± 0.071"
    three = [*two, (0.4, "")]
    low, high = scipy_interval([0.1, 0.2, 0.4])
    assert summary(three, 3, ".3f", ".3f", interval=True) == (
        f"0.233 ± 0.153 [{low:.3f}, {high:.3f}]"
    )
    assert summary(three, 3, ".3f", ".3f") == "0.233 ± 0.153"  # per-run rows


# --- exact paired test


@pytest.mark.parametrize(
    "differences",
    [
        [0.05, 0.01, 0.12],  # n = 3, all one sign: the smallest p, 0.25
        [0.05, -0.01, 0.12],
        [0.03, -0.02, 0.04, 0.05, 0.01, 0.06],  # n = 6
        [0.03, 0.02, 0.04, 0.05, 0.01, 0.06],  # n = 6, all one sign: 2/64
        [0.02, 0.0, -0.02, 0.02, 0.03],  # a zero and ties
        # n = 11: 2048 flips, which random flips (999, say) would only sample.
        [0.03, -0.02, 0.04, 0.05, 0.01, -0.06, 0.02, 0.03, -0.01, 0.04, 0.02],
    ],
)
def test_the_p_value_is_the_exact_enumeration_of_all_sign_flips(differences):
    p = s.sign_flip_p_value(differences)
    assert p == pytest.approx(enumerated_p_value(differences), abs=1e-12)


def test_the_smallest_p_value_and_the_fewest_seeds_that_can_reach_alpha():
    assert s.sign_flip_p_value([0.05, 0.01, 0.12]) == pytest.approx(0.25)
    assert s.smallest_p_value(3) == 0.25
    assert s.smallest_p_value(6) == pytest.approx(0.03125)
    assert s.smallest_p_value(1) == 1.0
    assert s.fewest_pairs(0.05) == 6  # 2/2^5 = 0.0625 > 0.05
    assert s.fewest_pairs(0.1) == 5
    assert s.sign_flip_p_value([None, math.nan]) is None


def test_with_three_seeds_the_words_say_not_distinguishable_and_why():
    # The largest possible evidence with 3 seeds: every difference positive.
    result = s.paired_comparison([0.10, 0.12, 0.08], [0.15, 0.13, 0.20])
    assert result.p_value == pytest.approx(0.25)
    words = s.verdict(result.p_value, result.pairs)
    assert words.startswith("not distinguishable with 3 seeds")
    assert "cannot give p below 0.25" in words
    assert s.verdict(0.5, 2).startswith("not distinguishable with 2 seeds")


def test_with_six_seeds_the_words_report_the_p_value():
    assert s.verdict(0.03125, 6) == "differ (p = 0.031)"
    assert s.verdict(0.40625, 6) == "not distinguishable (p = 0.41)"
    assert s.verdict(0.05, 7) == "differ (p = 0.05)"  # p ≤ α


def test_a_paired_comparison_matches_seeds_and_skips_missing_ones():
    first = [0.10, 0.12, None, 0.08, 0.09]
    second = [0.15, 0.13, 0.30, math.nan, 0.19]
    result = s.paired_comparison(first, second)
    differences = [0.05, 0.01, 0.10]  # seeds 0, 1 and 4
    assert result.pairs == 3
    assert result.differences == pytest.approx(differences)
    assert result.mean == pytest.approx(np.mean(differences))
    assert result.sd == pytest.approx(np.std(differences, ddof=1))
    assert result.interval == pytest.approx(scipy_interval(result.differences))
    assert result.p_value == pytest.approx(enumerated_p_value(differences))
    assert s.paired_comparison([None], [0.1]) is None
    two = s.paired_comparison([0.1, 0.2], [0.2, 0.2])
    assert two.interval is None and two.sd == pytest.approx(math.sqrt(0.005))


# --- seeds needed


def test_seeds_needed_is_the_normal_approximation_rounded_up():
    z = 1.959963984540054 + 0.8416212335729143  # z_0.975 + z_0.8
    assert s.seeds_needed(0.05, 0.1) == math.ceil((z * 0.1 / 0.05) ** 2) == 32
    assert s.seeds_needed(-0.05, 0.1) == 32  # either direction
    assert s.seeds_needed(0.02, 0.1) == math.ceil((z * 5) ** 2) == 197
    assert s.seeds_needed(0.1, 0.1, power=0.9) == math.ceil(
        ((1.959963984540054 + 1.2815515655446004) * 1) ** 2
    )


def test_seeds_needed_is_at_least_what_the_exact_test_needs():
    assert s.seeds_needed(0.5, 0.1) == 6  # the formula says 1
    assert s.seeds_needed(0.5, 0.0) == 6
    assert s.seeds_needed(0.0, 0.1) is None  # no difference seen
    assert s.seeds_needed(0.1, None) is None  # one pair: no spread
    result = s.paired_comparison([0.10, 0.12, 0.08], [0.15, 0.13, 0.20])
    assert result.seeds_needed == s.seeds_needed(result.mean, result.sd)


# --- rank correlations


def test_rank_correlations_are_scipys_spearman_over_the_runs_with_both():
    columns = {
        "mig": [0.1, 0.3, 0.2, 0.5, None, 0.4, 0.25],
        "dci": [0.2, 0.1, 0.4, 0.5, 0.3, math.nan, 0.4],  # a tie, and a gap
        "factor_vae": [0.6, None, 0.7, None, None, 0.5, None],
        "flat": [0.3] * 7,
    }
    table = s.rank_correlations(columns)
    both = [0, 1, 2, 3, 6]  # the runs with MIG and DCI
    expected = stats.spearmanr(
        [columns["mig"][i] for i in both], [columns["dci"][i] for i in both]
    ).statistic
    assert table["mig", "dci"].rho == pytest.approx(expected, abs=1e-12)
    assert table["dci", "mig"] == table["mig", "dci"]
    assert table["mig", "dci"].runs == 5
    fv = stats.spearmanr([0.1, 0.2, 0.4], [0.6, 0.7, 0.5]).statistic
    assert table["mig", "factor_vae"].rho == pytest.approx(fv, abs=1e-12)
    assert table["mig", "factor_vae"].runs == 3
    assert table["dci", "factor_vae"] == s.Correlation(None, 2)  # too few
    assert table["mig", "flat"] == s.Correlation(None, 6)  # constant: undefined
    assert ("mig", "mig") not in table
