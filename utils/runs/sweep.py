"""A sweep: several values for some parameters, one run per combination, each in its
own process and run folder; `jobs` of them at a time, or printed as commands for a
cluster's scheduler.

A sweep's runs have fixed names (its run_name with the swept values, or names made
from their parameters), so the same command again resumes a stopped sweep: each run
starts again, and one that finished has nothing to do (main.py says so, and writes
only outputs a kill cut short), one interrupted resumes from its last checkpoint.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from utils.processes import end_with_parent
from utils.runs.folder import RunFolderError, default_run_name
from utils.settings import cli

# The launcher's own parameters: never passed on to the runs it starts.
LAUNCHER_PARAMETERS = ("jobs", "print_commands")
POLL_SECONDS = 0.5


@dataclass
class SweepRun:
    number: int
    name: str
    args: list[str]  # main.py's arguments
    outcome: str = "waiting"
    minutes: float = 0.0
    log: Path | None = None  # with --jobs above 1: its output
    process: subprocess.Popen | None = field(default=None, repr=False)
    started: float = 0.0  # time.monotonic() at its start


@dataclass
class Slot:
    """Where one run at a time trains: its share of the cores, and a GPU if any."""

    cores: list[int]
    gpu: str | None = None
    run: SweepRun | None = field(default=None, repr=False)

    def describe(self) -> str:
        cores = _ranges(self.cores)
        return f"cores {cores}" + (f", GPU {self.gpu}" if self.gpu is not None else "")


def plan(runs, swept):
    """`runs`: (overrides, resolved parameters) per run → [SweepRun]. Named as
    before, so that a rerun finds them: run_name + "_" + the swept values, or the
    parameters' default name."""
    planned = []
    for number, (overrides, p) in enumerate(runs, 1):
        overrides = {k: v for k, v in overrides.items() if k not in LAUNCHER_PARAMETERS}
        if p.get("run_name"):  # from the command line, or params.py's default
            suffix = "_".join(f"{k}{overrides[k]}" for k in swept)
            name = f"{p['run_name']}_{suffix}"
        else:
            name = default_run_name(p)
        overrides["run_name"] = name
        args = [cli.as_argument(k, v) for k, v in overrides.items()]
        planned.append(SweepRun(number, name, args))
    names = [run.name for run in planned]
    if len(set(names)) < len(names):  # e.g. two values that the name rounds alike
        twice = sorted({n for n in names if names.count(n) > 1})
        raise RunFolderError(
            f"the sweep would name two runs alike ({', '.join(twice)}): give "
            "--run_name, so that each is named by its swept values"
        )
    return planned


def command_lines(planned, main_py):
    """One shell command per run, each runnable as it is (`bash`, a Slurm array)."""
    main = [sys.executable, str(Path(main_py).resolve())]
    return [shlex.join([*main, *run.args]) for run in planned]


