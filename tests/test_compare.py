"""utils.outputs.compare (side by side) on run folders written by hand: params.json,
status.json, logs, metrics and images as training, --mode=evaluate and
--mode=analyze leave them, some broken on purpose. No TensorFlow."""

import fcntl
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from utils.outputs import compare, compare_files
from utils.outputs.compare import compare_runs
from utils.outputs.compare_files import read_log
from utils.outputs.compare_page import summary
from utils.outputs.images import PAD, save_labelled_grid

REPO = Path(__file__).resolve().parents[1]
PARAMS = {  # a resolved params.json, trimmed to what the page reads or compares
    "run_name": None, "mode": "train", "seed": 0, "dataset": "dsprites",
    "data_dir": "data", "predictions_dir": "predictions", "latent_size": 10,
    "objective": "beta", "beta": 1.0, "beta_schedule": "constant",
    "beta_start": 100.0, "beta_steps": 40000, "gamma": 1000.0, "capacity_max": None,
    "capacity_steps": 100000, "factor_gamma": 35.0, "lambda_od": 10.0,
    "lambda_d": None, "batch_size": 64, "learning_rate": 5e-4, "num_steps": 200,
    "strategy": "auto", "steps_per_call": 10, "jit_compile": "auto",
    "precision": "float32", "log_step": 1, "plot_step": 1000,
    "checkpoint_step": 1000, "metrics_at_end": True,
    "metrics_protocol": "reference", "checkpoint": "latest",
}  # fmt: skip
TERMS = ["loss", "reconstruction_loss", "kl", "negative_elbo", "beta"]


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def write_log(path, rows, per_latent=()):
    """rows: (step, reconstruction, KL) → a log in the layout main.py writes."""
    lines = [",".join(["step", *TERMS, *per_latent])]
    for step, recon, kl in rows:
        cells = [step, recon + kl, recon, kl, recon + kl, 1.0, *[0.1] * len(per_latent)]
        lines.append(",".join(map(str, cells)))
    path.write_text("\n".join(lines) + "\n")


def make_run(predictions, name, log=(), validation=(), **files_and_params):
    """A run folder; `metrics`, `status`, `active` write those files, other
    keywords are parameters."""
    folder = predictions / name
    files = {k: files_and_params.pop(k, None) for k in ("metrics", "status", "active")}
    write_json(folder / "params.json", {**PARAMS, "run_name": name, **files_and_params})
    if log:
        write_log(folder / "log.csv", log, ["kl_z0", "kl_z1"])
    if validation:
        write_log(folder / "validation.csv", validation)
    if files["metrics"] is not None:
        write_json(folder / "metrics.json", files["metrics"])
    if files["status"] is not None:
        state, step, reason = files["status"]
        status = {"state": state, "step": step, "num_steps": 200, "reason": reason}
        write_json(folder / "status.json", {**status, "updated": "2026-11-30T10:00"})
    if files["active"] is not None:
        write_json(
            folder / "analysis" / "analysis.json", {"active_latents": files["active"]}
        )
    return folder


def write_png(path, width=4, height=4):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, height)).save(path)


def tables(predictions):
    """comparison.md's tables by the first word of their section title ("Runs"
    when there is none), each row as {column: cell}."""
    text = (predictions / "comparison.md").read_text()
    found, title = {}, "Runs"
    for block in text.split("\n\n"):
        if block.startswith("## "):
            title = block[3:].split(":")[0]
        elif block.startswith("| "):
            header, _, *rows = (split_row(line) for line in block.splitlines())
            found[title] = [dict(zip(header, row, strict=True)) for row in rows]
    return found


def split_row(line):
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def runs_table(predictions):
    """{run name: its row}, in the page's order."""
    return {re.match(r"\[(.+?)\]", r["Run"])[1]: r for r in tables(predictions)["Runs"]}


# --- one row per run


@pytest.fixture
def predictions(tmp_path):
    a = make_run(
        tmp_path, "a_beta4", beta=4.0,
        log=[(100, 8, 1), (200, 6.5, 0.5)], validation=[(200, 7.25, 0.75)],
        metrics={"beta_vae": 0.91234, "factor_vae": 0.7, "mig": 0.25,
                 "dci_disentanglement": 0.333333, "step": 200, "protocols": {}},
        status=("finished", 200, "reached num_steps"), active=5,
    )  # fmt: skip
    write_png(a / "analysis" / "traversal_grid.png")
    b = make_run(
        tmp_path, "b_warmup", dataset="celeba", beta=10, beta_schedule="warmup",
        log=[(500, 18.5, 1.5), (1000, 17.125, 1.875)], num_steps=2000,
    )  # fmt: skip
    for step in (1000, 2000):  # the newest (step 2000) should be shown
        write_png(b / "traversals" / f"traversal_{step:07d}.png")
    make_run(tmp_path, "c_decrease", beta_schedule="decrease", beta_steps=39600)
    make_run(tmp_path, "d_capacity", objective="capacity", capacity_max=25, gamma=1000)
    write_png(tmp_path / "not_a_run" / "x.png")  # no params.json: not a run
    return tmp_path


