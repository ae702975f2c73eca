"""Checks on the resolved parameters, before any work starts."""

import re

from models import (
    BETA_SCHEDULES,
    OBJECTIVES,
    PRECISIONS,
    RECONSTRUCTION_LOSSES,
    check_image_size,
)
from utils.distribute import STRATEGIES

DATASETS = ("celeba", "dsprites")
MODES = ("train", "evaluate", "analyze", "compare")
ACTIVATIONS = ("leaky_relu", "relu")
CHOICES = {
    "dataset": DATASETS,
    "mode": MODES,
    "activation": ACTIVATIONS,
    "reconstruction_loss": RECONSTRUCTION_LOSSES,
    "objective": OBJECTIVES,
    "beta_schedule": BETA_SCHEDULES,
    "strategy": STRATEGIES,
    "jit_compile": ("auto", "on", "off"),
    "precision": PRECISIONS,
}
# name: smallest allowed value
AT_LEAST = {
    "seed": 0,
    "latent_size": 1,
    "batch_size": 1,
    "num_steps": 1,
    "beta": 0.0,
    "beta_start": 0.0,
    "beta_steps": 1,
    "gamma": 0.0,
    "capacity_max": 0.0,
    "capacity_steps": 1,
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
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


def validate(p):
    """All problems with the parameters `p`, each a message naming the parameter,
    the bad value and what is allowed. Empty when `p` is usable."""
    errors = []
    for name, allowed in CHOICES.items():
        if p.get(name) not in allowed:
            errors.append(f"{name}={p.get(name)!r} is not one of {', '.join(allowed)}")
    for name in ("metrics_at_end",):
        if not isinstance(p.get(name), bool):
            errors.append(f"{name}={p.get(name)!r} must be True or False")
    for name, low in AT_LEAST.items():
        value = p.get(name)
        kind = int if isinstance(low, int) else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or value < low:
            what = "a whole number" if kind is int else "a number"
            errors.append(f"{name}={value!r} must be {what} ≥ {low}")
    if not (isinstance(p.get("learning_rate"), int | float) and p["learning_rate"] > 0):
        errors.append(f"learning_rate={p.get('learning_rate')!r} must be > 0")
    beta_1 = p.get("adam_beta_1")
    if not (isinstance(beta_1, int | float) and 0 <= beta_1 < 1):
        errors.append(f"adam_beta_1={beta_1!r} must be in [0, 1)")
    run_name = p.get("run_name")
    if p.get("strategy") == "multi_worker" and run_name is None:
        errors.append(
            "strategy=multi_worker needs an explicit --run_name, so that "
            "every worker writes to and resumes from the same run"
        )
    # --mode=compare takes several runs: a,b,c
    several = p.get("mode") == "compare" and isinstance(run_name, str)
    names = run_name.split(",") if several else [run_name]
    if run_name is not None and not (
        isinstance(run_name, str) and all(RUN_NAME.match(n) for n in names)
    ):
        errors.append(
            f"run_name={run_name!r} must be a folder name of letters, "
            "digits and . _ = + - (no slashes)"
        )
    for name in ("data_dir", "predictions_dir"):
        if not isinstance(p.get(name), str) or not p.get(name):
            errors.append(f"{name}={p.get(name)!r} must be a path")
    errors += _layer_errors(p)
    return errors


def _layer_errors(p):
    conv, dense = p.get("conv_layers"), p.get("dense_layers")
    errors = []
    if not (
        isinstance(conv, list)
        and conv
        and all(
            isinstance(c, list | tuple)
            and len(c) == 3
            and all(isinstance(v, int) and v > 0 for v in c)
            for c in conv
        )
    ):
        return [
            f"conv_layers={conv!r} must be a non-empty list of "
            "[filters, kernel, stride] with positive whole numbers"
        ]
    if not (
        isinstance(dense, list)
        and all(
            isinstance(d, list | tuple)
            and len(d) == 1
            and isinstance(d[0], int)
            and d[0] > 0
            for d in dense
        )
    ):
        errors.append(
            f"dense_layers={dense!r} must be a list of [units] "
            "with positive whole numbers"
        )
    size = p.get("image_size")
    if isinstance(size, int) and size >= 8:
        problem = check_image_size(size, conv)
        if problem:
            errors.append(problem)
        if p.get("dataset") == "dsprites" and size != 64:
            errors.append(
                f"image_size={size}: dSprites images are 64×64; use --image_size=64"
            )
    return errors
