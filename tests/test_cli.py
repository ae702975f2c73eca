"""Command-line overrides of params.py: typed values, --help, and clear errors."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import main
import params
from utils.objectives import OBJECTIVES
from utils.outputs import compare
from utils.runs.folder import default_run_name
from utils.settings import cli, config

REPO = Path(__file__).resolve().parents[1]
SPECS = cli.read_params(params)


def resolved(*argv):
    p, _ = cli.parse_command_line(SPECS, list(argv))
    return p


def errors_of(*argv):
    return "\n".join(config.validate(resolved(*argv)))


def load_module(path):
    """A params-like file as a module, the plain way (not through the code tested)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- params.py: imported safely, every name read with all of its comment


def test_every_params_name_is_read_with_its_comment():
    assert "dataset_defaults" in SPECS  # read, but not a command-line parameter
    for name, (_, comment) in SPECS.items():
        if name != "dataset_defaults":  # its section's ruler says what it is
            assert comment, f"{name} has no comment in params.py"
    assert SPECS["conv_layers"][0] == [[32, 4, 2]] * 4


def test_a_long_comment_above_a_name_is_read_on_params_py():
    objective, strategy = SPECS["objective"][1], SPECS["strategy"][1]
    named = [n for n in OBJECTIVES if f"{n}:" in objective or f"{n}," in objective]
    assert named == list(OBJECTIVES)
    assert "Higgins et al. 2017" in objective and "Kumar et al. 2018" in objective
    assert all(name in strategy for name in config.STRATEGIES)
    run_name = SPECS["run_name"][1]  # the lines above, then the trailing comment
    assert run_name.startswith("None: named from the parameters")
    assert run_name.endswith("folder under predictions/")
    for name, (_, comment) in SPECS.items():  # no section ruler, header or '#'
        assert "---" not in comment and "Hyperparameters" not in comment, name
        assert "#" not in comment and "\n" not in comment, name


def test_comments_above_are_joined_before_the_trailing_one(tmp_path):
    path = tmp_path / "params.py"
    path.write_text(
        "# A header, apart from the first name.\n"
        "import math\n"
        "\n"
        "# --- a section\n"
        "# the first line of a long comment,\n"
        "# and its second\n"
        "alpha = 1  # the trailing comment\n"
        "beta = 2  # only trailing\n"
        "# only above\n"
        "gamma = [\n"
        "    3,\n"
        "]\n"
        "_private = math.pi  # not a parameter\n"
    )
    specs = cli.read_params(load_module(path))
    assert specs == {
        "alpha": (
            1,
            "the first line of a long comment, and its second — the trailing comment",
        ),
        "beta": (2, "only trailing"),
        "gamma": ([3], "only above"),
    }


def test_a_params_file_that_does_not_run_names_its_line(tmp_path):
    path = tmp_path / "params.py"
    path.write_text("beta = 1.0\nseed = 0\nlatent_size = = 4  # typo\n")
    with pytest.raises(cli.UsageError, match=r"^params\.py line 3: invalid syntax"):
        cli.import_params(path)
    path.write_text("beta = 1.0\nseed = bta\n")
    message = r"^params\.py line 2: NameError: name 'bta' is not defined$"
    with pytest.raises(cli.UsageError, match=message):
        cli.import_params(path)
    path.write_text("beta = 4.0  # fixed\n")
    assert cli.import_params(path).beta == 4.0


# --- the command line


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
    words = " ".join(text.split())  # long comments are wrapped
    for name, (_, comment) in SPECS.items():
        if name != "dataset_defaults":
            assert f"--{name} " in text and " ".join(comment.split()) in words
    assert "(default 32 for celeba, folder; 10 for dsprites," in text  # per dataset
    assert "(default 64 for every dataset)" in text
    assert max(map(len, text.splitlines())) <= 80  # a terminal's width


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--betta=4"], "unknown parameter --betta. Did you mean --beta?"),
        (["--num_step=4"], "Did you mean --num_steps"),
        (["--latent=4"], "Did you mean --latent_size?"),
        (["--num_steps=ten"], "expected a number"),
        (["--num_steps=2.5"], "expected a whole number"),
        (["--conv_layers=5"], "expected a list"),
        (["beta=4"], "--name=value"),
        (["--beta"], "needs a value"),
    ],
)
def test_parse_errors(argv, message):
    with pytest.raises(cli.UsageError, match=message.replace("?", r"\?")):
        cli.parse_command_line(SPECS, argv)


