"""The benchmark's ratios, built from figures timed side by side, and its table."""

from utils.metrics import REGISTRY


def shares(result):
    """The targets' ratios, each from figures measured side by side in one
    process or one run, so that the machine's speed changing between the bare
    step and the loop (other load) does not enter them."""
    window_s = result["window_s"]
    validation_s = result["window_validations"] * result["validation_s"]
    logs_s = result["window_logs"] * result["log_ms"] / 1000
    parts_s = logs_s + plots_s(result) + saves_s(result)
    steps_s = result["window_images"] / result["bare_images_per_s"]
    # end-to-end / bare = (fed / bare, interleaved in one process) × (the loop's
    # steps at their own typical pace / its time); the interval is the first
    # factor's (the second is one run's sum).
    in_pace = 1 - result["in_run_extra_s"] / window_s
    return {
        # The target's figure: the parts as many as the window holds, against
        # the window's steps at the bare pace, its validations and the parts.
        "overhead_parts": parts_s / (steps_s + validation_s + parts_s),
        "loop_ratio_raw": result["loop_images_per_s"] / result["bare_images_per_s"],
        "ratio": result["fed_ratio"] * in_pace,
        "ratio_interval": [
            result["fed_ratio_low"] * in_pace,
            result["fed_ratio_high"] * in_pace,
        ],
        # A cross-check that nothing else costs: the loop's time beyond its steps'
        # typical pace, less its validations, plus the logs (inside every step).
        # It also counts the machine's bursts of other load.
        "overhead": (result["in_run_extra_s"] - validation_s + logs_s) / window_s,
        "validation_share": validation_s / window_s,
    }


def plots_s(result):
    """The window's plot steps: the step images, and their TensorBoard summaries
    (both in the drawing thread, whose time two busy cores take from the steps)."""
    each = result["step_images_s"] + result["tensorboard_images_ms"] / 1000
    return each * result["window_plots"]


def saves_s(result):
    """The window's checkpoints, and a best one at every validation (as while the
    loss falls)."""
    saves = result["window_checkpoints"] + result["window_validations"]
    return saves * result["checkpoint_save_s"]


def metric_rows(protocol, dci):
    prefix = f"metrics_{protocol}"
    titles = {name: m.title for name, m in REGISTRY.items()} | {"dci": f"DCI, {dci}"}
    return [
        (f"{prefix}_s", f"metrics at the end, {protocol} protocol (s)"),
        *[(f"{prefix}_{name}_s", f"  {titles[name]} (s)") for name in REGISTRY],
        (f"{prefix}_encoding_s", "  encoding the images, within these (s)"),
    ]


ROWS = [  # (JSON key, label); rates in images/s
    ("images", "images in the dataset"),
    ("bare_images_per_s", "bare train step (in-memory batch)"),
    ("bare_xla_images_per_s", "bare train step, XLA (jit_compile=on)"),
    ("fed_images_per_s", "same step fed by the input pipeline"),
    ("pipeline_images_per_s", "input pipeline alone (no model)"),
    ("loop_images_per_s", "end-to-end: python main.py"),
    ("loop_cold_images_per_s", "end-to-end, first pass (cache cold)"),
    ("loop_ratio_raw", "end-to-end / bare, timed minutes apart"),
    ("ratio", "end-to-end / bare, side by side (≥ 95 %)"),
    ("ratio_interval", "  its 90 % interval"),
    ("overhead_parts", "logs + checkpoints + images (≤ 3 %)"),
    ("overhead", "  the same, from the loop's own times"),
    ("validation_share", "validation, at its default frequency"),
    ("log_ms", "  logs, per step (ms)"),
    ("checkpoint_save_s", "  one checkpoint save (s)"),
    ("step_images_s", "  one set of step images, in full (s)"),
    ("tensorboard_images_ms", "  their TensorBoard summaries (ms)"),
    ("validation_checkpoint_s", "  one validation + checkpoints, loop (s)"),
    ("validation_s", "  one validation alone (s)"),
    ("images_s", "  one set of step images, loop's share (s)"),
    ("median_step_ms", "median step in the loop (ms)"),
    ("export_s", "one export of the model, run's end (s)"),
    *metric_rows("fast", "extra-trees"),
    *metric_rows("reference", "gradient boosting"),
    ("preprocessing_images_per_s", "CelebA preprocessing into the cache"),
    ("first_step_s", "start → first step, caches built (s)"),
    ("first_step_cold_s", "start → first step, cache cold (s)"),
    ("peak_memory_mib", "peak resident memory, main process (MiB)"),
    ("peak_anonymous_mib", "peak anonymous memory, main process (MiB)"),
]
PERCENTAGES = ("ratio", "loop_ratio_raw", "overhead", "overhead_parts")
LABEL_WIDTH, COLUMN_WIDTH = 42, 13


def cell(key, value):
    if key == "ratio_interval":
        return f"{value[0]:.0%}–{value[1]:.0%}"
    if key in PERCENTAGES or key == "validation_share":
        return f"{value:.1%}"
    whole = key.endswith(("images", "per_s", "_mib"))
    return f"{value:,.0f}" if whole else f"{value:.2f}" if value < 1 else f"{value:.1f}"


def line(label, cells):
    return f"{label:<{LABEL_WIDTH}}" + "".join(f"{c:>{COLUMN_WIDTH}}" for c in cells)


def table(results):
    """One column per dataset measured, one row per figure measured in any; then
    the figures of the repo as a whole."""
    columns = [c for c in ("dsprites", "celeba", "celeba_full") if c in results]
    figures = [results[c] for c in columns]
    lines = [line("images/s unless said", columns)]
    for key, label in ROWS:
        if any(key in f for f in figures):
            cells = [cell(key, f[key]) if key in f else "—" for f in figures]
            lines.append(line(label, cells))
    help_s = results["main"]["help_s"]
    lines.append(line("python main.py --help (s) (< 1)", [cell("help_s", help_s)]))
    return "\n".join(lines)
