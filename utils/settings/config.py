"""Whether the run can start: checks on the resolved parameters, and the environment
TensorFlow reads when it starts (TF_CONFIG, its log level). Nothing here imports
TensorFlow, so that a refusal comes in a fraction of a second, before it loads.
"""

import contextlib
import difflib
import json
import math
import os
import re
import sys
import tempfile

from utils.data import DATASETS
from utils.data import info as dataset_info
from utils.data.factor_structure import parameter_problems as factor_structure_problems
from utils.objectives import BETA_SCHEDULES, OBJECTIVES, RECONSTRUCTION_LOSSES
from utils.settings.presets import PRESETS

STRATEGIES = ("auto", "mirrored", "multi_worker")  # utils/devices/distribute.py
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

MODES = ("train", "evaluate", "analyze", "compare", "export")
ACTIVATIONS = ("leaky_relu", "relu")
CHOICES = {
    "dataset": tuple(DATASETS),  # utils/data/__init__.py
    "mode": MODES,
    "activation": ACTIVATIONS,
    "reconstruction_loss": RECONSTRUCTION_LOSSES,
    "objective": OBJECTIVES,
    "beta_schedule": BETA_SCHEDULES,
    "strategy": STRATEGIES,
    "jit_compile": ("auto", "on", "off"),
    "precision": PRECISIONS,
    "metrics_protocol": ("reference", "fast"),
    "metrics_representation": ("mean", "sampled"),
    "checkpoint": ("latest", "best"),
}
# name: smallest allowed value
AT_LEAST = {
    "seed": 0,
    "jobs": 1,
    "metrics_step": 0,
    "latent_size": 1,
    "batch_size": 1,
    "num_steps": 1,
    "beta": 0.0,  # also for tc, where β < 1 rewards total correlation: unusual
    "beta_start": 0.0,
    "beta_steps": 1,
    "gamma": 0.0,
    "capacity_max": 0.0,
    "capacity_steps": 1,
    "factor_gamma": 0.0,
    "lambda_od": 0.0,
    "lambda_d": 0.0,
    "validation_step": 1,
    "validation_batches": 1,
    "early_stopping_patience": 0,
    "checkpoint_step": 1,
    "plot_step": 1,
    "log_step": 1,
    "steps_per_call": 1,
    "crop_size": 8,
    "image_size": 8,
}
# name: largest allowed value
AT_MOST = {"seed": 2**32 - 1}  # the most NumPy's RandomState (the metrics') takes
MAY_BE_NONE = ("lambda_d",)  # None: the objective's own default
NAME_MAX = 255  # bytes in a file name, on Linux, macOS and Windows filesystems
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")
# Files the repo writes beside the run folders, at the top of predictions/
# (utils/outputs/compare.py, benchmark/): never a run's name, in any case.
RESERVED_RUN_NAMES = ("comparison.html", "comparison.md", "benchmark.json")


def validate(p):
    """All problems with the parameters `p`, each a message naming the parameter,
    the bad value and what is allowed. Empty when `p` is usable."""
    errors = _value_errors(p)
    rate = p.get("learning_rate")
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        errors.append(f"learning_rate={rate!r} must be a finite number > 0")
    for name in ("adam_beta_1", "adam_beta_2"):
        decay = p.get(name)
        if not (isinstance(decay, int | float) and 0 <= decay < 1):
            errors.append(f"{name}={decay!r} must be in [0, 1)")
    epsilon = p.get("adam_epsilon")
    if not (
        isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0
    ):
        errors.append(f"adam_epsilon={epsilon!r} must be a finite number > 0")
    timeout = p.get("cluster_timeout", 600)
    if not (
        isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0
    ) or isinstance(timeout, bool):
        errors.append(f"cluster_timeout={timeout!r} must be a number of seconds > 0")
    for name in ("data_dir", "predictions_dir"):
        if not isinstance(p.get(name), str) or not p.get(name):
            errors.append(f"{name}={p.get(name)!r} must be a path")
    dataset = p.get("dataset")
    if p.get("metrics_step") and dataset in DATASETS:
        if not dataset_info(dataset).has_factors:
            errors.append(
                f"metrics_step={p['metrics_step']}: the metrics need ground-truth "
                f"factors, which {dataset} does not have; use --metrics_step=0"
            )
    errors += _objective_errors(p) + _run_name_errors(p) + _layer_errors(p)
    return errors + _factor_structure_errors(p)


