"""Is the model the bottleneck, never the input? `python -m benchmark`.

Per dataset, in this process (in_process.py, overheads.py, end_of_run.py): the
bare train step on an in-memory batch, the same step fed by the real input
pipeline (the two interleaved), the work around the steps, the export and (on
dSprites) the metrics at a run's end. Then the real loop (loop.py): `python
main.py` in a subprocess at the default frequencies, its steady-state rate read
from the wall times of its own TensorBoard events. Also CelebA preprocessing
(celeba_layout.py), peak memory, the time from process start to the first step,
and `python main.py --help`. Targets are printed, not tested (report.py): each
ratio is built from figures timed side by side, since this machine's speed drifts
by ±20 % over minutes (other load).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from utils.settings import cli, config

with config.quiet_tensorflow_start_up():  # its C++ start-up lines, as in main.py
    import tensorflow as tf

    from benchmark import end_of_run, in_process, overheads
    from benchmark.celeba_layout import celeba_folder, preprocessing_rate
    from benchmark.loop import REPO, help_seconds, loop_schedule, measure_loop
    from benchmark.report import shares, table
    from utils.data import load_source
    from utils.data.dsprites import NUM_IMAGES as DSPRITES_IMAGES

FULL_CELEBA = 202_599  # images in the real img_align_celeba
OUTPUT = REPO / "predictions" / "benchmark.json"
DATA_ROOT = Path(tempfile.gettempdir()) / "beta_vae_benchmark"
TITLE = "Images/s of the bare train step and of python main.py, overheads, memory."
FULL_SIZE_HELP = f"also train on {FULL_CELEBA:,} CelebA-layout images (memory)"
REFERENCE_HELP = (
    "also time the reference metrics protocol (many minutes: it encodes most of "
    "dSprites and fits DCI by gradient boosting)"
)
# `period` is the loop's plot_step; validation and checkpoint steps keep the defaults'
# ratio to it (500/1000). --quick divides them by 100, so its overheads are ~100×
# too large, and shrinks the metrics' samples: it checks the tool, not the repo.
# `metrics_share`: the metrics draw 1/share of their protocol's samples.
SIZES = {
    "default": dict(
        period=1000, bare_steps=20, rounds=40, celeba_images=5000, metrics_share=1
    ),
    "quick": dict(
        period=10,
        bare_steps=4,
        rounds=3,
        celeba_images=600,
        validation_batches=2,
        metrics_share=50,
    ),
}
STARTED = time.monotonic()


def say(message):
    print(f"[{time.monotonic() - STARTED:5.0f} s] {message}", file=sys.stderr)


def default_params(dataset, sizes):
    """What `python main.py --dataset=…` trains with: params.py, read as main.py
    reads it; --quick validates on fewer batches."""
    params = cli.read_params(cli.import_params(REPO / "params.py"))
    p = cli.resolve(params, {"dataset": dataset})
    p["validation_batches"] = sizes.get("validation_batches", p["validation_batches"])
    return p


# --- one column of the table


def measure(dataset, sizes, data_root, predictions, count=0, full_size=False):
    """In-process figures, then python main.py "cold" (CelebA's cache rebuilt
    first) and "default" (caches built; its figures are the column's)."""
    p = default_params(dataset, sizes)
    if dataset == "dsprites":
        result, data_dir = {"images": DSPRITES_IMAGES}, data_root / "dsprites"
    else:
        say(f"{dataset}: {count:,} JPEGs (written once), preprocessed")
        result, data_dir = {"images": count}, celeba_folder(data_root, count)
        result["preprocessing_images_per_s"] = preprocessing_rate(data_dir, p, count)
    if not full_size:
        result |= in_this_process(p, data_dir, sizes)
    runs = ("default",) if dataset == "dsprites" or full_size else ("cold", "default")
    loops = {}
    for run in runs:
        if run == "cold":
            shutil.rmtree(data_dir / "cache")
        say(f"{dataset}: python main.py, {run}")
        name = f"{dataset}{count or ''}_{run}"
        loops[run] = measure_loop(p, data_dir, predictions, name, sizes)
    result |= loop_figures(loops)
    if not full_size:
        result |= shares(result)
    return result | {"runs": loops}


def in_this_process(p, data_dir, sizes):
    """Everything timed in this process, on one TrainingState as main.py builds
    it: the steps train it, then its weights are saved, drawn, exported and (on
    dSprites) scored, as after a short run."""
    dataset = p["dataset"]
    # Also generates dSprites if absent, before main.py is timed.
    source = load_source(
        dataset, data_dir, p["image_size"], p["crop_size"], log=lambda m: None
    )
    state, (train_steps, validation_losses) = in_process.training(p, source.image_shape)
    say(f"{dataset}: in this process: bare step, fed by the pipeline, XLA")
    steps = sizes["bare_steps"]
    result = in_process.step_rates(p, source, train_steps, steps, sizes["rounds"])
    result |= in_process.xla_rate(p, source, steps)
    say(f"{dataset}: validation, logs, checkpoints, step images, export")
    result |= overheads.overhead_seconds(p, source, state, validation_losses)
    result["export_s"] = end_of_run.export_seconds(state.model)
    if dataset == "dsprites":
        say(f"{dataset}: the metrics at a run's end: {', '.join(sizes['metrics'])}")
        result |= end_of_run.metrics_seconds(
            state.model.encoder, source, sizes["metrics"], sizes["metrics_share"]
        )
    return result


def loop_figures(loops):
    """The column's loop figures: the "default" run's, and the cold run's rate and
    start-up; the peak memory of either."""
    default = loops["default"]
    result = {
        k: v for k, v in default.items() if k not in ("images_per_s", "process_s")
    }
    result["loop_images_per_s"] = default["images_per_s"]
    if "cold" in loops:
        result["loop_cold_images_per_s"] = loops["cold"]["images_per_s"]
        result["first_step_cold_s"] = loops["cold"]["first_step_s"]
    for key in ("peak_memory_mib", "peak_anonymous_mib"):
        result[key] = max(loop[key] for loop in loops.values())
    return result


def main(argv=None):
    parser = argparse.ArgumentParser("python -m benchmark", description=TITLE)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test")
    parser.add_argument("--full-size", action="store_true", help=FULL_SIZE_HELP)
    parser.add_argument("--reference-metrics", action="store_true", help=REFERENCE_HELP)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--data-root", type=Path, default=DATA_ROOT, help="generated data, kept"
    )
    args = parser.parse_args(argv)
    metrics = ("fast", "reference") if args.reference_metrics else ("fast",)
    sizes = SIZES["quick" if args.quick else "default"] | {"metrics": metrics}
    schedule, window = loop_schedule(default_params("celeba", sizes), sizes["period"])
    settings = dict(
        quick=args.quick, cores=len(os.sched_getaffinity(0)), tensorflow=tf.__version__,
        sizes=sizes, loop=schedule, measured_steps=f"({window[0]}, {window[1]}]",
    )  # fmt: skip
    results = {"settings": settings}
    say("python main.py --help")
    results["main"] = {"help_s": help_seconds()}
    args.data_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as predictions:
        predictions, count = Path(predictions), sizes["celeba_images"]
        results["dsprites"] = measure("dsprites", sizes, args.data_root, predictions)
        results["celeba"] = measure("celeba", sizes, args.data_root, predictions, count)
        if args.full_size:
            results["celeba_full"] = measure(
                "celeba", sizes, args.data_root, predictions, FULL_CELEBA, True
            )
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
