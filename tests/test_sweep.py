"""Sweeps: one process per run, `--jobs` at a time on shares of the cores (or one GPU
each), resumable by the same command, or printed for a cluster's scheduler."""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

import params
from utils.runs import sweep
from utils.runs.folder import RunFolderError
from utils.settings import cli

REPO = Path(__file__).resolve().parents[1]
SPECS = cli.read_params(params)
SMALL = [
    "--dataset=celeba", "--image_size=32", "--latent_size=4", "--batch_size=8",
    "--conv_layers=[[8,4,2],[8,4,2],[8,4,2],[8,4,2]]", "--dense_layers=[[32]]",
    "--validation_batches=2",
]  # fmt: skip


def planned(*argv):
    p, overrides = cli.parse_command_line(SPECS, list(argv))
    runs = cli.sweep(overrides)
    swept = [k for k, v in overrides.items() if isinstance(v, tuple)]
    return sweep.plan([(run, {**p, **run}) for run in runs], swept)


# --- the plan: names a rerun finds again, and commands that parse back


def test_a_sweeps_runs_are_named_so_that_a_rerun_finds_them():
    runs = planned("--dataset=dsprites", "--beta=1,4", "--seed=0,1")
    assert [r.name for r in runs] == [
        "dsprites_beta1_seed0", "dsprites_beta1_seed1",
        "dsprites_beta4_seed0", "dsprites_beta4_seed1",
    ]  # fmt: skip
    assert [r.name for r in planned("--beta=1,4", "--run_name=s")] == [
        "s_beta1.0", "s_beta4.0",
    ]  # fmt: skip
    assert [r.number for r in runs] == [1, 2, 3, 4]


def test_a_run_name_from_params_py_names_the_sweep_as_the_command_line_would():
    # params.py's run_name is the command line's default: a sweep must neither
    # ignore it nor give every run that one folder (issue 25.14).
    p, overrides = cli.parse_command_line(SPECS, ["--seed=0,1"])
    p["run_name"] = "mine"  # as if params.py said run_name = "mine"
    runs = cli.sweep(overrides)
    planned = sweep.plan([(run, {**p, **run}) for run in runs], ["seed"])
    assert [r.name for r in planned] == ["mine_seed0", "mine_seed1"]


def test_runs_that_the_names_would_merge_are_refused():
    # Names made from β round it to 6 digits: these two would share a folder.
    with pytest.raises(RunFolderError, match="give --run_name"):
        planned("--dataset=dsprites", "--beta=1.0,1.0000001")


def test_each_printed_command_is_its_run_and_not_the_launcher(tmp_path):
    runs = planned(
        "--dataset=dsprites", "--beta=1,4", "--jobs=2", "--print_commands=True",
        f"--predictions_dir={tmp_path / 'a b'}",  # a space: quoted
    )  # fmt: skip
    lines = sweep.command_lines(runs, REPO / "main.py")
    assert len(lines) == 2
    for line, beta in zip(lines, (1.0, 4.0), strict=True):
        words = shlex.split(line)
        assert words[:2] == [sys.executable, str(REPO / "main.py")]
        overrides = cli.parse_overrides(words[2:], SPECS)
        assert overrides["beta"] == beta and overrides["dataset"] == "dsprites"
        assert overrides["predictions_dir"] == str(tmp_path / "a b")
        assert overrides["run_name"] == f"dsprites_beta{beta:g}_seed0"
        assert "jobs" not in overrides and "print_commands" not in overrides


# --- where each run trains


def test_jobs_share_the_cores_in_contiguous_parts():
    slots = sweep.make_slots(3, [0, 1, 2, 3, 4, 5, 6], [])
    assert [s.cores for s in slots] == [[0, 1, 2], [3, 4], [5, 6]]
    assert [s.describe() for s in slots] == ["cores 0-2", "cores 3-4", "cores 5-6"]
    assert sweep.make_slots(2, [2, 5], [])[1].describe() == "cores 5"


def test_with_gpus_each_job_gets_one_of_its_own():
    slots = sweep.make_slots(2, [0, 1, 2, 3], ["0", "3"])
    assert [(s.cores, s.gpu) for s in slots] == [([0, 1], "0"), ([2, 3], "3")]
    assert slots[1].describe() == "cores 2-3, GPU 3"


@pytest.mark.parametrize(
    "jobs, cores, gpus, message",
    [
        (3, [0, 1], [], "jobs=3, but this process may use 2 cores"),
        (3, [0, 1, 2, 3], ["0", "1"], "jobs=3, but 2 GPUs are visible"),
    ],
)
def test_more_jobs_than_cores_or_gpus_is_refused(jobs, cores, gpus, message):
    with pytest.raises(RunFolderError, match=message):
        sweep.make_slots(jobs, cores, gpus)


