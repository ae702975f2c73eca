"""One page comparing runs: predictions/comparison.html and comparison.md.

Everything is read from the run folders' own files (params.json, status.json,
log.csv, validation.csv, metrics.json, analysis/; utils.outputs.compare_files
reads them), so the page can be rebuilt at any time, even while runs train. Runs
that differ only in their seed form a group, summarised as mean ± std; groups that
differ in one setting are compared seed by seed (utils.outputs.statistics).
utils.outputs.compare_page lays the page out.
"""

import fcntl
import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from utils.files import atomic_write_bytes
from utils.objectives import OBJECTIVES
from utils.outputs.compare_files import (
    FINAL_COLUMNS,
    NUMBER,
    TEXT,
    as_number,
    read_json,
    read_log,
)
from utils.outputs.compare_page import METRIC_TITLES, render, summarised
from utils.outputs.compare_statistics import correlation_tables, paired_tables
from utils.outputs.statistics import MIN_PAIRS
from utils.runs.folder import ADDED_LATER, BOOKKEEPING

PAGE_NAMES = ("comparison.html", "comparison.md")
OBJECTIVE_PARAMETERS = frozenset(n for o in OBJECTIVES.values() for n in o.parameters)
# The JSON files of a run folder, and what the fields the page computes with must
# hold (compare_files.parse_json): a file with one that does not is unreadable.
FIELDS = {
    "params.json": dict(
        objective=TEXT, dataset=TEXT, num_steps=NUMBER, latent_size=NUMBER
    ),
    "status.json": dict(state=TEXT, reason=TEXT, step=NUMBER, num_steps=NUMBER),
    "metrics.json": {
        **{k: NUMBER for key in METRIC_TITLES for k in (key, f"{key}_fast")},
        "protocols": {"*": {"provenance": {"versions": {}, "cpu": {}}}},
    },
    "analysis/analysis.json": dict(active_latents=NUMBER),
}


@dataclass
class Run:
    name: str
    params: dict  # params.json; older runs get the values they were trained with
    unused: frozenset  # parameters of other objectives, which this run ignores
    status: str  # finished running stopped diverged interrupted failed unfinished
    status_text: str  # e.g. "stopped at step 700 of 1000"
    reason: str  # status.json's reason, if any
    steps: float | None
    values: dict  # column → (number, "" | "train" | "fast"), or None
    image: str | None  # its top traversals, relative to predictions/
    heatmap: str | None = None  # its latent × factor matrices, likewise
    # {file: why the page could not read it}: those files' cells are empty.
    problems: dict = field(default_factory=dict)


