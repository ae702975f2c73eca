"""utils/data/factor_structure.py: correlated training factors (Träuble et al. 2021)
and held-out combinations (Montero et al. 2021), on xy_object (75,000 images drawn
from their factors: no download) and on a tiny dataset whose pixels spell their
index; their checks through main.py; the compare page; a short run."""

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare

from utils.data import factor_structure as fs
from utils.data.ground_truth import GroundTruthData
from utils.data.xy_object import XYObject
from utils.outputs.compare import compare_runs

REPO = Path(__file__).resolve().parents[1]
CORRELATION = ["x", "y", 0.2]
HOLDOUT = {"x": [0, 1, 2, 3, 4], "scale": [1, 3]}


@pytest.fixture(scope="module")
def xy():
    return XYObject()


def pair_counts(source, indices, a, b):
    classes = source.classes_of(indices)
    i, j = source.factor_names.index(a), source.factor_names.index(b)
    size_b = source.factor_sizes[j]
    counts = np.bincount(
        classes[:, i] * size_b + classes[:, j],
        minlength=source.factor_sizes[i] * size_b,
    )
    return counts.reshape(source.factor_sizes[i], size_b)


def total_variation(p, q):
    return 0.5 * np.abs(np.asarray(p) / np.sum(p) - np.asarray(q) / np.sum(q)).sum()


# --- the correlation


def test_pair_law_is_the_gaussian_of_the_normalised_classes():
    # Sizes 3 and 2: ĉ_a ∈ {0, ½, 1}, ĉ_b ∈ {0, 1}; σ = 0.5, so 2σ² = ½.
    weights = [[math.exp(-2 * (a / 2 - b) ** 2) for b in range(2)] for a in range(3)]
    expected = np.array(weights) / np.sum(weights)
    np.testing.assert_allclose(fs.pair_law(3, 2, 0.5), expected, rtol=1e-12)
    # A tiny σ underflows off the diagonal: still a law, all on the equal pairs.
    np.testing.assert_allclose(fs.pair_law(3, 3, 1e-4), np.eye(3) / 3, atol=1e-12)


def test_resampled_pairs_follow_the_target_law_and_other_factors_stay_uniform(xy):
    train = fs.training_indices(xy, CORRELATION, seed=0)
    assert len(train) == len(xy.splits["train"])  # the same size as the split
    assert np.isin(train, xy.splits["train"]).all()
    observed = pair_counts(xy, train, "x", "y")
    target = fs.pair_law(25, 25, 0.2)
    # 70,000 draws over 625 cells: E[TV] ≈ ½ Σ √(2p/(πn)) ≈ 0.03 for this law.
    assert total_variation(observed, target) < 0.05  # measured 0.031; σ² for σ: 0.27
    expected = target.ravel() * len(train)
    kept = expected >= 5  # chi-square's rule of thumb; the rest pooled
    observed_cells = [*observed.ravel()[kept], observed.ravel()[~kept].sum()]
    expected_cells = [*expected[kept], expected[~kept].sum()]
    assert chisquare(observed_cells, expected_cells).pvalue > 1e-3
    # Correlated indeed: far from the uniform pairs the split has.
    assert total_variation(observed, np.ones((25, 25))) > 0.3  # measured 0.41
    classes = xy.classes_of(train)
    for column, size in ((2, 5), (3, 24)):  # scale, color
        marginal = np.bincount(classes[:, column], minlength=size)
        assert total_variation(marginal, np.ones(size)) < 0.02  # measured ≤ 0.008
    # And independent of the correlated pair: scale given x near 0 or near 24.
    for side in (classes[:, 0] < 5, classes[:, 0] >= 20):
        marginal = np.bincount(classes[side, 2], minlength=5)
        assert total_variation(marginal, np.ones(5)) < 0.02


def test_pairs_of_different_sizes_meet_on_the_normalised_scale(xy):
    # x (25 classes) with scale (5): ĉ_x = x/24 meets ĉ_s = s/4, so scale 4 goes
    # with x near 24, not near 4 as raw classes would have it.
    train = fs.training_indices(xy, ["x", "scale", 0.05], seed=0)
    observed = pair_counts(xy, train, "x", "scale")
    assert total_variation(observed, fs.pair_law(25, 5, 0.05)) < 0.02
    assert observed[:, 4].argmax() == 24 and observed[:, 0].argmax() == 0


