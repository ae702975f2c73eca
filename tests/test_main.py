"""End to end: `python main.py` on a small CelebA-layout folder, every artifact,
resume, and the refusals that protect earlier runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "--dataset=celeba", "--image_size=32", "--latent_size=4", "--batch_size=8",
    "--conv_layers=[[8,4,2],[8,4,2],[8,4,2],[8,4,2]]", "--dense_layers=[[32]]",
    "--validation_batches=2", "--seed=3",
]  # fmt: skip


def run_main(*args, cwd=None):
    """`python main.py ARGS` in a fresh process, from a directory other than the
    repo (outputs must not depend on the working directory)."""
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args],
        cwd=cwd or "/", capture_output=True, text=True, timeout=600,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    return result


def read_csv(path):
    lines = path.read_text().strip().splitlines()
    header = lines[0].split(",")
    return header, [
        dict(zip(header, line.split(","), strict=True)) for line in lines[1:]
    ]


def test_training_writes_every_artifact(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    result = run_main(
        *SMALL, f"--data_dir={celeba_dir}", f"--predictions_dir={out}",
        "--run_name=e2e", "--num_steps=30", "--validation_step=10",
        "--plot_step=15", "--checkpoint_step=10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = out / "e2e"
    params = json.loads((run / "params.json").read_text())
    assert params["latent_size"] == 4 and params["run_name"] == "e2e"
    assert (run / "params.py").read_text() == (REPO / "params.py").read_text()

    header, rows = read_csv(run / "log.csv")
    assert header[:5] == ["step", "loss", "reconstruction_loss", "kl", "beta"]
    assert header[5:] == [f"kl_z{i}" for i in range(4)]
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    first, last = rows[0], rows[-1]
    assert float(last["reconstruction_loss"]) < float(first["reconstruction_loss"])
    kl_sum = sum(float(last[f"kl_z{i}"]) for i in range(4))
    assert kl_sum == pytest.approx(float(last["kl"]), rel=1e-3)
    _, validation = read_csv(run / "validation.csv")
    assert [int(r["step"]) for r in validation] == [10, 20, 30]

    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((run / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "latest" / "checkpoint").exists()
    assert (run / "checkpoints" / "best" / "checkpoint").exists()
    composites = sorted(p.name for p in (run / "composites").iterdir())
    assert composites == ["step_0000015.jpg", "step_0000030.jpg"]
    traversals = sorted(p.name for p in (run / "traversals").iterdir())
    assert traversals == ["traversal_0000015.png", "traversal_0000030.png"]
    composite = iio.imread(run / "composites" / "step_0000030.jpg")
    assert composite.ndim == 3 and composite.shape[1] >= 16 * 32
    assert len(iio.imread(run / "training.gif", index=None)) == 2
    for name in ("loss_curves.png", "kl_per_latent.png"):
        assert iio.imread(run / name).shape[0] > 100
    assert not list(run.rglob("*.tmp")), "temporary files left behind"


def test_resume_continues_exactly_where_it_stopped(celeba_dir, tmp_path):
    """Also: how many steps run per call (steps_per_call) changes nothing."""
    out = tmp_path / "predictions"
    common = [
        *SMALL, f"--data_dir={celeba_dir}", f"--predictions_dir={out}",
        "--validation_step=10", "--plot_step=100", "--checkpoint_step=10",
    ]  # fmt: skip
    straight = run_main(
        *common, "--run_name=straight", "--num_steps=30", "--steps_per_call=1"
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    first = run_main(
        *common, "--run_name=resumed", "--num_steps=20", "--steps_per_call=7"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_main(
        *common, "--run_name=resumed", "--num_steps=30", "--steps_per_call=3"
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming" in second.stdout

    _, resumed = read_csv(out / "resumed" / "log.csv")
    _, uninterrupted = read_csv(out / "straight" / "log.csv")
    assert [int(r["step"]) for r in resumed] == list(range(1, 31))  # no gap, no dup
    # Same data order, noise and optimizer state: the same numbers as one long run.
    for a, b in zip(resumed, uninterrupted, strict=True):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-4)
    _, resumed = read_csv(out / "resumed" / "validation.csv")
    _, uninterrupted = read_csv(out / "straight" / "validation.csv")
    assert [r["step"] for r in resumed] == [r["step"] for r in uninterrupted]
    for a, b in zip(resumed, uninterrupted, strict=True):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-4)

    def files():  # all but the lock, which a process takes to read the run
        return {
            p: p.stat().st_mtime_ns
            for p in (out / "resumed").rglob("*")
            if p.name != ".lock"
        }

    before = files()
    again = run_main(*common, "--run_name=resumed", "--num_steps=30")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert files() == before


def test_an_existing_run_is_never_overwritten(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    common = [*SMALL, f"--data_dir={celeba_dir}", f"--predictions_dir={out}"]
    first = run_main(*common, "--num_steps=2", "--plot_step=100")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_main(*common, "--num_steps=2", "--plot_step=100")
    assert second.returncode == 0, second.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["celeba_beta1_seed3", "celeba_beta1_seed3-2"]

    # The same name with another experiment's parameters is refused.
    clash = run_main(*common, "--run_name=celeba_beta1_seed3", "--beta=4")
    assert clash.returncode == 2
    assert "beta: 1.0 → 4.0" in clash.stderr


def test_missing_celeba_says_where_it_looked_and_what_to_do(tmp_path):
    result = run_main(
        "--dataset=celeba",
        f"--data_dir={tmp_path / 'nowhere'}",
        f"--predictions_dir={tmp_path / 'predictions'}",
    )
    assert result.returncode == 2
    assert str(tmp_path / "nowhere") in result.stderr
    assert "--dataset=dsprites" in result.stderr
    assert not (tmp_path / "predictions").exists()


def test_a_sweep_trains_one_run_per_value(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    result = run_main(
        *SMALL, f"--data_dir={celeba_dir}", f"--predictions_dir={out}",
        "--num_steps=2", "--plot_step=100", "--beta=1,4", "--run_name=sweep",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["sweep_beta1.0", "sweep_beta4.0"]
    betas = [json.loads((out / n / "params.json").read_text())["beta"] for n in
             ("sweep_beta1.0", "sweep_beta4.0")]  # fmt: skip
    assert betas == [1.0, 4.0]


def test_analyze_and_compare_an_existing_run(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    common = [f"--data_dir={celeba_dir}", f"--predictions_dir={out}"]
    trained = run_main(*SMALL, *common, "--num_steps=3", "--run_name=tiny")
    assert trained.returncode == 0, trained.stderr[-3000:]
    # The run's own parameters are used: no need to repeat the model flags.
    analyzed = run_main("--mode=analyze", "--run_name=tiny", *common)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    analysis = json.loads((out / "tiny" / "analysis" / "analysis.json").read_text())
    assert len(analysis["kl_per_latent"]) == 4 and analysis["num_samples"] == 20
    assert (out / "tiny" / "analysis" / "analysis.png").exists()
    # Metrics need ground-truth factors: CelebA has none.
    refused = run_main("--mode=evaluate", "--run_name=tiny", *common)
    assert refused.returncode == 2 and "ground-truth factors" in refused.stderr
    missing = run_main("--mode=analyze", "--run_name=nope", *common)
    assert missing.returncode == 2 and "runs there: tiny" in missing.stderr
    compared = run_main("--mode=compare", *common)
    assert compared.returncode == 0, compared.stderr[-3000:]
    page = (out / "comparison.md").read_text()
    assert "| [tiny](tiny/) | celeba | β = 1 | 3 |" in page
    assert (out / "comparison.html").exists()


@pytest.mark.slow
def test_dsprites_run_writes_metrics(tmp_path):
    """The whole dSprites pipeline: generation, training, metrics at the end."""
    out = tmp_path / "predictions"
    result = run_main(
        "--dataset=dsprites", f"--data_dir={tmp_path / 'data'}",
        f"--predictions_dir={out}", "--num_steps=5", "--run_name=d",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "d" / "metrics.json").read_text())
    for key in ("beta_vae", "factor_vae", "mig", "dci_disentanglement"):
        assert 0 <= metrics[key] <= 1
    assert metrics["step"] == 5 and metrics["num_images_encoded"] == 737_280


@pytest.mark.parametrize(
    "current, expected",
    [(0, 7), (7, 3), (10, 7), (17, 3), (95, 5), (98, 2)],
)
def test_a_call_of_several_steps_ends_at_the_next_event(current, expected):
    from main import steps_in_next_call

    p = {
        "steps_per_call": 7, "num_steps": 100, "validation_step": 10,
        "checkpoint_step": 20, "plot_step": 50,
    }  # fmt: skip
    assert steps_in_next_call(current, p) == expected
