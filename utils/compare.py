"""One page comparing runs: predictions/comparison.html and comparison.md.

Everything is read from the run folders' own files (params.json, log.csv,
validation.csv, metrics.json, analysis/), so the page can be rebuilt at any time.
"""

import html
import json
import math
from pathlib import Path
from urllib.parse import quote

from utils.files import atomic_write_bytes
from utils.plots import read_log_csv

MISSING = "–"
METRICS = {  # metrics.json key -> column title
    "beta_vae": "β-VAE score",
    "factor_vae": "FactorVAE score",
    "mig": "MIG",
    "dci_disentanglement": "DCI disent.",
}
COLUMNS = [
    "Run",
    "Dataset",
    "Objective",
    "Steps",
    "Reconstruction",
    "KL (nats)",
    "Active latents",
    *METRICS.values(),
    "Top traversals",
]
NOTE = (
    "Reconstruction and KL: last row of validation.csv; “(train)” marks the last "
    "row of log.csv when a run has no validation yet. Active latents: KL above the "
    "threshold in analysis/analysis.json. Metrics from metrics.json."
)
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: middle; }
th { background: #f2f2f2; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
img { max-height: 160px; max-width: 320px; }
"""


def _read_json(path: Path) -> dict:
    # A missing or half-edited file should cost one cell, not the whole page.
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _number(value, spec: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING
    return format(value, spec) if math.isfinite(value) else MISSING


def describe_objective(p: dict) -> str:
    """The objective and its β or capacity schedule in words."""
    g = {k: _number(p.get(k), "g") for k in ("beta", "beta_start", "gamma")}
    g["capacity_max"] = _number(p.get("capacity_max"), "g")
    steps = {k: _number(p.get(k), ".0f") for k in ("beta_steps", "capacity_steps")}
    if p.get("objective") == "capacity":
        return (
            f"capacity C→{g['capacity_max']} nats over {steps['capacity_steps']} "
            f"steps, γ = {g['gamma']}"
        )
    schedule = p.get("beta_schedule", "constant")
    if schedule == "constant":
        return f"β = {g['beta']}"
    if schedule == "warmup":
        return f"β warm-up 0→{g['beta']} over {steps['beta_steps']} steps"
    if schedule == "decrease":
        return f"β {g['beta_start']}→{g['beta']} over {steps['beta_steps']} steps"
    return f"β = {g['beta']} ({schedule})"


def _last(log: dict, column: str):
    values = log.get(column)
    return float(values[-1]) if values is not None and len(values) else None


def _thumbnail(folder: Path) -> Path | None:
    grid = folder / "analysis" / "traversal_grid.png"
    if grid.is_file():
        return grid
    # Step numbers are zero-padded, so the last name is the newest step.
    traversals = sorted((folder / "traversals").glob("traversal_*.png"))
    return traversals[-1] if traversals else None


def run_row(predictions: Path, name: str) -> dict:
    """The cells of one run, as text, plus relative links for the run and image."""
    folder = predictions / name
    p = _read_json(folder / "params.json")
    log = read_log_csv(folder / "log.csv")
    validation = read_log_csv(folder / "validation.csv")
    has_validation = _last(validation, "step") is not None
    source, suffix = (validation, "") if has_validation else (log, " (train)")

    def final(column: str) -> str:
        text = _number(_last(source, column), ".2f")
        return text if text == MISSING else text + suffix

    active = _read_json(folder / "analysis" / "analysis.json").get("active_latents")
    metrics = _read_json(folder / "metrics.json")
    active_text, latents = _number(active, ".0f"), p.get("latent_size") or "?"
    image = _thumbnail(folder)
    return {
        "link": quote(name) + "/",
        "image": quote(image.relative_to(predictions).as_posix()) if image else None,
        "cells": [
            name,
            str(p.get("dataset") or MISSING),
            describe_objective(p),
            _number(_last(log, "step"), ".0f"),
            final("reconstruction_loss"),
            final("kl"),
            active_text + (f" / {latents}" if active_text != MISSING else ""),
            *(_number(metrics.get(key), ".3f") for key in METRICS),
        ],
    }


def _html(rows: list[dict]) -> str:
    numeric = range(3, 3 + 4 + len(METRICS))  # steps … last metric
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for row in rows:
        cells = [f'<td><a href="{row["link"]}">{html.escape(row["cells"][0])}</a></td>']
        for j, cell in enumerate(row["cells"][1:], start=1):
            css = ' class="number"' if j in numeric else ""
            cells.append(f"<td{css}>{html.escape(cell)}</td>")
        image = row["image"]
        cells.append(
            f'<td><a href="{image}"><img src="{image}" alt="traversals"></a></td>'
            if image
            else f"<td>{MISSING}</td>"
        )
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows_html = "\n".join(body)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Run comparison</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>Run comparison</h1>\n<p>{html.escape(NOTE)}</p>\n<table>\n"
        f"<tr>{head}</tr>\n{rows_html}\n</table>\n</body>\n</html>\n"
    )


def _markdown(rows: list[dict]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        name, *rest = (cell(c) for c in row["cells"])
        image = f"![traversals]({row['image']})" if row["image"] else MISSING
        cells = [f"[{name}]({row['link']})", *rest, image]
        lines.append("| " + " | ".join(cells) + " |")
    return f"# Run comparison\n\n{NOTE}\n\n" + "\n".join(lines) + "\n"


def compare_runs(predictions: Path, run_names: list[str] | None = None) -> Path:
    """Write predictions/comparison.html and .md, one row per run; returns the
    HTML path. Runs: `run_names`, or every folder with a params.json, by name."""
    predictions = Path(predictions)
    existing = sorted(p.parent.name for p in predictions.glob("*/params.json"))
    names = existing if run_names is None else list(run_names)
    unknown = [name for name in names if name not in existing]
    if unknown:
        raise ValueError(
            f"no run {', '.join(map(repr, unknown))} in {predictions}; runs there: "
            + (", ".join(existing) or "none (no folder with a params.json)")
        )
    if not names:
        raise ValueError(f"no runs to compare in {predictions}")
    rows = [run_row(predictions, name) for name in names]
    atomic_write_bytes(predictions / "comparison.md", _markdown(rows))
    atomic_write_bytes(predictions / "comparison.html", _html(rows))
    return predictions / "comparison.html"
