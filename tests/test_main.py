"""End to end: `python main.py` on a small CelebA-layout folder, every artifact,
resume, and the refusals that protect earlier runs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

from benchmark.memory import RUN_REPORTING_PEAK

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
    terms = ["loss", "reconstruction_loss", "kl", "negative_elbo", "beta"]
    assert header == ["step", *terms, *(f"kl_z{i}" for i in range(4))]
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    first, last = rows[0], rows[-1]
    assert float(last["reconstruction_loss"]) < float(first["reconstruction_loss"])
    kl_sum = sum(float(last[f"kl_z{i}"]) for i in range(4))
    assert kl_sum == pytest.approx(float(last["kl"]), rel=1e-3)
    header, validation = read_csv(run / "validation.csv")
    assert header == ["step", *terms]
    assert [int(r["step"]) for r in validation] == [10, 20, 30]
    for row in validation:  # what model selection uses: −ELBO = recon + KL
        elbo = float(row["reconstruction_loss"]) + float(row["kl"])
        assert float(row["negative_elbo"]) == pytest.approx(elbo, rel=1e-4)
    best = min(validation, key=lambda row: float(row["negative_elbo"]))["step"]
    index = (run / "checkpoints" / "best" / "checkpoint").read_text()
    assert f'model_checkpoint_path: "ckpt-{best}"' in index

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
    for name in ("encoder.keras", "decoder.keras", "saved_model"):
        assert (run / "model" / name).exists(), name
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["step"]) == ("finished", 30)
    assert not list(run.rglob("*.tmp")), "temporary files left behind"
    assert not list(run.rglob(".lock")), "a lock file left behind after a clean exit"
    # Only this project's output: none of TensorFlow's C++ start-up lines …
    for line in ("oneDNN", "cuda drivers", "absl::InitializeLog", "I0000", "E0000"):
        assert line not in result.stderr, line
    # … and the final progress line(s) show the last step's losses, not the call's
    # before (tqdm may print 100 % twice: when it gets there, and on closing).
    lines = re.split(r"[\r\n]", result.stderr)
    finals = {
        line.split("step/s")[-1]
        for line in lines
        if "step/s" in line and "100%|" in line
    }
    assert len(finals) == 1, finals


@pytest.mark.parametrize("objective", ["beta", "factor"])
def test_resume_continues_exactly_where_it_stopped(celeba_dir, tmp_path, objective):
    """Also: how many steps run per call (steps_per_call) changes nothing. FactorVAE:
    its discriminator and the discriminator's optimizer resume too."""
    out = tmp_path / "predictions"
    common = [
        *SMALL, f"--data_dir={celeba_dir}", f"--predictions_dir={out}",
        "--validation_step=10", "--plot_step=100", "--checkpoint_step=10",
        f"--objective={objective}",
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
    terms = ["loss", "discriminator_loss"] if objective == "factor" else ["loss"]
    for a, b in zip(resumed, uninterrupted, strict=True):
        for term in terms:
            assert float(a[term]) == pytest.approx(float(b[term]), rel=1e-4), term
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


@pytest.mark.slow  # 64×64 networks trained twice, with their end-of-run outputs
def test_a_preset_run_trains_resumes_and_keeps_its_values(celeba_dir, tmp_path):
    out = tmp_path / "predictions"
    common = [
        "--preset=locatello", "--dataset=celeba", f"--data_dir={celeba_dir}",
        f"--predictions_dir={out}", "--run_name=ref", "--batch_size=8",
        "--validation_batches=1", "--validation_step=2", "--checkpoint_step=2",
        "--plot_step=4",
    ]  # fmt: skip
    first = run_main(*common, "--num_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    saved = json.loads((out / "ref" / "params.json").read_text())
    assert saved["preset"] == "locatello" and saved["adam_epsilon"] == 1e-8
    assert saved["decoder_conv_layers"][-1] == [64, 4, 2]
    assert saved["learning_rate"] == 1e-4 and saved["batch_size"] == 8
    second = run_main(*common, "--num_steps=4")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming" in second.stdout
    _, rows = read_csv(out / "ref" / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    # The same name without the preset is another experiment: refused, named.
    other = run_main(*[a for a in common if a != "--preset=locatello"], "--num_steps=6")
    assert other.returncode == 2 and "adam_epsilon" in other.stderr


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
    assert "| [tiny](tiny/) | celeba | β-VAE, β = 1 | 3 | finished | 3 |" in page
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
    reference = metrics["protocols"]["reference"]
    assert metrics["step"] == 5 and reference["step"] == 5
    assert reference["details"]["dci"]["classifier"] == "gradient_boosting"


@pytest.mark.parametrize(
    "current, expected",
    # 9, 19, 49: the next event is one step away
    [(0, 7), (7, 3), (9, 1), (10, 7), (17, 3), (19, 1), (49, 1), (95, 5), (98, 2)],
)
def test_a_call_of_several_steps_ends_at_the_next_event(current, expected):
    from train import EventSchedule

    p = {
        "steps_per_call": 7, "num_steps": 100, "validation_step": 10,
        "checkpoint_step": 20, "plot_step": 50,
    }  # fmt: skip
    assert EventSchedule.of(p).steps_in_next_call(current) == expected


def test_metrics_during_training_come_at_their_steps_exactly():
    from train import EventSchedule

    p = {
        "steps_per_call": 7, "num_steps": 100, "validation_step": 10,
        "checkpoint_step": 20, "plot_step": 50,
    }  # fmt: skip
    measured = EventSchedule.of({**p, "metrics_step": 15})
    assert measured.steps_in_next_call(10) == 5  # 7 without: past step 15
    assert EventSchedule.of(p).steps_in_next_call(10) == 7
    steps = [s for s in range(1, 101) if measured.measures(s)]
    assert steps == [15, 30, 45, 60, 75, 90]
    assert not any(EventSchedule.of(p).measures(s) for s in range(1, 101))


@pytest.mark.slow  # two evaluations of the fast protocol
def test_metrics_step_logs_the_fast_metrics_the_evaluation_would_give(tmp_path):
    out = tmp_path / "predictions"
    result = run_main(
        "--dataset=xy_object", f"--data_dir={tmp_path / 'data'}",
        f"--predictions_dir={out}", "--run_name=m", "--num_steps=4",
        "--metrics_step=2", "--metrics_protocol=fast", "--validation_step=2",
        "--plot_step=4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    header, rows = read_csv(out / "m" / "metrics_during_training.csv")
    assert [r["step"] for r in rows] == ["2", "4"]
    assert "mig_fast" in header and "dci_disentanglement_fast" in header
    final = json.loads((out / "m" / "metrics.json").read_text())  # step 4, fast
    for key in ("mig_fast", "beta_vae_fast", "dci_disentanglement_fast"):
        assert float(rows[1][key]) == pytest.approx(final[key], abs=1e-6), key
    assert list((out / "m" / "tensorboard" / "during_training").glob("events.*"))


# Validation rows of a real β warm-up (KL annealing to β = 1), recorded from
# `python main.py --dataset=dsprites --latent_size=4 --batch_size=16
# --conv_layers=[[8,4,2],[8,4,2],[8,4,2],[8,4,2]] --dense_layers=[[32]]
# --validation_batches=4 --seed=3 --learning_rate=3e-3 --beta=1 --beta_steps=400
# --num_steps=400 --beta_schedule=warmup --validation_step=20`: (step, the
# objective's loss, the negative ELBO). As β rises the loss rises at steps 340
# and 360 while the negative ELBO improves again at 360 and 380.
WARM_UP = [
    (20, 1005.56, 1031.37), (40, 759.531, 792.492), (60, 689.234, 722.595),
    (80, 661.4, 688.789), (100, 632.886, 655.838), (120, 623.075, 642.546),
    (140, 605.908, 618.843), (160, 583.437, 592.912), (180, 399.54, 424.287),
    (200, 317.203, 340.789), (220, 261.571, 275.499), (240, 222.87, 235.756),
    (260, 218.303, 229.582), (280, 187.358, 195.647), (300, 178.899, 184.288),
    (320, 172.249, 176.98), (340, 177.037, 180.089), (360, 174.74, 176.632),
    (380, 158.246, 159.182), (400, 166.144, 166.144),
]  # fmt: skip


def early_stop(state, rows, patience=2):
    """The step at which the run's own early-stopping state says stop, or None."""
    for step, loss, negative_elbo in rows:
        state.record_validation({"loss": loss, "negative_elbo": negative_elbo})
        if int(state.validations_without_improvement.numpy()) >= patience:
            return step
    return None


def test_a_warm_up_schedule_does_not_stop_early():
    """Selection on the negative ELBO, not on the objective's loss, which a β
    warm-up makes rise while the model improves: on the loss (the old rule) this
    run would have stopped at step 360 of 400."""
    import tensorflow as tf

    from train import TrainingState

    p = {
        "seed": 0, "conv_layers": [[8, 4, 2]], "dense_layers": [], "latent_size": 2,
        "activation": "relu", "precision": "float32", "objective": "beta",
        "learning_rate": 1e-3, "adam_beta_1": 0.5, "adam_beta_2": 0.999,
        "adam_epsilon": 1e-7,
    }  # fmt: skip
    state = TrainingState.new(p, (8, 8, 1), tf.distribute.get_strategy())
    assert early_stop(state, WARM_UP) is None
    assert float(state.best_validation_loss.numpy()) == 159.182
    on_the_loss = [(step, 0.0, loss) for step, loss, _ in WARM_UP]
    state = TrainingState.new(p, (8, 8, 1), tf.distribute.get_strategy())
    assert early_stop(state, on_the_loss) == 360


@pytest.mark.parametrize(
    "split_sizes, message",
    [
        ((40, 6, 10), "the validation split has 6 images, fewer than one batch"),
        ((40, 10, 2), "the test split has 2 images; the step images need 3"),
    ],
)
def test_data_too_small_for_the_run_is_refused_before_work(
    tmp_path, split_sizes, message
):
    from conftest import write_celeba_folder

    train, validation, test = split_sizes
    data = write_celeba_folder(tmp_path / "small", train + validation + test, train,
                               validation)  # fmt: skip
    out = tmp_path / "predictions"
    result = run_main(
        *SMALL, f"--data_dir={data}", f"--predictions_dir={out}", "--num_steps=20"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not list(out.iterdir())  # no run folder left


@pytest.mark.parametrize("mode", ["analyze", "evaluate", "export"])
def test_a_run_in_use_is_refused_before_the_data_loads(tmp_path, mode):
    from utils.runs.folder import RunLock

    out = tmp_path / "predictions"
    run = out / "busy"
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"dataset": "dsprites"}))
    lock = RunLock(run).acquire()  # as a training process holds it
    try:
        # No data where the run's data_dir points: loading it first would fail on
        # that instead.
        result = run_main(
            f"--mode={mode}", "--run_name=busy", f"--predictions_dir={out}",
            f"--data_dir={tmp_path / 'no_data'}",
        )  # fmt: skip
    finally:
        lock.release()
    assert result.returncode == 2, result.stderr[-3000:]
    assert "is in use by process" in result.stderr
    assert f"then {mode}" in result.stderr and "--run_name" not in result.stderr
    assert not (tmp_path / "no_data").exists()


def test_help_errors_and_compare_answer_without_tensorflow(tmp_path):
    script = (
        "import runpy, sys; sys.argv = ['main.py', *sys.argv[1:]]\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "try:\n"
        f"    runpy.run_path({str(REPO / 'main.py')!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    heavy = {'tensorflow', 'keras', 'matplotlib', 'sklearn'}\n"
        "    heavy &= set(sys.modules)\n"
        "    print('code', stop.code, 'heavy', sorted(heavy))\n"
    )
    (tmp_path / "predictions" / "a").mkdir(parents=True)
    (tmp_path / "predictions" / "a" / "params.json").write_text("{}")
    for args, code in (
        (["--help"], 0),
        (["--beta=-1"], 2),
        (["--mode=compare", f"--predictions_dir={tmp_path / 'predictions'}"], 0),
    ):
        result = subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True,
            cwd="/", timeout=120,
        )  # fmt: skip
        assert f"code {code} heavy []" in result.stdout, (args, result.stderr[-2000:])


def test_a_run_that_cannot_fit_in_memory_is_refused_before_work(tmp_path):
    result = run_main(
        "--dataset=celeba", "--image_size=2048", f"--data_dir={tmp_path / 'none'}",
        f"--predictions_dir={tmp_path / 'predictions'}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "would need about" in result.stderr and "GB of memory" in result.stderr
    assert not (tmp_path / "predictions").exists()


def test_a_memory_refusal_names_what_takes_the_memory():
    """Issue 25.18: oversized layers were refused naming only the batch, image and
    latent sizes, so the user lowered the wrong thing."""
    import params
    from train import check_memory
    from utils.settings import cli
    from utils.settings.cli import UsageError

    p, _ = cli.parse_command_line(cli.read_params(params), ["--dataset=celeba"])
    huge = {**p, "dense_layers": [[60_000], [60_000]]}  # 2 × 60k² weights
    with pytest.raises(UsageError) as refused:
        check_memory(huge)
    said = str(refused.value)
    assert "weights and optimizer state" in said
    assert "dense_layers=[[60000], [60000]]" in said
    assert said.index("weights") < said.index("activations")  # the larger first


def test_thousands_of_latents_train_and_draw_in_bounded_memory(celeba_dir, tmp_path):
    """--latent_size=10000 was OOM-killed at the first image step (20 GB): the step
    images now decode in batches and show the top 32 latents."""
    out, peak_file = tmp_path / "predictions", tmp_path / "peak"
    # The run's own peak (VmHWM): ru_maxrss would be this pytest process's, which
    # the whole suite grows to 4.5 GB.
    result = subprocess.run(
        [sys.executable, "-c", RUN_REPORTING_PEAK, peak_file, REPO / "main.py", *SMALL,
         "--latent_size=3000", f"--data_dir={celeba_dir}", f"--predictions_dir={out}",
         "--run_name=wide", "--num_steps=2", "--plot_step=2", "--validation_step=2"],
        capture_output=True, text=True, cwd="/", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    peak = float(peak_file.read_text())
    assert peak < 3000, peak  # the old traversals needed ~30 GB for 3,000 latents
    assert (out / "wide" / "traversals" / "traversal_0000002.png").is_file()


def test_status_says_evaluating_while_the_metrics_of_a_run_end_are_computed(
    tmp_path, monkeypatch, capsys
):
    """status.json said "finished" for the ten minutes of the reference metrics:
    a reader and the compare page took a run still at work for done."""
    from utils.outputs import end_of_run
    from utils.runs.folder import write_status

    folder = tmp_path / "run"
    drawn = ("composites/step_0000050.jpg", "traversals/traversal_0000050.png")
    for name in ("loss_curves.png", "kl_per_latent.png", "training.gif", *drawn):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    for name in ("encoder.keras", "decoder.keras", "saved_model"):
        (folder / "model").mkdir(exist_ok=True)
        (folder / "model" / name).write_bytes(b"")
    write_status(folder, "finished", 50, 50, "reached num_steps")
    seen = []

    def evaluate_metrics(*args):
        seen.append(json.loads((folder / "status.json").read_text()))

    monkeypatch.setattr(end_of_run, "evaluate_metrics", evaluate_metrics)
    p = {"dataset": "dsprites", "metrics_at_end": True, "metrics_protocol": "reference"}
    model = type("Model", (), {"encoder": None})  # what the metrics would score
    end_of_run.write_final_outputs(p, folder, model, None, 50, False, True)
    assert [s["state"] for s in seen] == ["evaluating"]
    assert seen[0]["reason"] == "reached num_steps; computing the metrics"
    after = json.loads((folder / "status.json").read_text())
    assert (after["state"], after["reason"]) == ("finished", "reached num_steps")
    said = capsys.readouterr()
    assert "about 10 minutes" in said.out + said.err
    assert "--metrics_protocol=fast" in said.out + said.err