def _factor_structure_errors(p):
    # Shapes and types here; names and classes once the dataset is loaded (main.py).
    dataset = p.get("dataset")
    has_factors = dataset not in DATASETS or dataset_info(dataset).has_factors
    return factor_structure_problems(
        p.get("factor_correlation"), p.get("holdout"), dataset, has_factors
    )


def _choice_errors(p):
    errors = []
    # None means "the dataset's default": of an unknown dataset there is none, and
    # the one error that matters is the dataset's.
    unknown_dataset = p.get("dataset") not in DATASETS
    for name, allowed in CHOICES.items():
        if p.get(name) is None and unknown_dataset:
            continue
        if p.get(name) not in allowed:
            close = _closest(p.get(name), allowed)
            hint = f". Did you mean --{name}={close}?" if close else ""
            errors.append(
                f"{name}={p.get(name)!r} is not one of {', '.join(allowed)}{hint}"
            )
    preset = p.get("preset")
    if preset is not None and preset not in PRESETS:
        close = _closest(preset, tuple(PRESETS))
        hint = f". Did you mean --preset={close}?" if close else ""
        errors.append(
            f"preset={preset!r} is not one of {', '.join(PRESETS)}, or None{hint}"
        )
    for name, high in AT_MOST.items():
        value = p.get(name)
        if isinstance(value, int | float) and value > high:
            errors.append(f"{name}={value!r} must be a whole number ≤ {high}")
    return errors


def _value_errors(p):
    errors = _choice_errors(p)
    unknown_dataset = p.get("dataset") not in DATASETS
    for name in ("metrics_at_end", "print_commands"):
        if not isinstance(p.get(name), bool):
            errors.append(f"{name}={p.get(name)!r} must be True or False")
    for name, low in AT_LEAST.items():
        value = p.get(name)
        if value is None and (name in MAY_BE_NONE or unknown_dataset):
            continue
        kind = int if isinstance(low, int) else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            bad = True
        else:  # 1e999 and nan: a run that diverges at step 1, and "Infinity" saved
            bad = not math.isfinite(value) or value < low
        if bad:
            what = "a whole number" if kind is int else "a finite number"
            what = f"None or {what}" if name in MAY_BE_NONE else what
            errors.append(f"{name}={value!r} must be {what} ≥ {low:g}")
    return errors


def _closest(value, allowed):
    """The choice a mistyped value most likely meant (DSprites → dsprites, tcvae →
    tc, evalute → evaluate), or None."""
    if not isinstance(value, str):
        return None
    lower = {choice.casefold(): choice for choice in allowed}
    if value.casefold() in lower:
        return lower[value.casefold()]
    close = difflib.get_close_matches(value.casefold(), lower, n=1)
    if close:
        return lower[close[0]]
    prefixes = [c for c in allowed if value.casefold().startswith(c.casefold())]
    return max(prefixes, key=len) if prefixes else None


def _objective_errors(p):
    # A schedule the objective does not read would be silently ignored.
    objective, schedule = p.get("objective"), p.get("beta_schedule")
    if objective not in OBJECTIVES or schedule in (None, "constant"):
        return []
    if "beta_schedule" in OBJECTIVES[objective].parameters:
        return []
    readers = [o.name for o in OBJECTIVES.values() if "beta_schedule" in o.parameters]
    return [
        f"beta_schedule={schedule!r} is ignored by objective={objective}: it applies "
        f"only to objective={' or '.join(readers)}; use --beta_schedule=constant"
    ]


