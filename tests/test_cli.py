"""Command-line overrides of params.py: typed values, --help, and clear errors."""

import pytest

import main
import params
from utils import cli, config

SPECS = cli.read_params(params)


def resolved(*argv):
    p, _ = cli.parse_command_line(SPECS, list(argv))
    return p


def test_every_params_name_is_read_with_its_comment():
    assert "dataset_defaults" in SPECS  # read, but not a command-line parameter
    for name in (
        "batch_size",
        "learning_rate",
        "num_steps",
        "latent_size",
        "plot_step",
        "validation_step",
        "dataset",
        "data_dir",
        "image_size",
        "beta",
        "run_name",
        "seed",
    ):
        default, comment = SPECS[name]
        assert comment, f"{name} has no comment in params.py"
    assert SPECS["conv_layers"][0] == [[32, 4, 2]] * 4


def test_defaults_follow_the_original():
    p = resolved()
    assert p["dataset"] == "celeba" and p["latent_size"] == 32
    assert p["batch_size"] == 64 and p["learning_rate"] == 5e-4
    assert p["adam_beta_1"] == 0.5 and p["reconstruction_loss"] == "squared_error"
    assert p["dense_layers"] == [[256], [256]]


def test_overrides_are_typed():
    p = resolved(
        "--beta=4",
        "--learning_rate=1e-4",
        "--conv_layers=[[16,4,2],[32,4,2]]",
        "--dataset=dsprites",
        "--run_name",
        "my-run",
    )
    assert p["beta"] == 4.0 and isinstance(p["beta"], float)
    assert p["learning_rate"] == 1e-4
    assert p["conv_layers"] == [[16, 4, 2], [32, 4, 2]]
    assert p["dataset"] == "dsprites" and p["run_name"] == "my-run"
    assert isinstance(resolved("--num_steps=1000")["num_steps"], int)


def test_per_dataset_defaults_apply_only_where_unset():
    p = resolved("--dataset=dsprites")
    assert p["latent_size"] == 10 and p["reconstruction_loss"] == "bernoulli"
    p = resolved("--dataset=dsprites", "--latent_size=6")
    assert p["latent_size"] == 6  # an explicit value beats the dataset's default
    assert isinstance(resolved("--latent_size=6")["latent_size"], int)


def test_help_lists_every_name_with_default_and_comment(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.parse_command_line(SPECS, ["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for name, (_, comment) in SPECS.items():
        if name != "dataset_defaults":
            assert f"--{name} " in text and comment in text
    assert "celeba: 32, dsprites: 10" in text  # per-dataset defaults shown


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--betta=4"], "unknown parameter --betta"),
        (["--num_steps=ten"], "expected a number"),
        (["--num_steps=2.5"], "expected a whole number"),
        (["--conv_layers=5"], "expected a list"),
        (["beta=4"], "--name=value"),
        (["--beta"], "needs a value"),
    ],
)
def test_parse_errors(argv, message):
    with pytest.raises(cli.UsageError, match=message):
        cli.parse_command_line(SPECS, argv)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--beta=-1"], "beta=-1.0 must be a number ≥ 0"),
        (["--latent_size=0"], "latent_size=0"),
        (["--image_size=40"], "not divisible by 16"),
        (["--dataset=mnist"], "dataset='mnist' is not one of celeba, dsprites"),
        (["--reconstruction_loss=l2"], "reconstruction_loss='l2' is not one of"),
        (["--dataset=dsprites", "--image_size=32"], "dSprites images are 64×64"),
        (["--learning_rate=0"], "learning_rate=0.0 must be > 0"),
        (["--run_name=../elsewhere"], "no slashes"),
        (["--conv_layers=[[32,4]]"], "[filters, kernel, stride]"),
        (["--steps_per_call=0"], "steps_per_call=0 must be a whole number ≥ 1"),
        (["--jit_compile=True"], "jit_compile='True' is not one of auto, on, off"),
        (["--precision=float16"], "precision='float16' is not one of float32, mixed"),
    ],
)
def test_invalid_values_are_named(argv, message):
    assert message in "\n".join(config.validate(resolved(*argv)))


def test_main_rejects_bad_parameters_before_any_work(capsys, tmp_path, monkeypatch):
    out = f"--predictions_dir={tmp_path / 'predictions'}"
    assert main.main(["--beta=-1", "--latent_size=0", out]) == 2
    err = capsys.readouterr().err
    assert "beta=-1.0" in err and "latent_size=0" in err
    assert not (tmp_path / "predictions").exists()
    assert main.main(["--nope=1"]) == 2


def test_compare_takes_several_run_names():
    assert config.validate(resolved("--mode=compare", "--run_name=a,b")) == []
    assert config.validate(resolved("--run_name=a,b"))  # one run to train


def test_valid_defaults_pass_validation():
    assert config.validate(resolved()) == []
    assert config.validate(resolved("--dataset=dsprites", "--objective=capacity")) == []