def test_one_row_per_run_with_its_numbers_and_dashes(predictions):
    assert compare_runs(predictions) == predictions / "comparison.html"
    rows = runs_table(predictions)
    assert list(rows) == ["a_beta4", "b_warmup", "c_decrease", "d_capacity"]
    a, b, c, d = rows.values()
    assert [a[k] for k in ("Dataset", "Objective", "Seed", "Steps")] == [
        "dsprites", "β-VAE, β = 4", "0", "200"
    ]  # fmt: skip
    assert [a["Reconstruction"], a["KL (nats)"], a["Active latents"]] == [
        "7.25", "0.75", "5 / 10"
    ]  # fmt: skip
    metrics = ["β-VAE score", "FactorVAE score", "MIG", "DCI disentanglement"]
    assert [a[k] for k in metrics] == ["0.912", "0.700", "0.250", "0.333"]
    # No validation yet: the last training row, said so.
    assert [b["Reconstruction"], b["KL (nats)"]] == ["17.12 (train)", "1.88 (train)"]
    assert b["Objective"] == "β-VAE, β warm-up 0→10 over 40000 steps"
    assert c["Objective"] == "β-VAE, β 100→1 over 39600 steps"
    assert d["Objective"] == "capacity C→25 nats over 100000 steps, γ = 1000"
    assert {c[k] for k in [*metrics, "Steps", "Reconstruction"]} == {"–"}
    assert c["Top traversals"] == d["Top traversals"] == "–"
    page = (predictions / "comparison.html").read_text()
    assert page.count("<tr>") == 1 + 4 and "not_a_run" not in page
    assert "β-VAE, β warm-up 0→10 over 40000 steps" in page


def test_links_are_relative_and_exist(predictions):
    page = compare_runs(predictions).read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images == [
        "a_beta4/analysis/traversal_grid.png",
        "b_warmup/traversals/traversal_0002000.png",
    ]
    links = re.findall(r'(?:href|src)="([^"]+)"', page)
    links += re.findall(r"\]\(([^)]+)\)", (predictions / "comparison.md").read_text())
    # Each run, and each image twice, but the tall traversal once in markdown.
    assert len(links) == 2 * (4 + 2 * 2) - 1
    for link in links:
        assert not link.startswith(("/", "http")) and (predictions / link).exists()
    assert "<script" not in page and "<link" not in page  # self-contained


def test_named_runs_keep_their_order_and_unknown_names_are_refused(predictions):
    compare_runs(predictions, ["d_capacity", "a_beta4"])
    assert list(runs_table(predictions)) == ["d_capacity", "a_beta4"]
    with pytest.raises(ValueError, match="nope") as error:
        compare_runs(predictions, ["a_beta4", "nope"])
    for name in ["a_beta4", "b_warmup", "c_decrease", "d_capacity"]:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="not_a_run"):
        compare_runs(predictions, ["not_a_run"])


# --- seeds


def seed_run(predictions, name, seed, recon, mig=None, metrics=None, **more):
    """A finished run of β = 4 with this seed, reconstruction and MIG."""
    return make_run(
        predictions, name, seed=seed, beta=4.0, validation=[(200, recon, 2.0)],
        metrics={"mig": mig} if metrics is None else metrics,
        status=("finished", 200, "reached num_steps"), **{"active": 5, **more},
    )  # fmt: skip


def test_runs_differing_only_in_seed_and_bookkeeping_show_mean_and_sample_std(
    tmp_path,
):
    seed_run(tmp_path, "a_seed0", 0, 10.0, 0.4)
    seed_run(tmp_path, "b_other", 0, 20.0, 0.3, batch_size=128)
    seed_run(tmp_path, "c_seed1", 1, 12.0, 0.5, steps_per_call=50, jit_compile="on")
    seed_run(tmp_path, "d_seed2", 2, 14.0, 0.6, active=6, data_dir="/elsewhere",
             strategy="mirrored", log_step=10, metrics_protocol="fast")  # fmt: skip
    compare_runs(tmp_path)
    groups = tables(tmp_path)["Groups"]
    assert [g["Seeds"] for g in groups] == ["0, 1, 2 (n = 3)", "0 (n = 1)"]
    # Sample std (ddof=1): the population's would be 0.082 and 1.63. With 3 runs
    # the 95 % percentile bootstrap interval of the mean is their range.
    assert groups[0]["MIG"] == "0.500 ± 0.100 [0.400, 0.600]"
    assert groups[0]["Reconstruction"] == "12.00 ± 2.00 [10.00, 14.00]"
    assert groups[0]["Active latents"] == "5.3 ± 0.6 [5.0, 6.0] / 10"
    assert groups[0]["Status"] == "3 finished"
    assert [groups[1][k] for k in ("MIG", "Reconstruction")] == ["0.300", "20.00"]
    assert "±" not in "".join(groups[1].values())
    # Each group's runs together, next to their summary.
    rows = runs_table(tmp_path)
    assert list(rows) == ["a_seed0", "c_seed1", "d_seed2", "b_other"]
    assert [r["Seed"] for r in rows.values()] == ["0", "1", "2", "0"]
    assert "0.500 ± 0.100" in (tmp_path / "comparison.html").read_text()