def test_a_name_like_no_other_gets_no_suggestion():
    with pytest.raises(cli.UsageError) as error:
        cli.parse_command_line(SPECS, ["--xyzzy=1"])
    assert "Did you mean" not in str(error.value)


def test_a_sweep_is_every_combination_first_name_slowest():
    runs = cli.sweep({"beta": (1.0, 4.0), "seed": 0, "latent_size": (6, 10)})
    assert [(r["beta"], r["latent_size"], r["seed"]) for r in runs] == [
        (1.0, 6, 0), (1.0, 10, 0), (4.0, 6, 0), (4.0, 10, 0),
    ]  # fmt: skip
    assert cli.sweep({"beta": 4.0}) == [{"beta": 4.0}]


# --- the checks on the resolved values


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--beta=-1"], "beta=-1.0 must be a finite number ≥ 0"),
        (["--latent_size=0"], "latent_size=0"),
        (["--image_size=40"], "not divisible by 16"),
        (["--dataset=mnist"], "dataset='mnist' is not one of celeba, folder, dsprites"),
        (["--reconstruction_loss=l2"], "reconstruction_loss='l2' is not one of"),
        (["--dataset=dsprites", "--image_size=32"], "dsprites images are 64×64"),
        (["--learning_rate=0"], "learning_rate=0.0 must be a finite number > 0"),
        (["--run_name=../elsewhere"], "no slashes"),
        (["--conv_layers=[[32,4]]"], "[filters, kernel, stride]"),
        (["--steps_per_call=0"], "steps_per_call=0 must be a whole number ≥ 1"),
        (["--jit_compile=True"], "jit_compile='True' is not one of auto, on, off"),
        (["--precision=float16"], "precision='float16' is not one of float32, mixed"),
        (["--strategy=multi_worker"], "multi_worker needs an explicit --run_name"),
        (
            ["--objective=vae"],
            "objective='vae' is not one of beta, capacity, tc, factor, dip1, dip2",
        ),
        (["--factor_gamma=-1"], "factor_gamma=-1.0 must be a finite number ≥ 0"),
        (["--lambda_od=-0.5"], "lambda_od=-0.5 must be a finite number ≥ 0"),
        (["--lambda_d=-1"], "lambda_d=-1 must be None or a finite number ≥ 0"),
        (["--lambda_d='x'"], "lambda_d='x' must be None or a finite number ≥ 0"),
        (["--metrics_protocol=slow"], "metrics_protocol='slow' is not one of"),
        (["--checkpoint=first"], "checkpoint='first' is not one of latest, best"),
        (
            ["--objective=capacity", "--beta_schedule=warmup"],
            "beta_schedule='warmup' is ignored by objective=capacity: it applies "
            "only to objective=beta",
        ),
        (["--objective=tc", "--beta_schedule=decrease"], "ignored by objective=tc"),
    ],
)
def test_invalid_values_are_named(argv, message):
    assert message in errors_of(*argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--dataset=dsprites", "--objective=capacity"],
        ["--mode=export", "--run_name=a"],
        ["--objective=tc", "--beta=0.5"],  # β < 1 rewards TC: unusual, allowed
        ["--objective=dip1", "--lambda_d=2"],
        ["--objective=dip2", "--lambda_d=None"],
        ["--beta_schedule=warmup", "--beta=10"],
        ["--metrics_protocol=fast", "--checkpoint=best"],
        *[[f"--objective={name}"] for name in OBJECTIVES],
    ],
)
def test_valid_values_pass(argv):
    assert errors_of(*argv) == ""