def test_a_large_sigma_gives_nearly_uniform_pairs(xy):
    train = fs.training_indices(xy, ["x", "y", 1e6], seed=0)
    observed = pair_counts(xy, train, "x", "y")
    # Uniform pairs, up to the sampling noise of 70,000 draws (E[TV] ≈ 0.038).
    assert total_variation(observed, np.ones((25, 25))) < 0.05
    assert total_variation(fs.pair_law(25, 25, 1e6), np.ones((25, 25))) < 1e-9


def test_the_resampled_array_is_a_pure_function_of_its_parameters(xy):
    first = fs.training_indices(xy, CORRELATION, HOLDOUT, seed=3)
    np.testing.assert_array_equal(
        first, fs.training_indices(xy, CORRELATION, HOLDOUT, 3)
    )
    other_seed = fs.training_indices(xy, CORRELATION, HOLDOUT, seed=4)
    assert len(other_seed) == len(first) and not np.array_equal(first, other_seed)
    # Neither asked: the train split itself, so other runs keep their batches.
    assert fs.training_indices(xy, None, None, 3) is xy.splits["train"]


class Spelled(GroundTruthData):
    """120 images of 1×1×3 pixels whose bytes spell their index: a batch says which
    images it holds."""

    name = "spelled"
    factor_names = ("a", "b", "c")
    factor_sizes = (6, 5, 4)
    image_shape = (1, 1, 3)

    def __init__(self):
        order = np.random.default_rng(0).permutation(120)
        self.splits = {
            "train": np.sort(order[20:]),
            "validation": np.sort(order[:10]),
            "test": np.sort(order[10:20]),
        }

    def read(self, indices):
        indices = np.asarray(indices)
        digits = [indices // 65536, indices // 256 % 256, indices % 256]
        return np.stack(digits, axis=-1).astype(np.uint8).reshape(-1, 1, 1, 3)


def spelled_indices(images):
    images = np.asarray(images).astype(np.int64).reshape(-1, 3)
    return images[:, 0] * 65536 + images[:, 1] * 256 + images[:, 2]


def test_a_resumed_run_sees_the_same_batches():
    import tensorflow as tf

    from utils.data.pipeline import distributed_batches

    source, strategy = Spelled(), tf.distribute.get_strategy()
    structure = (["a", "b", 0.3], {"a": [0, 1], "c": [2]})

    def batches(start_step, num_steps):
        # As train.py's Loop: the array rebuilt in each session, from the params.
        train = fs.training_indices(source, *structure, seed=7)
        data = distributed_batches(
            strategy, source, train, 8, seed=7, start_step=start_step,
            num_steps=num_steps,
        )  # fmt: skip
        return [spelled_indices(images) for images in data]

    uninterrupted, resumed = batches(0, 16), batches(10, 6)
    np.testing.assert_array_equal(np.stack(uninterrupted[10:]), np.stack(resumed))
    # 16 batches of 8 are over an epoch of the resampled array, and only of it.
    seen = np.concatenate(uninterrupted)
    allowed = fs.training_indices(source, *structure, seed=7)
    assert np.isin(seen, allowed).all()
    assert not fs.holdout_mask(source, seen, structure[1]).any()


# --- the holdout


def held_out_combinations(source, holdout):
    """Every index whose named factors take the given classes, the others any:
    built from the grid, not from the code under test."""
    ranges = [
        holdout.get(name, range(size))
        for name, size in zip(source.factor_names, source.factor_sizes, strict=True)
    ]
    combos = np.array(list(itertools.product(*ranges)))
    return set(np.ravel_multi_index(tuple(combos.T), source.factor_sizes).tolist())


def test_holdout_removes_exactly_the_combinations_and_nothing_else(xy):
    held = held_out_combinations(xy, HOLDOUT)
    assert len(held) == 5 * 2 * 25 * 24  # the sets' sizes × the other factors'
    split = set(xy.splits["train"].tolist())
    train = fs.training_indices(xy, None, HOLDOUT)
    assert set(train.tolist()) == split - held and len(train) == len(set(train))
    assert len(split) - len(train) == len(split & held)
    np.testing.assert_array_equal(train, np.sort(train))
    # With the correlation too: resampled from what the holdout leaves.
    both = fs.training_indices(xy, CORRELATION, HOLDOUT, seed=0)
    assert len(both) == len(train) and not set(both.tolist()) & held


def test_the_held_out_samples_are_fixed_and_of_the_right_images(xy):
    held, test, counts = fs.holdout_samples(xy, HOLDOUT)
    combos = held_out_combinations(xy, HOLDOUT)
    assert len(held) == 2048 and set(held.tolist()) <= combos
    in_distribution = set(xy.splits["test"].tolist()) - combos
    assert len(test) == 2048 and set(test.tolist()) <= in_distribution
    assert counts == {
        "held_out_images": len(combos),
        **{
            f"held_out_in_{name}": len(set(indices.tolist()) & combos)
            for name, indices in xy.splits.items()
        },
        "in_distribution_test_images": len(in_distribution),
    }
    again = fs.holdout_samples(xy, HOLDOUT)
    np.testing.assert_array_equal(held, again[0])
    np.testing.assert_array_equal(test, again[1])
    few, _, _ = fs.holdout_samples(xy, {"x": [0], "y": [0], "scale": [0]})
    assert sorted(few.tolist()) == sorted(
        held_out_combinations(xy, {"x": [0], "y": [0], "scale": [0]})
    )  # 24 images: all of them


def test_the_holdout_is_described_with_ranges():
    assert fs.describe_holdout({"x": [4, 0, 1, 2, 7], "scale": [3]}) == (
        "x ∈ {0–2, 4, 7}, scale ∈ {3}"
    )


def test_the_held_out_report_scores_both_samples_into_metrics_json(xy, tmp_path):
    import tensorflow as tf

    from models import BetaVAE, kl_per_latent, reconstruction_loss
    from utils.outputs.metrics_file import evaluate_holdout

    tf.keras.utils.set_random_seed(0)
    model = BetaVAE(xy.image_shape, [[4, 4, 2]] * 4, [[8]], 3)
    p = {"holdout": HOLDOUT, "reconstruction_loss": "bernoulli"}
    # Another step's numbers are dropped; this step's other keys are kept.
    (tmp_path / "metrics.json").write_text(json.dumps({"step": 3, "mig": 0.5}))
    evaluate_holdout(model, xy, tmp_path, p, step=4, count=40)
    evaluate_holdout(model, xy, tmp_path, p, step=5, count=40)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    saved["mig"] = 0.25
    (tmp_path / "metrics.json").write_text(json.dumps(saved))
    block = evaluate_holdout(model, xy, tmp_path, p, step=5, count=40)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == {"step": 5, "mig": 0.25, "holdout": json.loads(json.dumps(block))}
    assert block["definition"] == HOLDOUT and block["step"] == 5
    held, test, counts = fs.holdout_samples(xy, HOLDOUT, 40)
    assert block["counts"] == counts
    for name, indices in (("held_out", held), ("in_distribution_test", test)):
        # The same numbers computed here in one batch, z at the posterior mean.
        images = xy.read(indices).astype(np.float32) / 255
        z_mean, z_log_var = model.encoder(images)
        logits = model.decoder(z_mean)
        expected = reconstruction_loss(images, logits, "bernoulli").numpy().mean()
        kl = kl_per_latent(z_mean, z_log_var).numpy().sum(axis=1).mean()
        assert block[name]["images"] == 40
        assert block[name]["reconstruction_loss"] == pytest.approx(expected, rel=1e-5)
        assert block[name]["kl"] == pytest.approx(kl, rel=1e-4)


# --- checks


def test_values_that_need_the_dataset_are_checked_against_it(xy):
    problems = fs.dataset_problems(xy, ["x", "posY", 0.2], {"x": [3, 25], "s": [0]})
    listed = "x (25 classes), y (25 classes), scale (5 classes), color (24 classes)"
    assert problems == [
        f"factor_correlation names 'posY', not a scored factor of xy_object ({listed})",
        "holdout['x'] has classes [25] out of range: x has classes 0 … 24",
        f"holdout names 's', not a scored factor of xy_object ({listed})",
    ]
    everything = fs.dataset_problems(xy, None, {"scale": [0, 1, 2, 3, 4]})
    assert everything[0] == (
        "holdout scale ∈ {0–4} removes every train image (70,000): hold out fewer "
        "classes"
    )
    assert fs.dataset_problems(xy, CORRELATION, HOLDOUT) == []


def run_main(*args, timeout=600):
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args],
        cwd="/", capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip


