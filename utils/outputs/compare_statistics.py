"""The seed study's tables on the compare page (utils.outputs.statistics computes,
utils.outputs.compare_page lays out): paired comparisons of groups that differ in
one setting, the seeds each would need, and the metrics' rank correlations
(Locatello et al. 2019)."""

from dataclasses import dataclass

from utils.objectives import describe
from utils.outputs.compare_page import (
    METRIC_TITLES,
    MISSING,
    PERCENT,
    TAGS,
    VALUES,
    Cell,
    Table,
    interval_text,
    plain,
)
from utils.outputs.statistics import (
    ALPHA,
    MIN_BOOTSTRAP,
    MIN_CORRELATION,
    MIN_PAIRS,
    POWER,
    PairedComparison,
    fewest_pairs,
    paired_comparison,
    rank_correlations,
    smallest_p_value,
    verdict,
)

SEEDS = f"{fewest_pairs()} seeds"  # the fewest with which p ≤ ALPHA can be reached
# Beyond, the estimate says only that the difference is lost in the seeds' spread.
MOST_SEEDS = 1000
STATISTICS_NOTES = {
    "paired": (
        "Groups that differ in exactly one setting and whose metrics were made "
        "alike, compared seed by seed over the seeds both ran (of the runs their "
        "group rows summarise): B − A for each seed, the mean of these differences "
        f"and its {PERCENT} percentile bootstrap interval, from {MIN_BOOTSTRAP} "
        "pairs (with 3 it is the differences' range: far too narrow, it can leave "
        "out 0 where the test cannot tell). Test: exact two-sided paired "
        "permutation test, the mean difference ranked among those of all 2^n sign "
        "flips of the n differences (scipy.stats.permutation_test, "
        'permutation_type="samples"). Its p-value cannot be smaller than 2/2^n, '
        f"whatever the differences: {smallest_p_value(2):g} with 2 seeds, "
        f"{smallest_p_value(3):g} with 3, {smallest_p_value(5):g} with 5, so "
        f"below {SEEDS} no difference can reach p < {ALPHA:g}. Each row is a test "
        "of its own, with no correction for the others."
    ),
    "needed": (
        f"Seeds needed: the paired seeds with which a two-sided test at α = "
        f"{ALPHA:g} would detect the observed mean difference with power {POWER:g}, "
        "given the observed standard deviation (sd) of the paired differences: "
        "n = ((z_{1−α/2} + z_power) · sd / |mean difference|)², rounded up (the "
        f"normal approximation; a t-test asks one or two more), and at least "
        f"{fewest_pairs()}, the fewest with which the exact test can reach p < "
        f"{ALPHA:g}. An estimate from the observed spread, itself very uncertain "
        "with few seeds: from 3 differences, the 95 % interval of their sd runs "
        "from about half to six times the observed one. Locatello et al. 2019 "
        "found that the seed moves the metrics about as much as the objective "
        "does."
    ),
    "correlations": (
        "Spearman's rank correlation ρ (scipy.stats.spearmanr) between two metrics "
        "over the runs that have both, each trained model one observation, as in "
        "Locatello et al. 2019 (“Challenging Common Assumptions in the "
        "Unsupervised Learning of Disentangled Representations”); per dataset and "
        "protocol, since pooled datasets would rank the datasets rather than the "
        f"models. “(n = k)”: only k runs have both; “–”: fewer than "
        f"{MIN_CORRELATION}, or a metric constant over them. With few runs ρ is "
        "very uncertain (standard error about 1/√(n − 1): 0.3 with 12 runs), and "
        "the seeds of one group are not independent methods."
    ),
}


@dataclass
class Paired:
    """One metric's paired comparison of two groups."""

    pairing: object  # a utils.outputs.compare.Pairing
    key: str  # a metrics.json key
    tag: str  # its protocol: "" or "fast"
    seeds: list
    result: PairedComparison


def _matched(pairs, key: str, tag: str) -> tuple[list, list, list]:
    """The seeds, and A's and B's numbers, where both runs have `key` under
    `tag` (a fast number is never compared with a reference one)."""
    found = [
        (a.params.get("seed"), x[0], y[0])
        for a, b in pairs
        if (x := a.values.get(key)) and (y := b.values.get(key))
        if x[1] == y[1] == tag
    ]
    seeds, first, second = zip(*found, strict=True) if found else ((), (), ())
    return list(seeds), list(first), list(second)


def paired_results(pairings) -> list[Paired]:
    """Each pairing's comparison of each headline metric, under each protocol
    that MIN_PAIRS of its seeds have in both groups."""
    found = []
    for pairing in pairings:
        for key in METRIC_TITLES:
            for tag in TAGS:
                seeds, first, second = _matched(pairing.pairs, key, tag)
                if len(seeds) >= MIN_PAIRS:
                    result = paired_comparison(first, second)
                    found.append(Paired(pairing, key, tag, seeds, result))
    return found