@pytest.mark.parametrize(
    "run_name", ["comparison.md", "comparison.html", "benchmark.json", "Comparison.MD"]
)
def test_names_the_repo_writes_into_predictions_are_not_run_names(run_name):
    assert f"run_name={run_name!r} is a file" in errors_of(f"--run_name={run_name}")
    several = errors_of("--mode=compare", f"--run_name=a,{run_name}")
    assert "is a file" in several


def test_the_compare_pages_are_reserved_names():
    names = {name.casefold() for name in config.RESERVED_RUN_NAMES}
    assert {name.casefold() for name in compare.PAGE_NAMES} <= names


def test_compare_takes_several_run_names():
    assert config.validate(resolved("--mode=compare", "--run_name=a,b")) == []
    assert config.validate(resolved("--run_name=a,b"))  # one run to train


def test_main_rejects_bad_parameters_before_any_work(capsys, tmp_path, monkeypatch):
    out = f"--predictions_dir={tmp_path / 'predictions'}"
    assert main.main(["--beta=-1", "--latent_size=0", out]) == 2
    err = capsys.readouterr().err
    assert "beta=-1.0" in err and "latent_size=0" in err
    assert not (tmp_path / "predictions").exists()
    assert main.main(["--nope=1"]) == 2


# --- the environment, checked and set before TensorFlow starts

GOOD_TF_CONFIG = {
    "cluster": {"worker": ["a:1", "b:1"]},
    "task": {"type": "worker", "index": 1},
}


def test_multi_worker_needs_a_tf_config_naming_this_task(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(config.StrategyError, match="needs the TF_CONFIG environment"):
        config.check_strategy("multi_worker")
    config.check_strategy("auto")  # one machine needs no TF_CONFIG
    monkeypatch.setenv("TF_CONFIG", json.dumps(GOOD_TF_CONFIG))
    assert config.read_tf_config() == GOOD_TF_CONFIG
    config.check_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}}')
    with pytest.raises(config.StrategyError, match="TF_CONFIG=.*expected e.g."):
        config.check_strategy("multi_worker")


# What main.py runs before TensorFlow: --help, the checks, --mode=compare's page.
BEFORE_TENSORFLOW = """
import json, sys
from pathlib import Path

HEAVY = ("tensorflow", "keras", "matplotlib", "sklearn")
loaded = {}

def heavy():
    return sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)

from utils.settings import cli

from utils.settings import config
specs = cli.read_params(cli.import_params(Path("params.py")))
cli.help_text(specs)
p, _ = cli.parse_command_line(specs, ["--dataset=dsprites"])
assert config.validate(p) == [], config.validate(p)
config.check_strategy("auto")
loaded["utils.settings.cli, utils.settings.config"] = heavy()
for module in ("utils.runs.folder", "utils.outputs.compare"):
    __import__(module)
    loaded[module] = heavy()
print(json.dumps(loaded))
"""


def test_nothing_main_needs_before_tensorflow_imports_a_heavy_library():
    result = subprocess.run(
        [sys.executable, "-c", BEFORE_TENSORFLOW], cwd=REPO,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "utils.settings.cli, utils.settings.config": [], "utils.runs.folder": [],
        "utils.outputs.compare": [],
    }  # fmt: skip


ABSL_PREAMBLE = (
    "WARNING: All log messages before absl::InitializeLog() is called are "
    "written to STDERR\n"
)
ONEDNN = (
    "I0000 00:00:1796018405.861795   15531 port.cc:153] oneDNN custom operations "
    "are on. You may see slightly different numerical results.\n"
)
CUINIT = (
    "E0000 00:00:1796018147.833710   12177 cuda_platform.cc:52] failed call to "
    "cuInit: INTERNAL: CUDA error\n"
)
PLAIN = "a line that is not TensorFlow's log\n"


