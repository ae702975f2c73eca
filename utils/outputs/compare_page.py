"""The comparison page in HTML and markdown, from the runs utils.outputs.compare read: a
table of groups (mean ± std over seeds, with a bootstrap interval) when a group has
several runs, then the runs, each group's together, then the statistics of the seed
study (utils.outputs.statistics): paired comparisons of groups that differ in one
setting, the seeds such a comparison would need, and the metrics' rank
correlations."""

import html
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote

from utils.metrics import headline_names, title_of
from utils.objectives import describe
from utils.outputs.statistics import (
    ALPHA,
    CONFIDENCE,
    MIN_BOOTSTRAP,
    MIN_CORRELATION,
    MIN_PAIRS,
    POWER,
    RESAMPLES,
    SEED,
    PairedComparison,
    bootstrap_interval,
    fewest_pairs,
    paired_comparison,
    rank_correlations,
    smallest_p_value,
    verdict,
)

MISSING = "–"
PERCENT = f"{CONFIDENCE * 100:g} %"  # "95 %"
# metrics.json key (reference protocol) → column title, from the metric registry
METRIC_TITLES = {key: title_of(key) for key in headline_names(["reference"])}
# column → (title, format of one number, format of a mean and its std)
VALUES = {
    "reconstruction_loss": ("Reconstruction", ".2f", ".2f"),
    "kl": ("KL (nats)", ".2f", ".2f"),
    "active_latents": ("Active latents", ".0f", ".1f"),
    **{key: (title, ".3f", ".3f") for key, title in METRIC_TITLES.items()},
}
TERMS_TITLE = "Objective's terms"  # at the last validation: β, C, TC, penalties
TAGS = ("", "train", "fast")  # "": validation, or the metrics' reference protocol
NOTES = {
    "columns": (
        "Reconstruction and KL (nats): last row of validation.csv; “(train)” marks "
        "log.csv's last row, for a run with no validation yet. Active latents: KL "
        "above the threshold in analysis/analysis.json. Metrics: metrics.json, "
        "disentanglement_lib's protocols. Status: status.json and the run's lock "
        "(“interrupted”: killed while training; “unfinished”: a run older than "
        "status.json with fewer steps than num_steps)."
    ),
    "fast": (
        "“(fast)”: the smaller, faster protocol (metrics.json keys ending in _fast), "
        "not comparable with the reference numbers; a run with both shows the "
        "reference."
    ),
    "groups": (
        "Groups: runs that differ only in their seed and in settings that do not "
        "change what is learnt (paths, devices, logging), and whose metrics were "
        "made alike (metrics_provenance: the protocol's settings, representation, "
        "dataset version, library versions and CPU family); numbers made "
        "otherwise are never averaged together. Mean ± sample std over a "
        "group's finished runs (over all while none has finished); “n = k” when only "
        "k of its runs have the number; “(train)” and “(fast)” numbers are summarised "
        "apart from the others."
    ),
    "intervals": (
        f"[a, b] after mean ± std: a {PERCENT} bootstrap interval for the "
        f"group's mean (scipy.stats.bootstrap, percentile method, {RESAMPLES} "
        f"resamples, seed {SEED}), from {MIN_BOOTSTRAP} runs on. Percentile rather "
        "than BCa: BCa's jackknife acceleration is unstable or undefined with 3 to "
        "10 values and ties, while the percentile interval always exists. Both are "
        "too narrow with so few runs: with 3, the percentile interval is the runs' "
        "range."
    ),
    "parameters": (
        "Columns after Objective: the parameters that differ between these runs "
        "(“n/a”: one that the run's objective does not read)."
    ),
}
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: middle; }
th { background: #f2f2f2; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
/* Rows are sorted by KL: the top ones, at about half size (rows ~35 px), are the most
   informative latents; a click opens the whole image. */
a.traversal { display: block; width: 440px; max-height: 300px; overflow: hidden; }
a.traversal img { display: block; width: 100%; }
a.heatmap img { display: block; width: 220px; }
"""


@dataclass
class Cell:
    text: str
    link: str | None = None  # relative to predictions/
    image: str | None = None  # relative to predictions/
    title: str = ""  # shown on hover, in HTML
    number: bool = False


def _interval(bounds, spec: str) -> str:
    return f" [{bounds[0]:{spec}}, {bounds[1]:{spec}}]" if bounds else ""


def _spread(numbers: list, spec: str, interval: bool) -> str:
    """ "mean ± std", and the mean's bootstrap interval if `interval` (from
    MIN_BOOTSTRAP numbers: bootstrap_interval gives None below)."""
    mean, std = statistics.mean(numbers), statistics.stdev(numbers)
    bounds = bootstrap_interval(numbers) if interval else None
    return f"{mean:{spec}} ± {std:{spec}}" + _interval(bounds, spec)


def summary(
    values: list, n: int, spec: str, mean_spec: str, unit="", interval=False
) -> str:
    """Tagged numbers as "mean ± std", each tag apart; `n`: the runs summarised;
    `interval`: with the mean's bootstrap interval, "[low, high]"."""
    parts = []
    for tag in TAGS:
        numbers = [number for number, t in filter(None, values) if t == tag]
        if not numbers:
            continue
        text = format(numbers[0], spec)
        if len(numbers) > 1:
            text = _spread(numbers, mean_spec, interval)
        notes = [tag] * bool(tag) + [f"n = {len(numbers)}"] * (len(numbers) < n)
        parts.append(text + unit + (f" ({', '.join(notes)})" if notes else ""))
    return "; ".join(parts) or MISSING