def _datasets(pairing) -> str:
    a, b = (str(g[0].params.get("dataset")) for g in (pairing.first, pairing.second))
    return a if a == b else f"{a} → {b}"


def _comparison(pairing) -> str:
    """A → B, by their objectives, or by the setting when it is not one."""
    a, b = pairing.first[0].params, pairing.second[0].params
    if describe(a) != describe(b):
        return f"{describe(a)} → {describe(b)}"
    name = pairing.setting
    return f"{describe(a)}: {name} {plain(a.get(name, MISSING))} → {plain(b.get(name))}"


def _pairing_cells(paired: Paired) -> list[Cell]:
    title = VALUES[paired.key][0] + (f" ({paired.tag})" if paired.tag else "")
    return [
        Cell(_datasets(paired.pairing)),
        Cell(_comparison(paired.pairing)),
        Cell(title),
        Cell(", ".join(map(plain, paired.seeds))),
    ]


def _paired_row(paired: Paired) -> list[Cell]:
    r, spec = paired.result, "+" + VALUES[paired.key][1]
    difference = format(r.mean, spec) + interval_text(r.interval, spec)
    return [
        *_pairing_cells(paired),
        Cell(difference, number=True),
        Cell(verdict(r.p_value, r.pairs)),
    ]


def _needed_row(paired: Paired) -> list[Cell]:
    r, spec = paired.result, VALUES[paired.key][1]
    needed = MISSING if r.seeds_needed is None else str(r.seeds_needed)
    if r.seeds_needed and r.seeds_needed > MOST_SEEDS:
        needed = f"> {MOST_SEEDS}"
    if r.mean == 0:
        needed = "– (no difference observed)"
    return [
        *_pairing_cells(paired),
        Cell(format(r.mean, "+" + spec), number=True),
        Cell(MISSING if r.sd is None else format(r.sd, spec), number=True),
        Cell(needed, number=True),
    ]


def paired_tables(pairings) -> list[Table]:
    """The paired comparisons, and the seeds each would need."""
    paired = paired_results(pairings)
    if not paired:
        return []
    which = ["Dataset", "Comparison (A → B)", "Metric", "Seeds paired"]
    return [
        Table(
            "Paired comparisons: B − A, seed by seed",
            [*which, f"Mean difference [{PERCENT} interval]", "Exact test"],
            [_paired_row(p) for p in paired],
            STATISTICS_NOTES["paired"],
        ),
        Table(
            f"Seeds needed: to tell A from B (α = {ALPHA:g}, power {POWER:g})",
            [*which, "Mean difference", "SD of differences", "Seeds needed"],
            [_needed_row(p) for p in paired],
            STATISTICS_NOTES["needed"],
        ),
    ]


def _number(value, tag: str) -> float | None:
    return value[0] if value and value[1] == tag else None


def _metric_columns(runs, tag: str) -> dict[str, list]:
    """{metric: its number in each run, None where a run has none under `tag`},
    for the metrics that MIN_CORRELATION of the runs have."""
    columns = {k: [_number(r.values.get(k), tag) for r in runs] for k in METRIC_TITLES}
    return {
        key: numbers
        for key, numbers in columns.items()
        if sum(n is not None for n in numbers) >= MIN_CORRELATION
    }


def _correlation_table(where: str, columns: dict[str, list]) -> Table:
    table = rank_correlations(columns)
    # The runs with any of these metrics; a cell over fewer says over how many.
    most = sum(
        any(n is not None for n in run) for run in zip(*columns.values(), strict=True)
    )

    def cell(a, b):
        if a == b:
            return Cell("1", number=True)
        rho, runs = table[a, b].rho, table[a, b].runs
        text = MISSING if rho is None else f"{rho:.2f}"
        return Cell(text + (f" (n = {runs})" if runs < most else ""), number=True)

    rows = [[Cell(METRIC_TITLES[a]), *(cell(a, b) for b in columns)] for a in columns]
    title = f"Rank correlations between metrics: {where}, {most} runs"
    return Table(title, ["Metric", *map(METRIC_TITLES.get, columns)], rows)


def correlation_tables(runs) -> list[Table]:
    """Spearman's ρ between every two metrics, per dataset and protocol."""
    found = []
    datasets = dict.fromkeys(str(r.params.get("dataset", MISSING)) for r in runs)
    for dataset in datasets:
        subset = [r for r in runs if str(r.params.get("dataset", MISSING)) == dataset]
        for tag in ("", "fast"):
            columns = _metric_columns(subset, tag)
            if len(columns) > 1:
                where = dataset + (f", {tag} protocol" if tag else "")
                found.append(_correlation_table(where, columns))
    if found:  # the method once, under the first
        found[0] = found[0]._replace(note=STATISTICS_NOTES["correlations"])
    return found