def _run_name_errors(p):
    run_name = p.get("run_name")
    if run_name is None:
        if p.get("strategy") != "multi_worker":
            return []
        return [
            "strategy=multi_worker needs an explicit --run_name, so that "
            "every worker writes to and resumes from the same run"
        ]
    # --mode=compare takes several runs: a,b,c
    several = p.get("mode") == "compare" and isinstance(run_name, str)
    names = run_name.split(",") if several else [run_name]
    if not (isinstance(run_name, str) and all(RUN_NAME.match(n) for n in names)):
        return [
            f"run_name={run_name!r} must be a folder name of letters, "
            "digits and . _ = + - (no slashes)"
        ]
    too_long = [n for n in names if len(n.encode()) > NAME_MAX]
    if too_long:
        return [
            f"run_name={n[:40]}… is {len(n.encode())} bytes: a folder name can have "
            f"at most {NAME_MAX}; choose a shorter --run_name"
            for n in too_long
        ]
    reserved = {name.casefold() for name in RESERVED_RUN_NAMES}
    return [
        f"run_name={name!r} is a file the repo writes in predictions/ "
        f"({', '.join(RESERVED_RUN_NAMES)}), not a run: choose another name"
        for name in names
        if name.casefold() in reserved
    ]


def _conv_spec_errors(name, conv):
    if (
        isinstance(conv, list)
        and conv
        and all(
            isinstance(c, list | tuple)
            and len(c) == 3
            and all(isinstance(v, int) and v > 0 for v in c)
            for c in conv
        )
    ):
        return []
    return [
        f"{name}={conv!r} must be a non-empty list of "
        "[filters, kernel, stride] with positive whole numbers"
    ]


def _dense_spec_errors(name, dense):
    if isinstance(dense, list) and all(
        isinstance(d, list | tuple)
        and len(d) == 1
        and isinstance(d[0], int)
        and d[0] > 0
        for d in dense
    ):
        return []
    return [f"{name}={dense!r} must be a list of [units] with positive whole numbers"]


def _layer_errors(p):
    # The decoder's spec: None mirrors the encoder's (models.decoder_spec).
    specs = {"conv_layers": p.get("conv_layers")}
    if p.get("decoder_conv_layers") is not None:
        specs["decoder_conv_layers"] = p["decoder_conv_layers"]
    errors = [e for name, conv in specs.items() for e in _conv_spec_errors(name, conv)]
    for name in ("dense_layers", "decoder_dense_layers"):
        if name == "dense_layers" or p.get(name) is not None:
            errors += _dense_spec_errors(name, p.get(name))
    size = p.get("image_size")
    if errors or not (isinstance(size, int) and size >= 8):
        return errors
    for name, conv in specs.items():
        if problem := check_image_size(size, conv, name):
            errors.append(problem)
    fixed = p.get("dataset") in DATASETS and dataset_info(p["dataset"]).image_size
    if fixed and size != fixed:
        errors.append(
            f"image_size={size}: {p['dataset']} images are {fixed}×{fixed}; "
            f"use --image_size={fixed}"
        )
    return errors


def check_image_size(image_size, conv_layers, name="conv_layers"):
    """The decoder mirrors its convs' strides, so it can only produce sizes that
    the strides divide exactly. Returns an error message or None."""
    total_stride = math.prod(stride for _, _, stride in conv_layers)
    if image_size % total_stride:
        examples = ", ".join(str(total_stride * k) for k in (1, 2, 4))
        return (
            f"image_size {image_size} is not divisible by {total_stride}, the "
            f"product of the conv strides in {name} {conv_layers}; the "
            f"decoder could not mirror it. Use a multiple of {total_stride} "
            f"(e.g. {examples}) or change {name}."
        )
    return None


# --- TF_CONFIG: the cluster of a multi-worker run

TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


# MultiWorkerMirroredStrategy trains on "chief" and "worker" tasks; an "evaluator"
# may be listed (it runs apart); "ps" belongs to ParameterServerStrategy.
TRAINING_JOBS = ("chief", "worker")
CLUSTER_JOBS = (*TRAINING_JOBS, "evaluator")
# host:port, the host a name, an IPv4 address or an IPv6 one in brackets.
ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})")