def visible_gpus():
    """The GPUs the runs can be given one each: CUDA_VISIBLE_DEVICES if set, else
    those `nvidia-smi -L` lists; [] on a machine without (no TensorFlow here)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        listed = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listed.splitlines()) if line.strip()]


def make_slots(jobs, cores, gpus):
    """`jobs` slots: the cores split into contiguous equal shares, and with GPUs,
    one GPU each. Refuses what would share a core or a GPU between two runs."""
    if jobs > len(cores):
        raise RunFolderError(
            f"jobs={jobs}, but this process may use {len(cores)} cores: each run "
            f"needs one of its own. Use --jobs={len(cores)} or fewer."
        )
    if gpus and jobs > len(gpus):
        raise RunFolderError(
            f"jobs={jobs}, but {len(gpus)} GPUs are visible: one run per GPU. Use "
            f"--jobs={len(gpus)} or fewer."
        )
    share, extra = divmod(len(cores), jobs)
    slots, start = [], 0
    for k in range(jobs):
        end = start + share + (k < extra)
        slots.append(Slot(cores[start:end], gpus[k] if gpus else None))
        start = end
    return slots


def train_sweep(
    runs, swept, main_py, predictions, jobs=1, print_commands=False, check=None
):
    """Each run of the sweep in its own process, `jobs` at a time, each pinned to
    its share of the cores (and to a GPU of its own); or with `print_commands`,
    their commands, one per line, and nothing trained. `check(p)`, given each run's
    parameters with its name, raises RunFolderError for a run that would be refused:
    all are checked before the first starts, not one by one after hours of others.
    Returns the exit code: 0 if every run finished, else 1."""
    planned = plan(runs, swept)
    if print_commands:
        print("\n".join(command_lines(planned, main_py)))
        return 0
    problems = []
    for run, (_, p) in zip(planned, runs, strict=True):
        try:
            (check or (lambda p: None))({**p, "run_name": run.name})
        except RunFolderError as error:
            problems.append(f"{run.name}: {error}")
    if problems:
        raise RunFolderError(
            "the sweep would stop at these runs, so none was started:\n  "
            + "\n  ".join(problems)
        )
    cores = (
        sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))  # macOS: no pinning, but the count
    )  # fmt: skip
    slots = make_slots(jobs, cores, visible_gpus()) if jobs > 1 else [Slot(cores)]
    logs = predictions / ".sweep" if jobs > 1 else None
    print(f"Sweep: {len(planned)} runs, {jobs} at a time" + (
        f"; each run's output in {logs}/<run>.log" if logs else ""
    ))  # fmt: skip
    try:
        _run_all(planned, slots, main_py, logs)
    except KeyboardInterrupt:  # the runs got it too, and stop after their step
        _wait_for_stops(slots)
    return _summary(planned)


def _run_all(planned, slots, main_py, logs):
    pending = list(planned)
    while pending or any(slot.run for slot in slots):
        for slot in slots:
            if slot.run is None and pending:
                _start(pending.pop(0), slot, main_py, logs, len(planned))
        time.sleep(POLL_SECONDS)
        for slot in slots:
            if slot.run is not None and slot.run.process.poll() is not None:
                _finish(slot, len(planned))


def _start(run, slot, main_py, logs, total):
    environment = dict(os.environ)
    if slot.gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = slot.gpu
    output = None
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
        run.log = logs / f"{run.name}.log"
        output = open(run.log, "a")  # a rerun's output follows the earlier one's
    cores = slot.cores if logs is not None else []  # one job alone keeps them all
    launcher = os.getpid()
    run.process = subprocess.Popen(
        [sys.executable, str(main_py), *run.args], env=environment,
        stdout=output, stderr=subprocess.STDOUT if output else None,
        preexec_fn=lambda: _in_child(cores, launcher),
    )  # fmt: skip
    if output:
        output.close()  # the child has its own copy
    run.started, slot.run = time.monotonic(), run
    _say(run, total, f"started on {slot.describe()}" if logs else "started")


def _in_child(cores, parent_pid):
    """In the run's process before it starts: pinned to its cores, and told to stop
    (SIGTERM: it checkpoints first) if the launcher dies, even by SIGKILL."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    end_with_parent(parent_pid, signal.SIGTERM)


def _finish(slot, total):
    run, slot.run = slot.run, None
    run.minutes = (time.monotonic() - run.started) / 60
    code = run.process.returncode
    run.outcome = "finished" if code == 0 else f"failed (exit {code})"
    where = f": see {run.log}" if code and run.log else ""
    _say(run, total, f"{run.outcome} in {run.minutes:.1f} min{where}")


def _wait_for_stops(slots):
    print("\nSweep stopping: each run stops after its step and checkpoints", flush=True)
    for slot in slots:
        run = slot.run
        if run is None:
            continue
        while run.process.poll() is None:
            try:
                run.process.wait()
            except KeyboardInterrupt:  # a second Ctrl-C: still wait for them
                pass
        _finish(slot, 0)
        if run.outcome != "finished":
            run.outcome = "stopped"


def _say(run, total, what):
    prefix = f"[{run.number}/{total}] " if total else ""
    print(f"{prefix}{run.name}: {what}", flush=True)


def _summary(planned):
    print("\nSweep summary:")
    for run in planned:
        took = f" ({run.minutes:.1f} min)" if run.minutes else ""
        print(f"  {run.name}: {run.outcome}{took}")
    unfinished = [run for run in planned if run.outcome != "finished"]
    if unfinished:
        print(
            f"{len(unfinished)} of {len(planned)} runs did not finish: the same "
            "command resumes them (finished runs have nothing to do)",
            file=sys.stderr,
        )
        return 1
    return 0


def _ranges(cores):
    """[0, 1, 2, 5] → "0-2,5"."""
    parts, start = [], None
    for i, core in enumerate(cores):
        if start is None:
            start = core
        if i + 1 == len(cores) or cores[i + 1] != core + 1:
            parts.append(f"{start}-{core}" if core != start else f"{core}")
            start = None
    return ",".join(parts)
