"""The comparison page in HTML and markdown, from the runs utils.outputs.compare read: a
table of groups (mean ± std over seeds, with a bootstrap interval) when a group has
several runs, then the runs, each group's together, then the seed study's tables
(utils.outputs.compare_statistics)."""

import html
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote

from utils.metrics import headline_names, title_of
from utils.objectives import describe
from utils.outputs.statistics import (
    CONFIDENCE,
    MIN_BOOTSTRAP,
    RESAMPLES,
    SEED,
    bootstrap_interval,
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
    "unreadable": (
        "Files in a run folder that the page could not read, and why: their cells "
        "are empty (–), the rest of the run is shown. Fix or delete the file and "
        "rebuild the page."
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


def interval_text(bounds, spec: str) -> str:
    return f" [{bounds[0]:{spec}}, {bounds[1]:{spec}}]" if bounds else ""


def _spread(numbers: list, spec: str, interval: bool) -> str:
    """ "mean ± std", and the mean's bootstrap interval if `interval` (from
    MIN_BOOTSTRAP numbers: bootstrap_interval gives None below)."""
    mean, std = statistics.mean(numbers), statistics.stdev(numbers)
    bounds = bootstrap_interval(numbers) if interval else None
    return f"{mean:{spec}} ± {std:{spec}}" + interval_text(bounds, spec)


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


def plain(value) -> str:
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
        return "n/a" if name in run.unused else plain(p.get(name, MISSING))

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
        Cell(plain(run.params.get("seed", MISSING))),
        Cell(run.status_text, title=run.reason),
        Cell(MISSING if run.steps is None else f"{run.steps:.0f}", number=True),
        *_values([run], 1, columns),
        _terms([run], 1),
        image,
        heatmap or Cell(MISSING),
    ]


def first_of_each_seed(runs) -> list:
    """`runs` but any that repeats an earlier one's seed: a repeat is not another
    sample of the seed's spread (it would count twice, with ± 0)."""
    seen, kept = set(), []
    for run in runs:
        seed = repr(run.params.get("seed"))
        if seed not in seen:
            seen.add(seed)
            kept.append(run)
    return kept


def summarised(group) -> list:
    """The runs a group's row summarises: its finished ones (or all while none has
    finished), one per seed."""
    return first_of_each_seed([r for r in group if r.status == "finished"] or group)


def _group_row(group, differing, columns) -> list[Cell]:
    counted, n = summarised(group), len(first_of_each_seed(group))
    seeds = ", ".join(plain(run.params.get("seed", MISSING)) for run in group)
    repeats = [run.name for run in group if run not in first_of_each_seed(group)]
    verb = "repeats" if len(repeats) == 1 else "repeat"
    note = f"; {', '.join(repeats)} {verb} a seed: left out" if repeats else ""
    states = Counter(run.status for run in group)
    return [
        *_identity(group[0], differing),
        Cell(f"{seeds} (n = {n}{note})"),
        Cell(", ".join(f"{count} {state}" for state, count in states.items())),
        *_values(counted, n, columns, interval=True),
        _terms(counted, n),
    ]


class Table(NamedTuple):
    title: str
    header: list[str]
    rows: list[list[Cell]]
    note: str = ""  # a paragraph on its method, under its title


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
    # Escaped as the HTML page's cells: a run file's text is never markup here.
    text = html.escape(cell.text, quote=False).replace("|", "\\|").replace("\n", " ")
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


def render(groups, differing: list[str], study=()) -> tuple[str, str]:
    """The page's HTML and markdown: `groups` of runs, `differing` parameters, and
    after them the seed study's tables (utils.outputs.compare_statistics)."""
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
    unreadable = [
        [Cell(run.name), Cell(file), Cell(why)]
        for run in runs
        for file, why in run.problems.items()
    ]
    if unreadable:
        header = ["Run", "File", "Problem"]
        tables.append(
            Table("Unreadable files", header, unreadable, NOTES["unreadable"])
        )
    tables += list(study)
    fast = any(r.values[k] and r.values[k][1] == "fast" for r in runs for k in columns)
    wanted = dict(fast=fast, groups=grouped, intervals=grouped)
    wanted["parameters"] = bool(differing)
    notes = [NOTES["columns"]] + [NOTES[k] for k, shown in wanted.items() if shown]
    return _html(tables, notes), _markdown(tables, notes)