class StrategyError(Exception):
    """The requested strategy cannot run here: the message says why (exit code 2)."""


def check_strategy(name):
    """Raise StrategyError if `devices.distribute.make_strategy(name)` cannot work:
    cheap enough to call before TensorFlow loads and before a long data load."""
    if name == "multi_worker":
        read_tf_config()


def read_tf_config():
    """TF_CONFIG as a dict, checked: this task must be one of the cluster's."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise StrategyError(
            "strategy=multi_worker needs the TF_CONFIG environment variable "
            "(the cluster's addresses and this machine's task), e.g. "
            f"TF_CONFIG='{TF_CONFIG_EXAMPLE}'; see README, 'Several machines'."
        )
    try:
        config = json.loads(text)
        task = config["task"]
        for job, addresses in config["cluster"].items():
            _check_job(job, addresses)
        if task["type"] not in TRAINING_JOBS:
            raise ValueError(
                f"task type {task['type']!r} is not one of {TRAINING_JOBS}"
            )
        addresses = config["cluster"][task["type"]]
        index = task["index"]
        if not isinstance(index, int) or not 0 <= index < len(addresses):
            raise IndexError(f"task index {index!r} is not one of the {task['type']}s")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise StrategyError(
            f"TF_CONFIG={text!r} is not a cluster with this task in it "
            f"({type(error).__name__}: {error}); expected e.g. {TF_CONFIG_EXAMPLE}"
        ) from None
    return config


def _check_job(job, addresses):
    """ValueError unless `addresses` is the list of host:port of a job TensorFlow's
    cluster resolver and the strategy accept: checked here, as TensorFlow checks
    them only after the data load, with a traceback."""
    if job not in CLUSTER_JOBS:
        raise ValueError(f"job {job!r} is not one of {CLUSTER_JOBS}")
    if not isinstance(addresses, list) or not addresses:
        raise ValueError(f"the {job} job is not a list of addresses")
    for address in addresses:
        found = ADDRESS.fullmatch(address) if isinstance(address, str) else None
        if not found or not 0 < int(found[1]) < 65536:
            raise ValueError(f"{job} address {address!r} is not host:port")


# --- TensorFlow's start-up lines

# absl's log line: severity, date, time, thread, file:line]
ABSL_LINE = re.compile(rb"([IWEF])\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"
SEVERITIES = b"IWEF"  # TF_CPP_MIN_LOG_LEVEL=n hides the first n


@contextlib.contextmanager
def quiet_tensorflow_start_up():
    """Import TensorFlow inside this: its C++ log lines below TF_CPP_MIN_LOG_LEVEL
    are hidden, which is 3 (all but fatal) unless the environment sets it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    level = _log_level(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    # TensorFlow 2.21's shared objects log oneDNN's and CUDA's state as they load,
    # before their own initialiser reads TF_CPP_MIN_LOG_LEVEL, and two of them
    # (libtensorflow_framework and the profiler plugin) carry a copy each: hence
    # twice. No variable reaches those lines; they are filtered by the same rule.
    with _stderr_without(lambda line: _below(line, level)):
        yield


def _log_level(text):
    try:
        return int(text)
    except ValueError:
        return 0  # as TensorFlow reads it


def _below(line, level):
    if line.startswith(ABSL_PREAMBLE):  # said before absl's first line
        return level > 0
    match = ABSL_LINE.match(line)
    return bool(match) and SEVERITIES.index(match[1]) < level


@contextlib.contextmanager
def _stderr_without(hidden):
    # C++ writes to file descriptor 2, not through sys.stderr: the descriptor goes
    # to a file meanwhile, and the lines not hidden are written out after. A file,
    # not a pipe read by a thread: loading a shared object holds the GIL, so a full
    # pipe would block it for good.
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            with open(2, "wb", closefd=False) as stderr:
                stderr.writelines(line for line in captured if not hidden(line))
