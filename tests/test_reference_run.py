"""The reference run shipped in predictions/ (README, "The study"): what it holds,
and its committed numbers, which its committed checkpoint must give again."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from utils.metrics import REGISTRY
from utils.runs.shipped import MARKER, working_folder

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "predictions").glob("reference_*"))
HEADLINES = [key for m in REGISTRY.values() for key in m.headlines]


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


def test_the_shipped_run_is_marked_to_stay_as_committed():
    assert (SHIPPED[0] / MARKER).is_file()
    assert "copy_of_" in (REPO / ".gitignore").read_text()  # its copy stays untracked


def test_work_on_a_shipped_run_goes_to_its_copy_made_once(tmp_path):
    shipped = tmp_path / "run"
    (shipped / "checkpoints").mkdir(parents=True)
    (shipped / "metrics.json").write_text("{}")
    (shipped / "checkpoints" / "ckpt").write_text("weights")
    (shipped / MARKER).write_text("ships")
    (shipped / ".lock").write_text("")
    said = []
    copy = working_folder(shipped, log=said.append)
    assert copy == tmp_path / "copy_of_run" and "working on its copy" in said[0]
    assert (copy / "checkpoints" / "ckpt").read_text() == "weights"
    assert not (copy / MARKER).exists() and not (copy / ".lock").exists()
    (copy / "metrics.json").write_text('{"new": 1}')  # what a mode writes
    assert working_folder(shipped, log=said.append) == copy  # not copied again
    assert (copy / "metrics.json").read_text() == '{"new": 1}'
    assert (shipped / "metrics.json").read_text() == "{}"
    assert working_folder(copy) == copy  # an ordinary run: itself
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy_of_run", "run"]


def file_hashes(folder):
    return {
        path.relative_to(folder): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
def test_inspecting_the_shipped_run_leaves_its_files_as_committed(tmp_path):
    """README's commands on the shipped run (here: export) wrote into the committed
    folder; they now write into its copy, and the shipped folder keeps every byte
    and gains no file (not even a lock)."""
    shipped = tmp_path / "predictions" / SHIPPED[0].name
    shutil.copytree(SHIPPED[0], shipped)
    before = file_hashes(shipped)
    result = run_main(
        "--mode=export", f"--run_name={shipped.name}",
        f"--predictions_dir={shipped.parent}", f"--data_dir={tmp_path / 'data'}",
    )  # fmt: skip
    assert file_hashes(shipped) == before
    copy = shipped.with_name(f"copy_of_{shipped.name}")
    assert (copy / "model" / "encoder.keras").is_file()
    assert not (copy / MARKER).exists()
    assert f"working on its copy {copy}" in result.stdout


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


# How far a number may move on a CPU of another instruction-set family than the one
# that made it (provenance.cpu.isa_family in metrics.json). The encoder's codes
# differ there in their last bits (measured: ≤ 2.4e-6 between AVX-512, AVX2 and
# SSE4.1 kernels), and a tree's split or a classifier's decision can follow them:
# measured, fast DCI moved by up to 4e-4 (one test point in 1,000 = 2e-4 on one
# factor), the others not at all. Allowed: a few such flips per number.
CROSS_CPU_TOLERANCE = {
    "beta_vae_fast": 0.008,  # 2 of its 250 evaluation points
    "factor_vae_fast": 0.008,  # 2 of 250 votes
    "mig_fast": 0.002,
    "dci_disentanglement_fast": 0.005,
    "dci_completeness_fast": 0.005,
    "dci_informativeness_fast": 0.002,  # 10 of 5 × 1,000 test predictions
    "sap_fast": 0.005,
    "modularity_fast": 0.005,  # 20-bin discretisation: a point may change bin
    "explicitness_fast": 0.002,
    "irs_fast": 0.005,
    # Continuous in the codes, but for the MI's bins: ~1e-5 expected.
    "gaussian_total_correlation_fast": 0.001,
    "gaussian_wasserstein_correlation_fast": 0.001,
    "gaussian_wasserstein_correlation_norm_fast": 0.001,
    "mutual_info_score_fast": 0.005,
    # KSG neighbour counts move only at near-ties; the logistic fit is continuous.
    "infom_fast": 0.005,
    "infoe_fast": 0.005,
    "infoc_fast": 0.005,
}


def same_machine_kind(fresh, shipped):
    """Bit-identical numbers are promised for the same libraries (the lock file)
    on the same CPU instruction-set family; what differs otherwise."""
    a, b = fresh["provenance"], shipped["provenance"]
    differs = [k for k in ("versions",) if a[k] != b[k]]
    if a["cpu"]["isa_family"] != b["cpu"]["isa_family"]:
        differs.append("cpu")
    return differs


def test_its_metrics_reproduce_from_its_checkpoint(copied, tmp_path):
    """The fast protocol: the same numbers to the last digit from the committed
    checkpoint on the generated dSprites, with the locked libraries on a CPU of
    the family that made them; within CROSS_CPU_TOLERANCE on another."""
    predictions, copy = copied
    data = f"--data_dir={tmp_path / 'data'}"
    run_main(
        "--mode=evaluate", f"--run_name={copy.name}", "--metrics_protocol=fast",
        f"--predictions_dir={predictions}", data,
    )  # fmt: skip
    fresh = json.loads((copy / "metrics.json").read_text())["protocols"]["fast"]
    shipped = json.loads((SHIPPED[0] / "metrics.json").read_text())["protocols"]
    shipped = shipped["fast"]
    assert set(CROSS_CPU_TOLERANCE) == {k + "_fast" for k in HEADLINES}
    differs = same_machine_kind(fresh, shipped)
    for key, tolerance in CROSS_CPU_TOLERANCE.items():
        name = key.removesuffix("_fast")
        if differs:
            assert fresh[name] == pytest.approx(shipped[name], abs=tolerance), (
                key, differs, fresh["provenance"], shipped["provenance"],
            )  # fmt: skip
        else:
            assert fresh[name] == shipped[name], key
    if not differs:
        assert fresh["details"] == shipped["details"]
        assert fresh["mig_per_factor"] == shipped["mig_per_factor"]


def test_its_numbers_carry_their_provenance():
    saved = json.loads((SHIPPED[0] / "metrics.json").read_text())
    params = json.loads((SHIPPED[0] / "params.json").read_text())
    for name in ("reference", "fast"):
        made = saved["protocols"][name]["provenance"]
        assert made["protocol"] == name and made["representation"] == "mean"
        assert made["checkpoint_step"] == params["num_steps"] == saved["step"]
        assert made["dataset"]["name"] == "dsprites"
        assert made["dataset"]["version"] == "dsprites_generated_v1"
        for package in ("tensorflow", "numpy", "scikit-learn"):
            assert made["versions"][package], package
        assert made["cpu"]["onednn_isa"] and made["cpu"]["model"]
        settings = saved["protocols"][name]["settings"]
        assert settings["dci"]["classifier"] == (
            "gradient_boosting" if name == "reference" else "extra_trees"
        )
        assert set(saved["protocols"][name]["seconds"]) == set(settings)


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


def test_udr_ranks_a_seed_group_and_writes_into_each_run(copied, tmp_path):
    """--mode=evaluate --run_name=a,b,c: three copies of one model are as alike as
    UDR's Lasso (α = 0.1) lets them be: 0.9 each."""
    predictions, copy = copied
    names = [copy.name]
    for suffix in ("_b", "_c"):
        twin = predictions / (copy.name + suffix)
        shutil.copytree(copy, twin, ignore=shutil.ignore_patterns("metrics.json"))
        params = json.loads((twin / "params.json").read_text())
        (twin / "params.json").write_text(json.dumps(params | {"run_name": twin.name}))
        names.append(twin.name)
    result = run_main(
        "--mode=evaluate", f"--run_name={','.join(names)}",
        f"--predictions_dir={predictions}", f"--data_dir={tmp_path / 'data'}",
    )  # fmt: skip
    assert "UDR" in result.stdout
    for name in names:
        udr = json.loads((predictions / name / "metrics.json").read_text())["udr"]
        assert udr["group"] == names and udr["udr"] == pytest.approx(0.9, abs=0.01)