def checked(*args):
    """config.validate's messages for params.py overridden by `args`."""
    from utils.settings import cli, config

    specs = cli.read_params(cli.import_params(REPO / "params.py"))
    p, _ = cli.parse_command_line(specs, ["--dataset=xy_object", *args])
    return config.validate(p)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--factor_correlation=x"], "factor_correlation='x' must be [factor_a, "),
        (["--factor_correlation=['x','y',0]"], "and a finite sigma > 0"),
        (["--factor_correlation=['x','y',1e999]"], "and a finite sigma > 0"),
        (["--factor_correlation=['x',2,1]"], "must be [factor_a, factor_b, sigma]"),
        (["--factor_correlation=['x','x',1]"], "correlates 'x' with itself"),
        (["--holdout={'x':[-1]}"], "holdout['x']=[-1] must be a non-empty list"),
        (["--holdout={'x':[]}"], "holdout['x']=[] must be a non-empty list"),
        (["--holdout={'x':[1.5]}"], "holdout['x']=[1.5] must be a non-empty list"),
        (["--holdout={'x':[1,1]}"], "holdout['x']=[1, 1] lists a class twice"),
        (["--holdout=[1, 2]"], "holdout=[1, 2] must be a non-empty dict"),
        (["--holdout={}"], "holdout={} must be a non-empty dict"),
        (
            ["--dataset=folder", "--holdout={'x':[1]}"],
            "holdout need ground-truth factors, which folder does not have",
        ),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(args, message):
    assert sum(message in problem for problem in checked(*args)) == 1, checked(*args)


def test_good_values_pass_the_checks():
    assert checked("--factor_correlation=['x','y',0.2]", "--holdout={'x':[0,3]}") == []


def test_bad_values_exit_with_code_2_before_any_work(tmp_path):
    out = tmp_path / "predictions"
    result = run_main(
        "--dataset=xy_object", f"--predictions_dir={out}",
        "--factor_correlation=['x','y',-1]", "--holdout={'x':'all'}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "factor_correlation=['x', 'y', -1] must be" in result.stderr
    assert "holdout['x']='all' must be a non-empty list" in result.stderr
    assert not out.exists()  # refused before the run folder


def test_names_and_classes_are_refused_once_the_data_is_loaded(tmp_path, capsys):
    # main.main in this process (TensorFlow loads once for the whole file); a
    # subprocess would pay its start-up again. It sets Ctrl-C's handler: restored.
    import signal

    import main

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out = tmp_path / "predictions"
    try:
        code = main.main([
            "--dataset=xy_object", f"--predictions_dir={out}", "--run_name=bad",
            "--factor_correlation=['x','posY',0.2]", "--holdout={'y':[30]}",
        ])  # fmt: skip
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert "factor_correlation names 'posY', not a scored factor of xy_object" in (
        stderr
    )
    assert "(x (25 classes), y (25 classes), scale (5 classes), color" in stderr
    assert "holdout['y'] has classes [30] out of range" in stderr
    assert not (out / "bad").exists()  # before the model and the run's files


# --- what a run records, and the compare page


def write_run(predictions, name, seed, mig, **params):
    folder = predictions / name
    folder.mkdir(parents=True)
    base = {"dataset": "xy_object", "objective": "beta", "beta": 1.0, "seed": seed}
    (folder / "params.json").write_text(json.dumps({**base, **params}))
    (folder / "metrics.json").write_text(json.dumps({"mig": mig}))
    status = {"state": "finished", "step": 10, "num_steps": 10, "reason": ""}
    (folder / "status.json").write_text(json.dumps(status))


def markdown_tables(predictions):
    """comparison.md: {section: [{column: cell}]}."""
    found, title = {}, None
    for block in (predictions / "comparison.md").read_text().split("\n\n"):
        if block.startswith("## "):
            title = block[3:].split(":")[0]
        elif block.startswith("| "):
            header, _, *rows = (
                [c.strip() for c in line.strip().strip("|").split(" | ")]
                for line in block.splitlines()
            )
            found[title] = [dict(zip(header, row, strict=True)) for row in rows]
    return found


def test_they_are_the_experiment_a_resume_must_keep(tmp_path):
    from utils.runs.folder import (
        BOOKKEEPING,
        RESUMABLE_CHANGES,
        RunFolderError,
        check_same_experiment,
        load_parameters,
    )

    names = {"factor_correlation", "holdout"}
    assert not names & (BOOKKEEPING | RESUMABLE_CHANGES)
    saved = {"seed": 0, "factor_correlation": ["x", "y", 0.2], "holdout": None}
    for change in ({"factor_correlation": ["x", "y", 0.5]}, {"holdout": {"x": [1]}}):
        with pytest.raises(RunFolderError, match=next(iter(change))):
            check_same_experiment(saved, {**saved, **change}, tmp_path / "run")
    # A tuple from params.py is the list params.json holds: the same experiment.
    check_same_experiment(saved, {**saved, "factor_correlation": ("x", "y", 0.2)}, "r")
    # A params.json from before them reads as neither.
    (tmp_path / "params.json").write_text(json.dumps({"seed": 0}))
    old = load_parameters(tmp_path)
    assert old["factor_correlation"] is None and old["holdout"] is None


def test_the_compare_page_never_averages_across_them_and_shows_them(tmp_path):
    corr = ["x", "y", 0.2]
    for seed in (0, 1):
        write_run(tmp_path, f"plain{seed}", seed, 0.1 + seed / 10,
                  factor_correlation=None, holdout=None)  # fmt: skip
        write_run(tmp_path, f"corr{seed}", seed, 0.5 + seed / 10,
                  factor_correlation=corr, holdout=None)  # fmt: skip
        write_run(tmp_path, f"held{seed}", seed, 0.8, factor_correlation=None,
                  holdout={"x": [0, 1]})  # fmt: skip
    write_run(tmp_path, "old2", 2, 0.3)  # before these parameters: neither
    compare_runs(tmp_path)
    tables = markdown_tables(tmp_path)
    seeds = [g["Seeds"].split(" (")[0].split(", ") for g in tables["Groups"]]
    assert sorted(map(sorted, seeds)) == [["0", "1"], ["0", "1"], ["0", "1", "2"]]
    by_mig = sorted((g["MIG"], g["factor_correlation"], g["holdout"]) for g in
                    tables["Groups"])  # fmt: skip
    assert by_mig == [
        ("0.200 ± 0.100 [0.100, 0.300]", "None", "None"),  # plain0, plain1 and old2
        ("0.550 ± 0.071", "['x', 'y', 0.2]", "None"),
        ("0.800 ± 0.000", "None", "{'x': [0, 1]}"),
    ]
    rows = {r["Run"].split("]")[0][1:]: r for r in tables["Runs"]}
    assert rows["held1"]["holdout"] == "{'x': [0, 1]}"
    assert rows["old2"]["factor_correlation"] == "None"


@pytest.mark.slow
def test_a_short_run_records_them_and_scores_the_held_out_images(tmp_path):
    """xy_object, 4 steps of 8 images, both options: params.json, and the holdout
    block in metrics.json at the end and again from --mode=evaluate (~1 min CPU)."""
    out = tmp_path / "predictions"
    small = [
        "--dataset=xy_object", f"--predictions_dir={out}", "--run_name=fs",
        "--num_steps=4", "--batch_size=8", "--metrics_protocol=fast",
        "--latent_size=4", "--conv_layers=[[8,4,2],[8,4,2],[8,4,2],[8,4,2]]",
        "--dense_layers=[[32]]", "--validation_batches=1",
    ]  # fmt: skip
    options = ["--factor_correlation=['x','y',0.2]", "--holdout={'x':[0,1,2]}"]
    result = run_main(*small, *options)
    assert result.returncode == 0, result.stderr[-3000:]
    xy = XYObject()
    removed = (xy.classes_of(xy.splits["train"])[:, 0] < 3).sum()  # x ∈ {0, 1, 2}
    kept = len(xy.splits["train"]) - removed
    said = f"Training images: {kept:,} of the train split, {removed:,} images of"
    assert said in result.stdout
    params = json.loads((out / "fs" / "params.json").read_text())
    assert params["factor_correlation"] == ["x", "y", 0.2]
    assert params["holdout"] == {"x": [0, 1, 2]}
    metrics = json.loads((out / "fs" / "metrics.json").read_text())
    block = metrics["holdout"]
    assert metrics["step"] == 4 and block["step"] == 4 and "mig_fast" in metrics
    assert block["definition"] == {"x": [0, 1, 2]}
    _, _, counts = fs.holdout_samples(xy, {"x": [0, 1, 2]})
    assert block["counts"] == counts and counts["held_out_images"] == 9_000
    for name in ("held_out", "in_distribution_test"):
        assert block[name]["images"] == 2048
        assert math.isfinite(block[name]["reconstruction_loss"])
        assert block[name]["kl"] >= 0
    assert "Held-out combinations (Montero et al. 2021), x ∈ {0–2}" in result.stdout
    # --mode=evaluate scores them again, from the same checkpoint: the same numbers.
    (out / "fs" / "metrics.json").unlink()
    result = run_main("--mode=evaluate", "--run_name=fs", f"--predictions_dir={out}",
                      "--metrics_protocol=fast")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((out / "fs" / "metrics.json").read_text())
    assert again["holdout"]["held_out"] == pytest.approx(block["held_out"])
    assert "mig_fast" in again