def _g(value) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return format(value, "g")
    return str(value)


def _values(runs, n: int, columns, interval=False) -> list[Cell]:
    latents = runs[0].params.get("latent_size")
    units = {"active_latents": f" / {latents}" if latents else ""}
    return [
        Cell(
            summary(
                [r.values[k] for r in runs], n, *VALUES[k][1:], units.get(k, ""),
                interval,
            ),
            number=True,
        )
        for k in columns
    ]  # fmt: skip


def _identity(run, differing) -> list[Cell]:
    p = run.params

    def parameter(name):
        return "n/a" if name in run.unused else _g(p.get(name, MISSING))

    objective = describe(p) if p else MISSING
    dataset = str(p.get("dataset", MISSING))
    return [Cell(dataset), Cell(objective), *(Cell(parameter(k)) for k in differing)]


def _terms(runs, n: int) -> Cell:
    """The objective's own terms at the last validation, by name: "tc −4.2"."""
    names = sorted({k for r in runs for k in r.values if k.startswith("term:")})
    parts = [
        f"{name[5:]} {summary([r.values.get(name) for r in runs], n, '.3g', '.3g')}"
        for name in names
    ]
    return Cell("; ".join(parts) or MISSING)


def _run_row(run, differing, columns) -> list[Cell]:
    image = Cell("top latents", image=run.image) if run.image else Cell(MISSING)
    heatmap = Cell("latent × factor", image=run.heatmap) if run.heatmap else None
    return [
        Cell(run.name, link=quote(run.name) + "/"),
        *_identity(run, differing),
        Cell(_g(run.params.get("seed", MISSING))),
        Cell(run.status_text, title=run.reason),
        Cell(MISSING if run.steps is None else f"{run.steps:.0f}", number=True),
        *_values([run], 1, columns),
        _terms([run], 1),
        image,
        heatmap or Cell(MISSING),
    ]


def summarised(group) -> list:
    """The runs a group's row summarises: its finished ones, or all while none
    has finished."""
    return [run for run in group if run.status == "finished"] or group


def _group_row(group, differing, columns) -> list[Cell]:
    counted = summarised(group)
    seeds = ", ".join(_g(run.params.get("seed", MISSING)) for run in group)
    states = Counter(run.status for run in group)
    return [
        *_identity(group[0], differing),
        Cell(f"{seeds} (n = {len(group)})"),
        Cell(", ".join(f"{count} {state}" for state, count in states.items())),
        *_values(counted, len(group), columns, interval=True),
        _terms(counted, len(group)),
    ]


class Table(NamedTuple):
    title: str
    header: list[str]
    rows: list[list[Cell]]
    note: str = ""  # a paragraph on its method, under its title