def test_a_group_summarises_its_finished_runs_and_says_how_many(tmp_path):
    seed_run(tmp_path, "s0", 0, 10.0, 0.4)
    seed_run(tmp_path, "s1", 1, 12.0, 0.5, metrics={})  # not evaluated
    make_run(tmp_path, "s2", seed=2, beta=4.0, validation=[(50, 99.0, 9.0)],
             status=("diverged", 55, "loss nan"))  # fmt: skip
    compare_runs(tmp_path)
    (group,) = tables(tmp_path)["Groups"]
    assert group["Status"] == "2 finished, 1 diverged"
    assert group["Reconstruction"] == "11.00 ± 1.41 (n = 2)"
    assert group["MIG"] == "0.400 (n = 1)"


# --- seed study statistics (utils/outputs/statistics.py)

STUDY = {  # beta, other settings → per seed 0, 1, 2: (MIG, DCI disentanglement)
    ("b1", 1.0): [(0.10, 0.20), (0.12, 0.25), (0.08, 0.18)],
    ("b4", 4.0): [(0.15, 0.22), (0.13, math.nan), (0.20, 0.20)],
    ("b8_small", 8.0): [(0.30, 0.50), (0.31, 0.40), (0.29, 0.45)],
}


def test_groups_differing_in_one_setting_are_compared_seed_by_seed(tmp_path):
    for (name, beta), numbers in STUDY.items():
        size = {"latent_size": 5} if name == "b8_small" else {}
        for seed, (mig, dci) in enumerate(numbers):
            metrics = {"mig": mig, "dci_disentanglement": dci}
            metrics |= {"factor_vae": 0.6} if seed == 0 and beta < 8 else {}
            make_run(
                tmp_path, f"{name}_s{seed}", seed=seed, beta=beta, metrics=metrics,
                status=("finished", 200, ""), **size,
            )  # fmt: skip
    compare_runs(tmp_path)
    found = tables(tmp_path)
    (b1, b4, b8) = found["Groups"]
    lo, hi = stats.bootstrap(
        (np.array([0.10, 0.12, 0.08]),), np.mean, method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval  # fmt: skip
    assert b1["MIG"] == f"0.100 ± 0.020 [{lo:.3f}, {hi:.3f}]"
    assert b4["DCI disentanglement"] == "0.210 ± 0.014 (n = 2)"  # NaN skipped
    # b8_small differs from both in β and in latent_size: not compared.
    mig, dci = found["Paired comparisons"]  # FactorVAE: one seed, not compared
    assert mig["Comparison (A → B)"] == "β-VAE, β = 1 → β-VAE, β = 4"
    assert [mig["Metric"], mig["Seeds paired"]] == ["MIG", "0, 1, 2"]
    differences = np.array([0.05, 0.01, 0.12])
    lo, hi = stats.bootstrap(
        (differences,), np.mean, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    difference = mig["Mean difference [95 % interval]"]
    assert difference == f"+0.060 [{lo:+.3f}, {hi:+.3f}]"
    assert mig["Exact test"].startswith("not distinguishable with 3 seeds (p = 0.25)")
    assert [dci["Metric"], dci["Seeds paired"]] == ["DCI disentanglement", "0, 2"]
    assert dci["Mean difference [95 % interval]"] == "+0.020"  # 2 pairs: no interval
    assert dci["Exact test"].startswith("not distinguishable with 2 seeds (p = 0.5)")
    needed = found["Seeds needed"]
    assert [r["Metric"] for r in needed] == ["MIG", "DCI disentanglement"]
    z = 1.959963984540054 + 0.8416212335729143
    n = math.ceil((z * differences.std(ddof=1) / differences.mean()) ** 2)
    assert [needed[0]["SD of differences"], needed[0]["Seeds needed"]] == [
        "0.056", str(n)
    ]  # fmt: skip
    assert needed[1]["Seeds needed"] == "6"  # equal differences: at least 6
    # Spearman's ρ over the 9 runs, the one without DCI left out of its cells.
    (correlations,) = [t for k, t in found.items() if k.startswith("Rank")]
    rows = {row["Metric"]: row for row in correlations}
    runs = [pair for numbers in STUDY.values() for pair in numbers]
    runs = [(m, d) for m, d in runs if not math.isnan(d)]
    rho = stats.spearmanr(*zip(*runs, strict=True)).statistic
    assert rows["MIG"]["DCI disentanglement"] == f"{rho:.2f} (n = 8)"
    assert rows["DCI disentanglement"]["MIG"] == rows["MIG"]["DCI disentanglement"]
    assert rows["MIG"]["MIG"] == "1" and "FactorVAE score" not in rows  # 2 runs
    markdown = (tmp_path / "comparison.md").read_text()
    assert "## Rank correlations between metrics: dsprites, 9 runs" in markdown
    assert "Locatello et al. 2019" in markdown and "percentile method" in markdown
    page = (tmp_path / "comparison.html").read_text()
    for text in (
        "<h2>Paired comparisons: B − A, seed by seed</h2>",
        "<td>β-VAE, β = 1 → β-VAE, β = 4</td>",
        f'<td class="number">+0.060 [{lo:+.3f}, {hi:+.3f}]</td>',
        "<td>not distinguishable with 3 seeds (p = 0.25)",
        f'<td class="number">{n}</td>',
        "<h2>Rank correlations between metrics: dsprites, 9 runs</h2>",
        f'<td class="number">{rho:.2f} (n = 8)</td>',
    ):
        assert text in page


def test_only_one_setting_apart_and_one_protocol_are_compared(tmp_path):
    groups = {  # name → parameters, and MIG for seeds 0 and 1
        "a_vae": ({"beta": 1.0}, [0.1, 0.2]),
        "b_factor": ({"objective": "factor"}, [0.15, 0.3]),
        "c_tc": ({"objective": "tc", "beta": 6.0}, [0.2, 0.1]),
        "d_color_tc": ({"objective": "tc", "beta": 6.0, "dataset": "color_dsprites"},
                       [0.3, 0.4]),
        "e_tc_wide": ({"objective": "tc", "beta": 6.0, "latent_size": 6,
                       "batch_size": 32}, [0.5, 0.6]),
    }  # fmt: skip
    for name, (params, migs) in groups.items():
        for seed, mig in enumerate(migs):
            key = "mig_fast" if name == "d_color_tc" else "mig"
            make_run(
                tmp_path, f"{name}_s{seed}", seed=seed, metrics={key: mig},
                status=("finished", 200, ""), **params,
            )  # fmt: skip
    compare_runs(tmp_path)
    found = tables(tmp_path)
    # Between objectives their parameters go with them (β = 1 → β = 6 is part of
    # β-VAE → β-TCVAE). The color_dsprites group's fast MIG is never paired with a
    # reference one; the wide group differs from the others in two settings or more.
    assert [r["Comparison (A → B)"] for r in found["Paired comparisons"]] == [
        "β-VAE, β = 1 → FactorVAE, γ = 35",
        "β-VAE, β = 1 → β-TCVAE, β = 6",
        "FactorVAE, γ = 35 → β-TCVAE, β = 6",
    ]
    differences = [r["Mean difference"] for r in found["Seeds needed"]]
    assert differences == ["+0.075", "+0.000", "-0.075"]
    assert not any(title.startswith("Rank") for title in found)  # one metric


# --- metrics: which protocol


def test_fast_protocol_numbers_are_marked_and_never_averaged_with_reference(
    tmp_path,
):
    seed_run(tmp_path, "both", 0, 10.0, metrics={"mig": 0.5, "mig_fast": 0.9})
    seed_run(tmp_path, "reference", 1, 10.0, 0.7)
    seed_run(tmp_path, "fast", 2, 10.0,
             metrics={"mig_fast": 0.2, "dci_completeness_fast": 0.45})  # fmt: skip
    compare_runs(tmp_path)
    rows = runs_table(tmp_path)
    assert [r["MIG"] for r in rows.values()] == ["0.500", "0.200 (fast)", "0.700"]
    assert rows["fast"]["DCI completeness"] == "0.450 (fast)"
    (group,) = tables(tmp_path)["Groups"]
    assert group["MIG"] == "0.600 ± 0.141 (n = 2); 0.200 (fast, n = 1)"
    markdown = (tmp_path / "comparison.md").read_text()
    assert "“(fast)”: the smaller, faster protocol" in markdown


# --- status


def test_status_says_how_each_run_ended_or_that_it_is_running(tmp_path):
    log = [(step, 5.0, 1.0) for step in (50, 120)]
    make_run(tmp_path, "finished", status=("finished", 200, "reached num_steps"))
    running = make_run(tmp_path, "running", log=log, status=("training", 0, ""))
    make_run(tmp_path, "stopped", status=("stopped", 70, "stopped by SIGINT"))
    make_run(tmp_path, "diverged", status=("diverged", 55, "loss nan"))
    killed = make_run(tmp_path, "killed", log=log, status=("training", 0, ""))
    make_run(tmp_path, "failed", status=("failed", 10, "out of memory"))
    make_run(tmp_path, "old_done", log=[(200, 5.0, 1.0)])  # before status.json
    make_run(tmp_path, "old_part", log=[(50, 5.0, 1.0)])
    scoring = make_run(tmp_path, "scoring", status=("evaluating", 200, ""))
    make_run(tmp_path, "scoring_killed", status=("evaluating", 200, ""))
    (killed / ".lock").write_text("process 1")  # left by a killed process
    with open(running / ".lock", "w") as lock, open(scoring / ".lock", "w") as other:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fcntl.flock(other, fcntl.LOCK_EX)
        compare_runs(tmp_path)
    status = {name: row["Status"] for name, row in runs_table(tmp_path).items()}
    assert status == {
        "diverged": "diverged at step 55",
        "failed": "failed",
        "finished": "finished",
        "killed": "interrupted at step 120 of 200",
        "old_done": "finished",
        "old_part": "unfinished at step 50 of 200",
        "running": "running",
        "scoring": "computing its metrics",
        "scoring_killed": "interrupted in its metrics (rerun to write them)",
        "stopped": "stopped at step 70 of 200",
    }
    assert not (tmp_path / "finished" / ".lock").exists()  # looked, never created
    assert 'title="stopped by SIGINT"' in (tmp_path / "comparison.html").read_text()


# --- parameters


def test_every_parameter_that_differs_has_a_column_but_bookkeeping(tmp_path):
    make_run(tmp_path, "small", batch_size=64, seed=0)
    make_run(tmp_path, "large", batch_size=128, seed=1, steps_per_call=50)
    compare_runs(tmp_path)
    rows = runs_table(tmp_path)
    assert [r["batch_size"] for r in rows.values()] == ["128", "64"]
    header = set(rows["small"])
    assert not header & {"seed", "steps_per_call", "run_name"}


def test_parameters_an_objective_does_not_read_are_na_and_do_not_split_groups(
    tmp_path,
):
    make_run(tmp_path, "b4", beta=4.0)
    make_run(tmp_path, "b8", beta=8.0)
    for seed, beta in enumerate([1.0, 7.0]):  # β is not FactorVAE's
        make_run(tmp_path, f"f{seed}", seed=seed, objective="factor", beta=beta)
    compare_runs(tmp_path)
    rows = runs_table(tmp_path)
    assert {name: r["beta"] for name, r in rows.items()} == {
        "b4": "4", "b8": "8", "f0": "n/a", "f1": "n/a"
    }  # fmt: skip
    groups = tables(tmp_path)["Groups"]
    assert [g["Seeds"] for g in groups] == ["0 (n = 1)", "0 (n = 1)", "0, 1 (n = 2)"]


# --- traversals


def traversal_box(page):
    """The width and visible height (px) of the box the page shows traversals in."""
    rule = re.search(r"a\.traversal \{([^}]*)\}", page)[1]
    width = int(re.search(r"(?<![-\w])width: (\d+)px", rule)[1])
    height = int(re.search(r"max-height: (\d+)px", rule)[1])
    assert "overflow: hidden" in rule
    return width, height


def draw_traversal(path, rows):
    """A traversal as training draws it: `rows` latents × 11 values of 64² images."""
    sweeps = np.broadcast_to(
        np.linspace(0, 1, 64)[:, None, None], (rows, 11, 64, 64, 3)
    )
    labels = [f"z{i}  KL {3 - i / 10:.2f}" for i in range(rows)]
    notes = ["rows by KL on 512 test images", "each row sweeps one latent"]
    save_labelled_grid(
        path, sweeps, labels, [f"{v:.2g}" for v in range(11)], "T", notes
    )
    return Image.open(path).size


def test_a_tall_traversal_shows_its_top_rows_legibly_linking_the_whole(tmp_path):
    make_run(tmp_path, "celeba", dataset="celeba", latent_size=32)
    src = "celeba/traversals/traversal_0001000.png"
    full_width, full_height = draw_traversal(tmp_path / src, 32)
    analysed = make_run(tmp_path, "analysed", dataset="celeba", latent_size=32)
    grid = analysed / "analysis" / "traversal_grid.png"
    grid_width, grid_height = draw_traversal(grid, 6)
    page = compare_runs(tmp_path).read_text()
    assert f'<a class="traversal" href="{src}"><img src="{src}"' in page
    width, height = traversal_box(page)
    row = (64 + PAD) * width / full_width  # a row's height on the page
    assert row >= 30  # legible: the old 160-px thumbnail gave 4.6
    header = 150 * width / full_width  # title and notes above the rows, at most
    assert 4 <= (height - header) / row and height < full_height * width / full_width
    # The analysis grid holds the top latents only: all of it is shown.
    assert grid_height * width / grid_width <= height


# --- what must not break the page


def test_entries_that_are_not_run_folders_are_skipped(tmp_path):
    make_run(tmp_path, "run")
    (tmp_path / "benchmark.json").write_text("{}")
    (tmp_path / "comparison.html").write_text("an older page")
    (tmp_path / "params_is_a_folder" / "params.json").mkdir(parents=True)
    write_json(tmp_path / ".hidden" / "params.json", PARAMS)
    compare_runs(tmp_path)
    assert list(runs_table(tmp_path)) == ["run"]


def test_a_folder_in_the_way_of_the_page_raises_oserror_naming_it(tmp_path):
    make_run(tmp_path, "run")
    write_json(tmp_path / "comparison.md" / "params.json", PARAMS)
    with pytest.raises(OSError, match=re.escape(str(tmp_path / "comparison.md"))):
        compare_runs(tmp_path)
    page = (tmp_path / "comparison.html").read_text()
    assert 'href="run/"' in page and 'href="comparison.md/"' not in page


def test_a_failed_write_raises_oserror_naming_the_page(tmp_path, monkeypatch):
    make_run(tmp_path, "run")

    def disk_full(path, data):
        raise OSError(28, "No space left on device", f"{path.parent}/.x.1.tmp")

    monkeypatch.setattr(compare, "atomic_write_bytes", disk_full)
    page = re.escape(str(tmp_path / "comparison.html"))
    with pytest.raises(OSError, match=f"{page}.*No space left on device"):
        compare_runs(tmp_path)


def test_half_written_files_cost_their_cells_not_the_page(tmp_path):
    make_run(tmp_path, "good", metrics={"mig": 0.3}, validation=[(100, 5.0, 1.0)])
    cut = make_run(tmp_path, "cut_json", validation=[(100, 5.0, 1.0)])
    for name in ("metrics.json", "status.json", "analysis/analysis.json"):
        (cut / name).parent.mkdir(exist_ok=True)
        (cut / name).write_text('{"mig": 0.3, "state": "fini')
    (make_run(tmp_path, "cut_params") / "params.json").write_text('{"seed": 0, "da')
    cut_log = make_run(tmp_path, "cut_log", log=[(100, 5.0, 1.0), (200, 4.0, 1.0)])
    with open(cut_log / "log.csv", "rb+") as log:  # killed inside the last number
        log.truncate(log.seek(0, 2) - 2)
    garbled = make_run(tmp_path, "garbled")
    (garbled / "log.csv").write_bytes(b"step,loss\n\xff\xfe\x00\x81,\x00\n")
    compare_runs(tmp_path)
    rows = runs_table(tmp_path)
    cells = ("MIG", "Reconstruction", "Active latents")
    assert [rows["cut_json"][k] for k in cells] == ["–", "5.00", "–"]
    assert [rows["cut_params"][k] for k in ("Dataset", "Objective")] == ["–", "–"]
    assert [rows["cut_log"][k] for k in ("Steps", "Reconstruction")] == [
        "100", "5.00 (train)"
    ]  # fmt: skip
    assert rows["garbled"]["Steps"] == "–"


# Every file the page reads from a run folder, and the malformed contents each can
# have: (bytes or None for a directory, what the page says of it). A content given
# as (field, literal) is the good file with that field's value replaced.
READ_FILES = (
    "params.json", "status.json", "metrics.json", "analysis/analysis.json",
    "log.csv", "validation.csv",
)  # fmt: skip
HUGE = "1" + "0" * 400  # an integer no float can hold (floats end at 1.8e308)
NESTED = "[" * 990 + "]" * 990  # parses, yet json.dumps and repr cannot redo it
ANY_CONTENT = {
    "empty": (b"", "empty"),
    "binary": (bytes(range(255, -1, -1)), "not UTF-8"),
    "not_utf8": (b'{"step": "\xff\xfe"}\n', "not UTF-8"),
    "directory": (None, "a directory"),
}
JSON_CONTENT = {
    "cut": (b'{"state": "fini', "not JSON"),
    "list": (b"[1, 2]", "a list, not a JSON object"),
    "deep": (b"[" * 100_000, "nested deeper"),
    "deep_object": (b'{"a": ' * 100_000, "nested deeper"),
    "nested": (f'{{"a": {NESTED}}}'.encode(), "nested deeper"),
    "huge": (f'{{"a": {HUGE}}}'.encode(), "too large for a float"),
    "digits": (f'{{"a": -{"9" * 5000}}}'.encode(), "too large for a float"),
}
CSV_CONTENT = {
    "no_step": (b"reconstruction_loss,kl\n1,2\n", "no step column"),
    "not_a_number": (b"step,reconstruction_loss,kl\n200,abc,1\n", "not a number"),
}
# file → (content, what the page says), each content a file's bytes or, for a
# JSON file, (field, literal): the good file with that field's value replaced.
# What the page says: why the file is unreadable, or (column, cell) for a
# well-formed file whose value the page shows as it is, or as – (a NaN metric).
CASES = {
    "params.json": [
        (("objective", '["beta"]'), "objective is a list, not a string"),
        (("objective", '{"name": "beta"}'), "objective is an object, not a string"),
        (("num_steps", '"200"'), "num_steps is a string, not a number"),
        (("latent_size", "true"), "latent_size is a boolean, not a number"),
        (("dataset", "[1]"), "dataset is a list, not a string"),
        (("seed", HUGE), "too large for a float"),
        (("beta", HUGE), "too large for a float"),
        (("beta", "Infinity"), ("Objective", "β-VAE, β = inf")),
        (("seed", "NaN"), ("Seed", "nan")),
    ],
    "status.json": [
        (("state", '["finished"]'), "state is a list, not a string"),
        (("reason", '{"why": 1}'), "reason is an object, not a string"),
        (("step", '"70"'), "step is a string, not a number"),
        (("step", HUGE), "too large for a float"),
    ],
    "metrics.json": [
        (("mig", '"0.3"'), "mig is a string, not a number"),
        (("mig", HUGE), "too large for a float"),
        (("protocols", "[]"), "protocols is a list, not an object"),
        (("protocols", '{"reference": []}'), "protocols.reference is a list"),
        (("protocols", '{"reference": {"provenance": {"cpu": 1}}}'), "cpu is a"),
        (("mig", "NaN"), ("MIG", "–")),  # a metric that could not be computed
    ],
    "analysis/analysis.json": [
        (("active_latents", '"5"'), "active_latents is a string, not a number"),
        (("active_latents", "[5]"), "active_latents is a list, not a number"),
        (("active_latents", "1e400"), ("Active latents", "–")),
    ],
    "validation.csv": [  # a loss too large for a float, a NaN: empty cells
        (f"step,reconstruction_loss,kl\n200,{HUGE},nan\n".encode(), ("KL (nats)", "–")),
    ],
}


def malformed_cases():
    for file in READ_FILES:
        more = JSON_CONTENT if file.endswith(".json") else CSV_CONTENT
        for name, (content, says) in {**ANY_CONTENT, **more}.items():
            # A params.json that is a folder makes no run folder: skipped (above).
            if not (file == "params.json" and content is None):
                yield pytest.param(file, content, says, id=f"{file}-{name}")
        for content, says in CASES.get(file, ()):
            name = "=".join(content)[:40] if isinstance(content, tuple) else "huge"
            yield pytest.param(file, content, says, id=f"{file}-{name}")


def full_run(predictions, name, seed):
    """A finished run with every file the page reads."""
    return make_run(
        predictions, name, seed=seed, beta=4.0, log=[(100, 8, 1), (200, 6.5, 0.5)],
        validation=[(200, 7.25, 0.75)], metrics={"mig": 0.25, "protocols": {}},
        status=("finished", 200, "reached num_steps"), active=5,
    )  # fmt: skip


def write_malformed(path, content):
    if content is None:
        path.unlink()
        path.mkdir()
    elif isinstance(content, tuple):  # one field of the good file
        field, literal = content
        text = json.dumps({**json.loads(path.read_text()), field: "@@"})
        path.write_text(text.replace('"@@"', literal))
    else:
        path.write_bytes(content)


def unreadable(predictions):
    """{(run, file): why} from the page's table of the files it could not read."""
    found = tables(predictions).get("Unreadable files", [])
    return {(r["Run"], r["File"]): r["Problem"] for r in found}


@pytest.mark.parametrize(("file", "content", "says"), list(malformed_cases()))
def test_a_malformed_file_costs_its_cells_never_the_page(tmp_path, file, content, says):
    full_run(tmp_path, "good", seed=0)
    write_malformed(full_run(tmp_path, "bad", seed=1) / file, content)
    compare_runs(tmp_path)
    rows = runs_table(tmp_path)
    good = ["Status", "Steps", "Reconstruction", "KL (nats)", "MIG", "Active latents"]
    assert [rows["good"][k] for k in good] == [
        "finished", "200", "7.25", "0.75", "0.250", "5 / 10"
    ]  # fmt: skip
    assert "bad" in rows
    if isinstance(says, str):
        assert list(unreadable(tmp_path)) == [("bad", file)]
        assert says in unreadable(tmp_path)["bad", file]
    else:  # well-formed: no complaint
        column, cell = says
        assert rows["bad"][column] == cell and unreadable(tmp_path) == {}


def test_compare_through_main_writes_the_page_despite_malformed_files(tmp_path):
    full_run(tmp_path, "good", seed=0)
    bad = full_run(tmp_path, "bad", seed=1)
    write_malformed(bad / "params.json", ("objective", '["beta"]'))
    write_malformed(bad / "metrics.json", b"[" * 100_000)
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--mode=compare",
         f"--predictions_dir={tmp_path}"],
        cwd="/", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"Wrote {tmp_path / 'comparison.html'}"
    assert set(unreadable(tmp_path)) == {
        ("bad", "params.json"),
        ("bad", "metrics.json"),
    }
    assert runs_table(tmp_path)["good"]["MIG"] == "0.250"
    assert "metrics.json" in (tmp_path / "comparison.html").read_text()


def test_read_log_reads_a_long_log_from_its_tail(tmp_path):
    rows = [(step, step / 10, 1.0) for step in range(1, 3001)]
    path = tmp_path / "log.csv"
    write_log(path, rows, [f"kl_z{i}" for i in range(32)])
    assert path.stat().st_size > 2 * compare_files.TAIL_BYTES
    with open(path, "a") as log:  # a column the last row did not log
        log.write("3001,1,,1,1,1\n")
    assert read_log(path).problem == ""
    assert read_log(path).value == {
        "step": 3001.0,
        "reconstruction_loss": 300.0,
        "kl": 1.0,
    }


def test_the_page_needs_no_tensorflow_keras_or_matplotlib(predictions):
    # A fresh interpreter: this one may have imported them for other tests.
    code = (
        "import sys; from utils.outputs.compare import compare_runs; "
        f"compare_runs({str(predictions)!r}); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tensorflow', 'keras', 'matplotlib'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_summary_of_one_number_has_no_spread():
    assert summary([(0.25, "")], 1, ".3f", ".3f") == "0.250"
    assert summary([None, (1.0, "")], 2, ".1f", ".1f") == "1.0 (n = 1)"
    assert summary([(1, ""), (2, "")], 2, ".1f", ".2f") == "1.50 ± 0.71"


def test_each_run_shows_its_objectives_own_terms_at_the_last_validation(tmp_path):
    folder = make_run(tmp_path, "factor", objective="factor")
    (folder / "validation.csv").write_text(
        "step,loss,reconstruction_loss,kl,negative_elbo,tc,discriminator_loss\n"
        "100,90,80,10,90,1.5,0.7\n200,80,70,9,79,-2.25,0.69\n"
    )
    compare_runs(tmp_path)
    page = (tmp_path / "comparison.md").read_text()
    assert "discriminator_loss 0.69; tc -2.25" in page


def test_runs_whose_metrics_were_made_differently_are_never_averaged(tmp_path):
    def made(isa, sklearn="1.9.1"):
        provenance = {
            "representation": "mean", "dataset": {"name": "dsprites"},
            "versions": {"tensorflow": "2.21.0", "scikit-learn": sklearn},
            "cpu": {"isa_family": isa},
        }  # fmt: skip
        return {"mig": 0.5, "protocols": {"reference": {"provenance": provenance}}}

    seed_run(tmp_path, "s0", 0, 10.0, metrics=made("avx512"))
    seed_run(tmp_path, "s1", 1, 12.0, metrics=made("avx512"))
    seed_run(tmp_path, "s2", 2, 14.0, metrics=made("avx2"))
    seed_run(tmp_path, "s3", 3, 16.0, metrics=made("avx512", sklearn="1.5.0"))
    seed_run(tmp_path, "s4", 4, 18.0, metrics={})  # not evaluated yet
    compare_runs(tmp_path)
    groups = tables(tmp_path)["Groups"]
    assert [g["Seeds"] for g in groups] == ["0, 1, 4 (n = 3)", "2 (n = 1)", "3 (n = 1)"]
    assert "avx2" in runs_table(tmp_path)["s2"]["metrics_provenance"]
    assert "never averaged together" in (tmp_path / "comparison.md").read_text()


def test_each_run_shows_its_latent_by_factor_heatmaps_reference_first(tmp_path):
    both = make_run(tmp_path, "both")
    write_png(both / "analysis" / "latent_factor.png")
    write_png(both / "analysis" / "latent_factor_fast.png")
    fast = make_run(tmp_path, "fast")
    write_png(fast / "analysis" / "latent_factor_fast.png")
    make_run(tmp_path, "none")
    page = compare_runs(tmp_path).read_text()
    for src in (
        "both/analysis/latent_factor.png",
        "fast/analysis/latent_factor_fast.png",
    ):
        assert f'<a class="heatmap" href="{src}"><img src="{src}"' in page
    assert "both/analysis/latent_factor_fast.png" not in page
    rows = runs_table(tmp_path)
    column = "MI and DCI importance (latent × factor)"
    assert rows["none"][column] == "–"
    assert "fast/analysis/latent_factor_fast.png" in rows["fast"][column]


def test_markdown_cells_escape_the_html_a_run_file_holds(tmp_path):
    """comparison.md embedded raw HTML from params.json (the HTML page escaped it)."""
    make_run(tmp_path, "plain", seed=0, activation="relu")
    make_run(tmp_path, "odd", seed=1, activation="<img src=x onerror=alert(1)>")
    compare_runs(tmp_path)
    markdown = (tmp_path / "comparison.md").read_text()
    assert "<img src=x" not in markdown
    assert "&lt;img src=x onerror=alert(1)&gt;" in markdown


def test_a_repeated_seed_or_run_name_counts_once(tmp_path):
    """`--run_name=a,a` summarised "n = 2, ± 0.00", and two runs of one seed
    counted twice: n is the number of distinct seeds."""
    seed_run(tmp_path, "a", 0, 10.0, 0.4)
    seed_run(tmp_path, "b", 1, 12.0, 0.6)
    seed_run(tmp_path, "c_again", 1, 30.0, 0.9)  # seed 1 once more
    compare_runs(tmp_path, ["a", "a", "b", "c_again"])
    (group,) = tables(tmp_path)["Groups"]
    assert group["Seeds"] == "0, 1, 1 (n = 2; c_again repeats a seed: left out)"
    assert group["MIG"] == "0.500 ± 0.141"  # a and b: no interval below 3
    assert list(runs_table(tmp_path)) == ["a", "b", "c_again"]
    compare_runs(tmp_path, ["a", "a"])
    assert "Groups" not in tables(tmp_path)  # one run: no group row


@pytest.mark.parametrize("checkpoint", [None, "none yet", 20, 30])
def test_an_interrupted_run_says_where_it_resumes(tmp_path, checkpoint):
    """Issue 25.18: after a full-disk stop the page said "interrupted at step 30 of
    30": the rows logged, while a rerun resumes from the checkpoint of step 20."""
    from utils.outputs.compare import run_status

    index = tmp_path / "checkpoints" / "latest" / "checkpoint"
    if checkpoint is not None:
        index.parent.mkdir(parents=True)
    if isinstance(checkpoint, int):
        index.write_text(f'model_checkpoint_path: "ckpt-{checkpoint}"\n')
    status = {"state": "training", "step": 0, "num_steps": 30}
    kind, words, _ = run_status(tmp_path, {"num_steps": 30}, status, 30)
    assert kind == "interrupted"
    resumes = {  # a folder without checkpoints/ (copied): nothing to say
        None: "", "none yet": "; resumes from step 0", 20: "; resumes from step 20",
        30: "",
    }  # fmt: skip
    assert words == f"interrupted at step 30 of 30{resumes[checkpoint]}"