@pytest.mark.parametrize(
    "level, kept",
    [
        (None, PLAIN),  # not set: 3, as main.py always had
        ("2", CUINIT + PLAIN),  # errors still shown
        ("0", ABSL_PREAMBLE + ONEDNN + CUINIT + PLAIN),  # the user asked for all
    ],
)
def test_start_up_lines_below_the_log_level_are_dropped(
    monkeypatch, capfd, level, kept
):
    # TensorFlow's own shared objects log these before they read
    # TF_CPP_MIN_LOG_LEVEL: the same rule is applied to them here.
    if level is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    with config.quiet_tensorflow_start_up():
        os.write(2, (ABSL_PREAMBLE + ONEDNN + CUINIT + PLAIN).encode())
    assert capfd.readouterr().err == kept
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == (level or "3")


def test_tensorflow_starts_without_its_start_up_lines():
    script = (
        "from utils.settings import config\n"
        "with config.quiet_tensorflow_start_up():\n"
        "    import tensorflow as tf\n"
        "tf.constant(1) + 1\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for chatter in ("absl::InitializeLog", "port.cc", "cudart_stub", "cuda"):
        assert chatter not in result.stderr


def test_the_image_size_hint_gives_sizes_the_layers_can_produce():
    # 7 stride-2 convs: a multiple of 128, so "e.g. 32, 64, 128" would mislead.
    message = config.check_image_size(100, [[8, 4, 2]] * 7)
    assert "multiple of 128 (e.g. 128, 256, 512)" in message
    assert config.check_image_size(256, [[8, 4, 2]] * 7) is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset=mnist"], "dataset='mnist' is not one of celeba, folder, dsprites"),
        (["--dataset=DSprites"], "Did you mean --dataset=dsprites?"),
        (["--objective=tcvae"], "Did you mean --objective=tc?"),
        (["--mode=evalute"], "Did you mean --mode=evaluate?"),
    ],
)
def test_a_bad_value_is_one_error_naming_its_closest_choice(argv, message):
    errors = config.validate(resolved(*argv))
    assert len(errors) == 1, errors  # no follow-on errors from the dataset's defaults
    assert message in errors[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--beta=1e999"],
        ["--beta=nan"],
        ["--gamma=inf"],
        ["--lambda_od=1e999"],
        ["--capacity_max=1e999"],
        ["--learning_rate=1e999"],
        ["--learning_rate=nan"],
        ["--factor_gamma=nan"],
    ],
)
def test_infinite_or_nan_hyperparameters_are_refused(argv):
    name = argv[0][2:].split("=")[0]
    try:
        errors = errors_of(*argv)
    except cli.UsageError as error:  # nan and inf are no literals: refused as read
        assert f"--{argv[0][2:]}: expected a number" in str(error)
    else:
        assert f"{name}=inf must be a finite number" in errors


def test_an_empty_sweep_is_refused_by_name():
    with pytest.raises(cli.UsageError, match=r"--beta=\(\) sweeps no value"):
        cli.sweep({"beta": (), "seed": 1})


def test_a_seed_numpy_cannot_take_is_refused():
    assert "seed=4294967296 must be a whole number ≤ 4294967295" in errors_of(
        "--seed=4294967296"
    )
    assert errors_of("--seed=4294967295") == ""


# --- presets: the command line beats a preset, a preset beats params.py


def test_a_preset_beats_params_py_and_the_command_line_beats_it(tmp_path):
    p = resolved("--preset=locatello", "--dataset=dsprites")
    assert p["learning_rate"] == 1e-4 and p["adam_beta_1"] == 0.9  # not params.py's
    assert p["adam_epsilon"] == 1e-8 and p["activation"] == "relu"
    assert p["decoder_conv_layers"] == [[32, 4, 2], [32, 4, 2], [64, 4, 2], [64, 4, 2]]
    assert p["num_steps"] == 300_000 and p["latent_size"] == 10
    p = resolved("--preset=locatello", "--learning_rate=5e-4", "--num_steps=10")
    assert p["learning_rate"] == 5e-4 and p["num_steps"] == 10
    assert p["adam_beta_1"] == 0.9  # what the command line leaves is the preset's
    # A preset named in params.py works as on the command line.
    (tmp_path / "params.py").write_text(
        (REPO / "params.py")
        .read_text()
        .replace("preset = None", 'preset = "locatello"')
    )
    specs = cli.read_params(load_module(tmp_path / "params.py"))
    p, _ = cli.parse_command_line(specs, ["--adam_beta_1=0.5"])
    assert p["learning_rate"] == 1e-4 and p["adam_beta_1"] == 0.5
    assert resolved()["learning_rate"] == 5e-4  # no preset: params.py's