def _lock_held(folder: Path) -> bool:
    # Opened read-only so that a run without a lock file does not get one.
    try:
        descriptor = os.open(folder / ".lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a filesystem without flock: no sign of a process
        return False
    finally:
        os.close(descriptor)  # releases our lock, if we got it
    return False


def _count(value) -> str:
    number = as_number(value)
    return "?" if number is None else f"{number:.0f}"


def run_status(
    folder: Path, p: dict, status: dict, logged: float | None
) -> tuple[str, str, str]:
    """(kind, words, reason) from status.json, the run's lock and its log."""
    state, reason = status.get("state"), str(status.get("reason") or "")
    total = _count(status.get("num_steps", p.get("num_steps")))
    step = _count(status.get("step", logged))
    if state in ("finished", "failed"):
        return state, state, reason
    if state == "stopped":
        return state, f"stopped at step {step} of {total}", reason
    if state == "diverged":
        return state, f"diverged at step {step}", reason
    if _lock_held(folder):
        words = "computing its metrics" if state == "evaluating" else "running"
        return "running", words, reason
    if state == "evaluating":  # and no process holds its lock: killed meanwhile
        return "interrupted", "interrupted in its metrics (rerun to write them)", reason
    if state == "training":  # and no process holds its lock: it was killed
        last = logged if logged is not None else as_number(status.get("step"))
        words = f"interrupted at step {_count(last)} of {total}"
        resumes = checkpoint_step(folder)  # none for a folder copied without them
        if last is not None and resumes is not None and resumes < last:
            words += f"; resumes from step {resumes}"
        return "interrupted", words, reason
    # A run from before status.json: judged by the steps it logged.
    num_steps = as_number(p.get("num_steps"))
    if logged is not None and num_steps is not None and logged >= num_steps:
        return "finished", "finished", ""
    return "unfinished", f"unfinished at step {_count(logged)} of {total}", ""


CHECKPOINT_INDEX = re.compile(r'model_checkpoint_path: "ckpt-(\d+)"')


def checkpoint_step(folder: Path) -> int | None:
    """The step a resume starts from, as the latest checkpoint's index names it
    (read without TensorFlow, which the page does not load); 0 without one, None
    for a folder without checkpoints/ (copied without them)."""
    if not (folder / "checkpoints").is_dir():
        return None
    try:
        text = (folder / "checkpoints" / "latest" / "checkpoint").read_text()
    except (OSError, UnicodeDecodeError):
        return 0
    found = CHECKPOINT_INDEX.search(text)
    return int(found[1]) if found else 0


def _tagged(number: float | None, tag: str):
    return None if number is None else (number, tag)


def _metric(metrics: dict, key: str):
    # A run with both protocols shows the reference one.
    for name, tag in ((key, ""), (f"{key}_fast", "fast")):
        if (number := as_number(metrics.get(name))) is not None:
            return number, tag
    return None


def _thumbnail(folder: Path) -> Path | None:
    grid = folder / "analysis" / "traversal_grid.png"
    if grid.is_file():
        return grid
    try:  # names, not Paths: a long run has hundreds, and Paths sort slowly
        names = fnmatch.filter(os.listdir(folder / "traversals"), "traversal_*.png")
    except OSError:
        return None
    # Step numbers are zero-padded, so the greatest name is the newest step.
    return folder / "traversals" / max(names) if names else None


def _heatmap(folder: Path) -> Path | None:
    """analysis/latent_factor.png (utils/outputs/heatmaps.py): the reference
    protocol's, else the fast one's."""
    for name in ("latent_factor.png", "latent_factor_fast.png"):
        if (folder / "analysis" / name).is_file():
            return folder / "analysis" / name
    return None


def metrics_provenance(metrics: dict) -> str:
    """What made a run's metrics, but for the time it was made and the seed: runs
    whose metrics differ in it are never averaged together (a group each)."""
    made = []  # "": nothing to compare (no metrics yet)
    # Their types are checked (FIELDS), but any of them may be absent or null.
    for name, results in sorted((metrics.get("protocols") or {}).items()):
        p = (results or {}).get("provenance")
        if not p:
            return "not recorded (evaluated before provenance, 2026-12-03)"
        what = {k: results.get(k) for k in ("settings", "estimators")}
        what |= {k: p.get(k) for k in ("representation", "dataset", "versions")}
        what["isa_family"] = (p.get("cpu") or {}).get("isa_family")
        digest = hashlib.sha256(_signature(what).encode()).hexdigest()[:8]
        v = p.get("versions") or {}
        made.append(
            f"{name}: TF {v.get('tensorflow')}, scikit-learn "
            f"{v.get('scikit-learn')}, {what['isa_family']}, {digest}"
        )
    return "; ".join(made)


def read_run(predictions: Path, name: str) -> Run:
    folder = predictions / name
    read = {file: read_json(folder / file, fields) for file, fields in FIELDS.items()}
    p, status = read["params.json"].value, read["status.json"].value
    p = {**ADDED_LATER, **p} if p else {}
    metrics = read["metrics.json"].value
    if p:  # a column of its own when it differs, and part of the group key
        p["metrics_provenance"] = metrics_provenance(metrics)
    objective = OBJECTIVES.get(p.get("objective", "beta"))
    terms = list(objective.terms) if objective else []
    for file in ("log.csv", "validation.csv"):
        read[file] = read_log(folder / file, (*FINAL_COLUMNS, *terms))
    log, final = read["log.csv"].value, read["validation.csv"].value
    tag = "" if "step" in final else "train"  # no validation yet: the training log
    final = final if "step" in final else log
    analysis = read["analysis/analysis.json"].value
    values = {
        "reconstruction_loss": _tagged(final.get("reconstruction_loss"), tag),
        "kl": _tagged(final.get("kl"), tag),
        # The objective's own terms (β, C, TC, discriminator loss, DIP penalties).
        **{f"term:{k}": _tagged(final.get(k), tag) for k in terms},
        "active_latents": _tagged(as_number(analysis.get("active_latents")), ""),
    }
    image = _thumbnail(folder)
    heatmap = _heatmap(folder)
    own = objective.parameters if objective else OBJECTIVE_PARAMETERS
    # A run shipped without its log.csv (predictions/reference_*) says its step.
    steps = log.get("step", as_number(status.get("step")))
    return Run(
        name,
        p,
        OBJECTIVE_PARAMETERS - set(own),
        *run_status(folder, p, status, log.get("step")),
        steps,
        values | {key: _metric(metrics, key) for key in METRIC_TITLES},
        image.relative_to(predictions).as_posix() if image else None,
        heatmap.relative_to(predictions).as_posix() if heatmap else None,
        {file: r.problem for file, r in read.items() if r.problem},
    )


def _signature(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def group_key(run: Run) -> str:
    """Equal for runs that differ only in their seed and in bookkeeping."""
    if not run.params:  # an unreadable params.json: a group of its own
        return f"unreadable {run.name}"
    ignored = BOOKKEEPING | run.unused | {"seed", "metrics_provenance"}
    return _signature({k: v for k, v in run.params.items() if k not in ignored})


def group_runs(runs: list[Run]) -> list[list[Run]]:
    """The groups, in the order of their first run; runs whose metrics were made
    differently (metrics_provenance) are groups apart, a run without metrics
    joins the first."""
    groups = {}
    for run in runs:
        made = run.params.get("metrics_provenance", "")
        kinds = groups.setdefault(group_key(run), {})
        if made and made not in kinds:
            kinds[made] = kinds.pop("", [])  # the metric-less join the first kind
        kinds.setdefault(made or next(iter(kinds), ""), []).append(run)
    return [runs for kinds in groups.values() for runs in kinds.values()]


def differing_parameters(runs: list[Run]) -> list[str]:
    """The parameters whose values differ between the runs, apart from bookkeeping,
    the seed, the dataset and the objective (each shown in its own column)."""
    shown = BOOKKEEPING | {"seed", "dataset", "objective"}
    readable = [run for run in runs if run.params]
    names = dict.fromkeys(k for run in readable for k in run.params if k not in shown)

    def values(name):
        return {
            _signature([name in run.params, run.params.get(name)])
            for run in readable
            if name not in run.unused
        }

    return [name for name in names if len(values(name)) > 1]


@dataclass
class Pairing:
    """Two groups that differ in exactly one setting, their runs matched by seed."""

    setting: str
    first: list[Run]  # A: the group shown first
    second: list[Run]  # B
    pairs: list[tuple[Run, Run]]  # (A's run, B's run) for each seed both ran


def settings_between(a: Run, b: Run) -> list[str]:
    """The settings two runs differ in, but the seed and bookkeeping. Between two
    objectives, their parameters belong to them: β-VAE (β = 1) and β-TCVAE
    (β = 6) differ in their objective alone, as FactorVAE (γ = 35) and β-TCVAE."""
    ignored = BOOKKEEPING | a.unused | b.unused | {"seed", "metrics_provenance"}
    if a.params.get("objective") != b.params.get("objective"):
        ignored |= OBJECTIVE_PARAMETERS

    def value(run, name):
        return _signature([name in run.params, run.params.get(name)])

    names = (a.params.keys() | b.params.keys()) - ignored
    return sorted(name for name in names if value(a, name) != value(b, name))


def _by_seed(runs: list[Run]) -> dict[str, Run]:
    found = {}
    for run in runs:  # a seed run twice: its first run
        if "seed" in run.params:
            found.setdefault(_signature(run.params["seed"]), run)
    return found


def _provenance(runs: list[Run]) -> str:
    return next((m for r in runs if (m := r.params.get("metrics_provenance"))), "")


def _pairing(first: list[Run], second: list[Run]) -> Pairing | None:
    a, b = summarised(first), summarised(second)  # the runs the group rows show
    if not (a[0].params and b[0].params) or _provenance(a) != _provenance(b):
        return None  # metrics made otherwise are not compared, as not averaged
    settings = settings_between(a[0], b[0])
    seeds = _by_seed(b)
    pairs = [(run, seeds[seed]) for seed, run in _by_seed(a).items() if seed in seeds]
    if len(settings) != 1 or len(pairs) < MIN_PAIRS:
        return None
    return Pairing(settings[0], first, second, pairs)


def pair_groups(groups: list[list[Run]]) -> list[Pairing]:
    """Every two groups, in the page's order, that differ in exactly one setting,
    whose metrics were made alike and that share MIN_PAIRS seeds or more."""
    found = [_pairing(a, b) for i, a in enumerate(groups) for b in groups[i + 1 :]]
    return [pairing for pairing in found if pairing]


def run_folders(predictions: Path) -> list[str]:
    """Folders with a params.json, but the page's own outputs and hidden ones."""
    try:
        entries = sorted(predictions.iterdir())
    except OSError:
        return []
    return [
        e.name
        for e in entries
        if e.name not in PAGE_NAMES
        and not e.name.startswith(".")
        and os.path.isfile(e / "params.json")  # False on any error, not a raise
    ]


def _write(path: Path, text: str) -> None:
    try:
        atomic_write_bytes(path, text)
    except OSError as error:
        # The error names the temporary file; main.py shows this message instead.
        raise OSError(f"cannot write {path}: {error.strerror or error}") from error


def compare_runs(predictions: Path, run_names: list[str] | None = None) -> Path:
    """Write predictions/comparison.html and .md; returns the HTML path. Runs:
    `run_names`, or every folder with a params.json, by name."""
    predictions = Path(predictions)
    existing = run_folders(predictions)
    # A name given twice is one run: counted once.
    names = existing if run_names is None else list(dict.fromkeys(run_names))
    unknown = [name for name in names if name not in existing]
    if unknown:
        raise ValueError(
            f"no run {', '.join(map(repr, unknown))} in {predictions}; runs there: "
            + (", ".join(existing) or "none (no folder with a params.json)")
        )
    if not names:
        raise ValueError(f"no runs to compare in {predictions}")
    runs = [read_run(predictions, name) for name in names]
    groups = group_runs(runs)
    study = paired_tables(pair_groups(groups)) + correlation_tables(runs)
    page, markdown = render(groups, differing_parameters(runs), study)
    _write(predictions / "comparison.html", page)  # first: the page main.py names
    _write(predictions / "comparison.md", markdown)
    return predictions / "comparison.html"