def test_the_visible_gpus_are_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert sweep.visible_gpus() == ["1", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sweep.visible_gpus() == []  # hidden on purpose: none


def test_too_many_jobs_stop_before_any_run(tmp_path):
    cores = len(os.sched_getaffinity(0))
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--dataset=dsprites", "--beta=1,4",
         f"--jobs={cores + 1}", f"--predictions_dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"Use --jobs={cores} or fewer" in result.stderr
    assert not any(tmp_path.iterdir())


def test_a_run_the_sweep_would_refuse_stops_it_before_any_run(tmp_path):
    # Run 2 of 2 exists as another experiment (β = 9): refused at once, not after
    # run 1 has trained (issue 25.14).
    other = tmp_path / "s_seed1"
    other.mkdir()
    (other / "params.json").write_text(json.dumps({**params_of("--beta=9"), "seed": 1}))
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--dataset=dsprites", "--seed=0,1",
         "--run_name=s", "--num_steps=2", f"--predictions_dir={tmp_path}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "none was started" in result.stderr
    assert "s_seed1: run s_seed1 exists with other parameters (beta: 9.0 → 1.0" in (
        result.stderr
    )
    assert sorted(f.name for f in tmp_path.iterdir()) == ["s_seed1"]


def params_of(*argv):
    p, _ = cli.parse_command_line(SPECS, ["--dataset=dsprites", *argv])
    return {k: v for k, v in p.items() if k not in sweep.LAUNCHER_PARAMETERS}


# --- whole sweeps (slow: several trainings each)


def run_processes_of(folder: Path) -> list[int]:
    """The processes whose command line names `folder` (a sweep's runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(folder) in command:
                found.append(int(entry.name))
    return found


def steps_logged(folder: Path) -> list[int]:
    lines = (folder / "log.csv").read_text().strip().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines]


@pytest.mark.slow
def test_a_killed_sweep_of_two_jobs_is_completed_by_its_rerun(celeba_dir, tmp_path):
    """Six runs, two at a time. SIGKILL of the launcher stops its runs (they
    checkpoint first); the same command again finishes the sweep, and no step of
    any run is trained twice."""
    out = tmp_path / "predictions"
    command = [
        sys.executable, str(REPO / "main.py"), *SMALL, f"--data_dir={celeba_dir}",
        f"--predictions_dir={out}", "--num_steps=40", "--checkpoint_step=5",
        "--validation_step=20", "--plot_step=40", "--beta=1,4,16", "--seed=0,1",
        "--jobs=2",
    ]  # fmt: skip
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    names = [f"celeba_beta{b}_seed{s}" for b in (1, 4, 16) for s in (0, 1)]

    def finished():
        return [
            n for n in names
            if json.loads(_read(out / n / "status.json") or "{}").get("state")
            == "finished"
        ]  # fmt: skip

    while not finished() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert finished(), "no run finished in 10 minutes"
    launcher.kill()  # SIGKILL: no chance to tell its runs anything
    launcher.wait()
    while run_processes_of(out) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not run_processes_of(out), "the runs outlived their launcher"
    done_before = {n: (out / n / "log.csv").stat().st_mtime_ns for n in finished()}
    assert len(done_before) < len(names)

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Sweep summary:" in rerun.stdout
    for name in names:
        status = json.loads((out / name / "status.json").read_text())
        assert status["state"] == "finished" and status["step"] == 40, name
        assert steps_logged(out / name) == list(range(1, 41)), name  # each once
        assert (out / name / "model" / "saved_model").is_dir(), name
    for name, mtime in done_before.items():  # finished before: not trained again
        assert (out / name / "log.csv").stat().st_mtime_ns == mtime, name
    logs = sorted(p.name for p in (out / ".sweep").iterdir())
    assert logs == sorted(f"{n}.log" for n in names)


@pytest.mark.slow
def test_printed_commands_run_unchanged_under_a_shell_loop(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    printed = subprocess.run(
        [sys.executable, str(REPO / "main.py"), *SMALL, f"--data_dir={celeba_dir}",
         f"--predictions_dir={out}", "--num_steps=2", "--plot_step=2",
         "--beta=1,4", "--print_commands=True"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert not out.exists()  # printed, not trained
    (tmp_path / "commands.txt").write_text(printed.stdout)
    loop = 'while IFS= read -r command; do eval "$command" || exit 1; done'
    result = subprocess.run(
        ["bash", "-c", f"{loop} < {shlex.quote(str(tmp_path / 'commands.txt'))}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for beta in (1, 4):
        saved = json.loads(
            (out / f"celeba_beta{beta}_seed0" / "params.json").read_text()
        )
        assert saved["beta"] == beta and saved["num_steps"] == 2


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