def test_help_shows_what_each_preset_sets(capsys):
    with pytest.raises(SystemExit):
        cli.parse_command_line(SPECS, ["--help"])
    text = capsys.readouterr().out
    presets = text[text.index("Presets (--preset=NAME") :]
    assert "locatello: disentanglement_lib's unsupervised_study_v1" in presets
    assert "learning_rate=0.0001" in presets and "adam_epsilon=1e-08" in presets
    assert "tc: beta ∈ {1, 2, 4, 6, 8, 10}" in " ".join(presets.split())
    assert all(len(line) <= 80 for line in text.splitlines())


def test_a_preset_grid_sweeps_the_objectives_values_unless_given():
    _, overrides = cli.parse_command_line(
        SPECS, ["--preset=locatello_grid", "--objective=tc", "--seed=0,1"]
    )
    runs = cli.sweep(overrides)
    assert [(r["beta"], r["seed"]) for r in runs][:3] == [(1.0, 0), (1.0, 1), (2.0, 0)]
    assert sorted({r["beta"] for r in runs}) == [1.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert len(runs) == 12
    _, overrides = cli.parse_command_line(
        SPECS, ["--preset=locatello_grid", "--objective=dip2"]
    )
    assert [r["lambda_od"] for r in cli.sweep(overrides)] == [1, 2, 5, 10, 20, 50]
    _, overrides = cli.parse_command_line(
        SPECS, ["--preset=locatello_grid", "--objective=tc", "--beta=4"]
    )
    assert cli.sweep(overrides) == [overrides] and overrides["beta"] == 4.0
    # Words are not swept: a comma in a preset or objective is a name none has.
    assert "preset='locatello,locatello_grid' is not one of" in errors_of(
        "--preset=locatello,locatello_grid"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset=locatelo"], "Did you mean --preset=locatello?"),
        (["--adam_beta_2=1"], "adam_beta_2=1.0 must be in [0, 1)"),
        (["--adam_epsilon=0"], "adam_epsilon=0.0 must be a finite number > 0"),
        (["--decoder_conv_layers=[[32,4]]"], "decoder_conv_layers=[[32, 4]] must be"),
        (["--decoder_dense_layers=[256]"], "decoder_dense_layers=[256] must be"),
        (["--decoder_conv_layers=[[8,4,3]]"], "strides in decoder_conv_layers"),
        (["--metrics_step=100"], "metrics_step=100: the metrics need ground-truth"),
        (["--dataset=dsprites", "--metrics_step=-1"], "metrics_step=-1"),
        (["--jobs=0"], "jobs=0"),
        ([f"--run_name={'r' * 256}"], "is 256 bytes: a folder name can have at most"),
    ],
)
def test_bad_decoder_optimizer_preset_or_sweep_values_are_named(argv, message):
    errors = config.validate(resolved(*argv))
    assert len(errors) == 1 and message in errors[0], errors


def test_a_presets_run_is_named_after_it():
    p = resolved(
        "--preset=locatello", "--dataset=dsprites", "--objective=tc", "--beta=6"
    )
    assert default_run_name(p) == "dsprites_locatello_tc_beta6_seed0"


def test_the_rerun_command_names_the_run_and_replaces_what_changes():
    from utils.runs.folder import rerun_command

    argv = [".venv/bin/python", "main.py", "--beta=4", "--run_name", "old",
            "--learning-rate=1e3", "--conv_layers=[[8,4,2]]"]  # fmt: skip
    assert rerun_command("new", argv, learning_rate="1e-4") == (
        ".venv/bin/python main.py --beta=4 '--conv_layers=[[8,4,2]]' "
        "--run_name=new --learning_rate=1e-4"
    )
    assert rerun_command("r", ["python", "main.py"]) == "python main.py --run_name=r"
