"""The reference run shipped in predictions/ (README, "The study"): what it holds,
and its committed numbers, which its committed checkpoint must give again."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "predictions").glob("reference_*"))


def run_main(*args):
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args],
        capture_output=True, text=True, cwd="/", timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_one_reference_run_is_shipped_with_what_readme_says():
    assert len(SHIPPED) == 1, SHIPPED
    run = SHIPPED[0]
    params = json.loads((run / "params.json").read_text())
    assert params["dataset"] == "dsprites" and params["run_name"] == run.name
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == params["num_steps"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == params["num_steps"]
    assert {"reference", "fast"} <= set(metrics["protocols"])
    for name in ("analysis/analysis.png", "analysis/traversal_grid.png",
                 "loss_curves.png", "kl_per_latent.png"):  # fmt: skip
        assert (run / name).is_file(), name
    assert list((run / "traversals").glob("traversal_*.png"))
    index = (run / "checkpoints" / "latest" / "checkpoint").read_text()
    assert f'model_checkpoint_path: "ckpt-{params["num_steps"]}"' in index


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    """The shipped run copied into a scratch predictions folder (a test must not
    write into the repo), with only what evaluating it needs."""
    predictions = tmp_path_factory.mktemp("predictions")
    run = SHIPPED[0]
    copy = predictions / run.name
    copy.mkdir()
    for name in ("params.json", "status.json"):
        shutil.copy(run / name, copy / name)
    shutil.copytree(run / "checkpoints", copy / "checkpoints")
    return predictions, copy


def test_its_metrics_reproduce_exactly_from_its_checkpoint(copied, tmp_path):
    """The fast protocol (a tenth of the reference's samples): the same numbers to
    the last digit, from the committed checkpoint on the generated dSprites."""
    predictions, copy = copied
    data = f"--data_dir={tmp_path / 'data'}"
    run_main(
        "--mode=evaluate", f"--run_name={copy.name}", "--metrics_protocol=fast",
        f"--predictions_dir={predictions}", data,
    )  # fmt: skip
    fresh = json.loads((copy / "metrics.json").read_text())
    shipped = json.loads((SHIPPED[0] / "metrics.json").read_text())
    names = [k for k in shipped if k.endswith("_fast")]
    assert len(names) == 7  # six numbers, and MIG per factor with its latent
    assert {k: fresh[k] for k in names} == {k: shipped[k] for k in names}


def test_a_newcomer_can_analyze_and_compare_it(copied, tmp_path):
    predictions, copy = copied
    run_main(
        "--mode=analyze", f"--run_name={copy.name}", f"--predictions_dir={predictions}",
        f"--data_dir={tmp_path / 'data'}",
    )  # fmt: skip
    fresh = json.loads((copy / "analysis" / "analysis.json").read_text())
    shipped = json.loads((SHIPPED[0] / "analysis" / "analysis.json").read_text())
    assert fresh["top_latents"] == shipped["top_latents"]
    assert fresh["kl_per_latent"] == pytest.approx(shipped["kl_per_latent"], rel=1e-5)
    run_main("--mode=compare", f"--predictions_dir={predictions}")
    assert f"[{copy.name}]({copy.name}/)" in (predictions / "comparison.md").read_text()