# --- the seed study's statistics (utils.outputs.statistics)

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
    return f"{describe(a)}: {name} {_g(a.get(name, MISSING))} → {_g(b.get(name))}"


def _pairing_cells(paired: Paired) -> list[Cell]:
    title = VALUES[paired.key][0] + (f" ({paired.tag})" if paired.tag else "")
    return [
        Cell(_datasets(paired.pairing)),
        Cell(_comparison(paired.pairing)),
        Cell(title),
        Cell(", ".join(map(_g, paired.seeds))),
    ]


def _paired_row(paired: Paired) -> list[Cell]:
    r, spec = paired.result, "+" + VALUES[paired.key][1]
    difference = format(r.mean, spec) + _interval(r.interval, spec)
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


# --- HTML and markdown


def _html_cell(cell: Cell) -> str:
    text = html.escape(cell.text)
    if cell.image:
        src = html.escape(quote(cell.image))
        kind = "heatmap" if "/latent_factor" in cell.image else "traversal"
        text = f'<a class="{kind}" href="{src}"><img src="{src}" alt="{text}"></a>'
    elif cell.link:
        text = f'<a href="{html.escape(cell.link)}">{text}</a>'
    number = ' class="number"' if cell.number else ""
    title = f' title="{html.escape(cell.title)}"' if cell.title else ""
    return f"<td{number}{title}>{text}</td>"


def _markdown_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|").replace("\n", " ")
    if cell.image and "/analysis/" in cell.image:  # the grid and the heatmaps
        return f"[![{text}]({quote(cell.image)})]({quote(cell.image)})"
    if cell.image:  # markdown cannot crop a tall traversal to its top rows
        return f"[all latents]({quote(cell.image)})"
    return f"[{text}]({cell.link})" if cell.link else text


def _html(tables, notes) -> str:
    parts = [f"<p>{html.escape(note)}</p>" for note in notes]
    for title, header, rows, note in tables:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = ["<tr>" + "".join(map(_html_cell, row)) + "</tr>" for row in rows]
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts += [f"<p>{html.escape(note)}</p>"] if note else []
        parts += [f"<table>\n<tr>{head}</tr>", *body, "</table>"]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Run comparison</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        "<h1>Run comparison</h1>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )


def _markdown(tables, notes) -> str:
    parts = ["# Run comparison", *notes]
    for title, header, rows, note in tables:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(_markdown_cell, r)) + " |" for r in rows]
        parts += [f"## {title}", *[note] * bool(note), "\n".join(lines)]
    return "\n\n".join(parts) + "\n"


def render(groups, differing: list[str], pairings=()) -> tuple[str, str]:
    """The page's HTML and markdown: `groups` of runs, `differing` parameters,
    `pairings` of groups to compare seed by seed (utils.outputs.compare)."""
    runs = [run for group in groups for run in group]
    shown = ("reconstruction_loss", "kl", "active_latents")
    columns = [k for k in VALUES if k in shown or any(r.values[k] for r in runs)]
    identity = ["Dataset", "Objective", *differing]
    titles = [VALUES[k][0] for k in columns]
    tables = []
    if any(len(group) > 1 for group in groups):
        header = [*identity, "Seeds", "Status", *titles, TERMS_TITLE]
        rows = [_group_row(group, differing, columns) for group in groups]
        title = f"Groups: mean ± std over seeds [{PERCENT} interval of the mean]"
        tables.append(Table(title, header, rows))
    header = [
        "Run", *identity, "Seed", "Status", "Steps", *titles, TERMS_TITLE,
        "Top traversals", "MI and DCI importance (latent × factor)",
    ]  # fmt: skip
    rows = [_run_row(run, differing, columns) for run in runs]
    grouped = bool(tables)  # the groups table
    tables.append(Table("Runs", header, rows))
    tables += paired_tables(pairings) + correlation_tables(runs)
    fast = any(r.values[k] and r.values[k][1] == "fast" for r in runs for k in columns)
    wanted = dict(fast=fast, groups=grouped, intervals=grouped)
    wanted["parameters"] = bool(differing)
    notes = [NOTES["columns"]] + [NOTES[k] for k, shown in wanted.items() if shown]
    return _html(tables, notes), _markdown(tables, notes)
