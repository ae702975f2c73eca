"""Train a β-VAE: `python main.py [--name=value ...]` (see params.py, or --help).

The story of a run, top to bottom: parameters → run folder → data → model → the
training loop → final outputs, all written into predictions/<run_name>/.
TensorFlow loads only once the parameters are checked, so that --help, a bad
value and --mode=compare answer in a fraction of a second: the functions below
that need it import it themselves.
"""

import sys
from pathlib import Path

from utils.data import DataNotFound, check_usable
from utils.outputs.compare import compare_runs
from utils.runs.folder import (
    RESUMABLE_CHANGES,
    RunFolderError,
    RunLock,
    cannot_write,
    check_same_experiment,
    check_seed_group,
    check_writable,
    default_run_name,
    load_parameters,
    lost_checkpoint_problem,
    rerun_command,
    unused_name,
)
from utils.runs.shipped import working_folder
from utils.runs.stopping import Stopped, StopRequest
from utils.runs.sweep import train_sweep
from utils.settings import cli, config

REPO = Path(__file__).resolve().parent
PARAMS_FILE = REPO / "params.py"


def main(argv=None):
    # --- parameters: params.py, then the command line, all checked before any work
    try:
        p, runs, swept = parameters(sys.argv[1:] if argv is None else argv)
    except (cli.UsageError, RunFolderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if len(runs) > 1 or p["print_commands"]:
        return sweep(p, runs, swept)
    if p["mode"] == "compare":
        return compare(p)
    if "," in (p["run_name"] or ""):
        return evaluate_group(p)

    # --- the run folder, locked: refusals come before TensorFlow and the data load
    stop = StopRequest()
    lock, created = None, []
    try:
        config.check_strategy(p["strategy"])
        p = {**p, "run_name": run_name_of(p)}
        stop.rerun = rerun_command(p["run_name"])  # what each advice to rerun says
        # A run that ships with the repo stays as committed: work on its copy.
        folder = working_folder(REPO / p["predictions_dir"] / p["run_name"])
        # The folders this run creates: removed again if it stops before writing.
        created = [f for f in (folder, *folder.parents) if not f.exists()]
        if p["strategy"] != "multi_worker":  # its chief locks once it is known
            lock = RunLock(folder).acquire(busy_advice=BUSY_ADVICE[p["mode"]])
        return run(p, folder, stop)
    except (RunFolderError, config.StrategyError, cli.UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Stopped as stopped:
        print(f"\n{stopped}", file=sys.stderr)
        return 128 + stopped.signum
    finally:
        if lock:
            lock.release()
            for empty in created:
                _remove_if_empty(empty)  # a new run that stopped before writing


def sweep(p, runs, swept):
    """Several runs (utils/runs/sweep.py): each in its own process, `jobs` at a
    time, or printed as commands for a scheduler."""
    try:
        return train_sweep(
            [(run, {**p, **run}) for run in runs], swept, Path(__file__),
            REPO / p["predictions_dir"], p["jobs"], p["print_commands"],
            check=check_run_folder,
        )  # fmt: skip
    except RunFolderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def parameters(argv):
    """params.py, then the command line → (the run's parameters, one overrides
    dict per run of a sweep, the swept names); UsageError for a bad value."""
    params = cli.import_params(PARAMS_FILE)
    p, overrides = cli.parse_command_line(cli.read_params(params), argv)
    runs = cli.sweep(overrides)
    if p["mode"] in ("evaluate", "analyze", "export"):
        group = [
            parameters_of_run({**p, "run_name": name}, overrides)
            for name in (p["run_name"] or "").split(",")
        ]
        check_seed_group(group, p["mode"])
        p = group[0] if len(group) == 1 else {**group[0], "run_name": p["run_name"]}
    names = {"run_name": p["run_name"].split(",")[0]} if p["run_name"] else {}
    errors = [e for run in runs for e in config.validate({**p, **run, **names})]
    if errors:
        errors = "\n  ".join(dict.fromkeys(errors))
        raise cli.UsageError(f"invalid parameters:\n  {errors}")
    return p, runs, [k for k, v in overrides.items() if v != runs[0][k]]


def run_name_of(p):
    """The run's name, or for a new run one from its parameters that no folder
    has yet; a training run's folder must be writable, and resumable."""
    predictions = REPO / p["predictions_dir"]
    name = p["run_name"] or unused_name(predictions, default_run_name(p))
    if p["mode"] == "train":
        check_run_folder({**p, "run_name": name})
    return name


def check_run_folder(p):
    """RunFolderError if the run folder of `p` (a training run, named) could not be
    trained in: not writable, its checkpoints lost, another experiment's. Reads
    only small files: a sweep checks each of its runs with it before any starts."""
    folder = REPO / p["predictions_dir"] / p["run_name"]
    check_writable(folder)
    # Never train over a run whose checkpoints are gone. Its rows were logged by
    # the session that wrote params.json: with its checkpoint_step.
    saved = load_parameters(folder)
    every = (saved or p).get("checkpoint_step")
    every = every if isinstance(every, int) else p["checkpoint_step"]
    if problem := lost_checkpoint_problem(folder, every):
        raise RunFolderError(problem)
    check_same_experiment(saved, p, folder)


BUSY_ADVICE = {"train": "Wait for it to finish, stop it, or choose another --run_name."}
for _mode in ("evaluate", "analyze", "export"):
    BUSY_ADVICE[_mode] = f"Wait for it to finish, or stop it, then {_mode}."


def run(p, folder, stop):
    """Train, or inspect a trained run: TensorFlow from here on."""
    try:  # in a second, not after TensorFlow's start-up
        check_usable(p["dataset"], REPO / p["data_dir"], p["mode"])
    except DataNotFound as error:
        raise RunFolderError(str(error)) from None
    with config.quiet_tensorflow_start_up():  # its C++ start-up lines, unasked
        import tensorflow  # noqa: F401
    from utils.data.factor_structure import dataset_problems
    from utils.data.pipeline import split_problems
    from utils.devices.distribute import make_strategy
    from utils.outputs.end_of_run import (
        finished_step,
        missing_final_outputs,
        saved_parameters,
    )

    if p["mode"] == "train":
        for change in check_same_experiment(saved_parameters(folder), p, folder):
            print(f"Note: {change}")
        done = finished_step(p, folder)  # before the data load: it may be all done
        if done is not None and not missing_final_outputs(p, folder, done):
            print(
                f"Run {p['run_name']} has already trained {done} steps "
                f"(num_steps={p['num_steps']}) and written its results: nothing to "
                "do. Raise --num_steps to train longer."
            )
            return 0
        from train import check_memory

        check_memory(p)
    try:
        source = load_data(p)
    except DataNotFound as error:
        raise RunFolderError(str(error)) from None
    print(f"Data: {source.source}")
    problems = split_problems(source, p["batch_size"]) if p["mode"] == "train" else []
    problems += dataset_problems(source, p["factor_correlation"], p["holdout"])
    if problems:
        raise cli.UsageError(
            "the data cannot train this run:\n  " + "\n  ".join(problems)
        )
    # Before any other TensorFlow op: a multi-worker strategy starts a server.
    strategy = make_strategy(p["strategy"], p["cluster_timeout"])
    try:
        if p["mode"] != "train":
            return inspect_run(p, folder, source, stop)
        from train import train

        return train(p, folder, source, strategy, stop, PARAMS_FILE)
    except OSError as error:  # a full disk, say: what was saved before stays intact
        from utils.runs.checkpoints import latest_checkpoint_step

        if p["mode"] == "train":
            kept = latest_checkpoint_step(folder / "checkpoints", log=lambda _: None)
            kept = (
                f"The run is intact up to its last checkpoint (step {kept})"
                if kept
                else "It stopped before its first checkpoint, and starts at step 0"
            )
        else:  # its writes are whole files renamed into place, or nothing
            kept = f"--mode={p['mode']} changed nothing in the run"
        print(
            f"error: {cannot_write(folder, error)}. {kept}: make room, then rerun; "
            f"to {'resume' if p['mode'] == 'train' else 'rerun'}: {stop.rerun}",
            file=sys.stderr,
        )
        return 1


def load_data(p):
    from utils.data import load_source

    data_dir = REPO / p["data_dir"]
    try:
        return load_source(p["dataset"], data_dir, p["image_size"], p["crop_size"])
    except (OSError, ValueError) as error:  # unreadable, or no room for the cache
        raise DataNotFound(
            f"cannot use data_dir {data_dir}: {error}; fix it, or choose "
            "--data_dir=<a folder with the dataset>"
        ) from None


def compare(p):
    names = p["run_name"].split(",") if p["run_name"] else None
    try:
        page = compare_runs(REPO / p["predictions_dir"], names)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {page}")
    return 0


def parameters_of_run(p, overrides):
    """evaluate/analyze/export an existing run with the parameters it was trained
    with."""
    if not p["run_name"]:
        raise RunFolderError(f"--mode={p['mode']} needs --run_name=<run>")
    predictions = REPO / p["predictions_dir"]
    saved = load_parameters(predictions / p["run_name"])
    if saved is None:
        runs = sorted(f.parent.name for f in predictions.glob("*/params.json"))
        raise RunFolderError(
            f"no run {p['run_name']!r} in {predictions} "
            f"(runs there: {', '.join(runs) or 'none'})"
        )
    kept = {k: v for k, v in overrides.items() if k in RESUMABLE_CHANGES}
    # p first: a run saved before a speed setting existed gets today's default.
    return {**p, **saved, **kept, "mode": p["mode"]}


# --- an existing run: metrics, analysis, exports


def evaluate_group(p):
    """--mode=evaluate --run_name=a,b,c: UDR (unsupervised model selection, Duan
    et al. 2020) of each run against the others, into each run's metrics.json."""
    with config.quiet_tensorflow_start_up():
        import tensorflow  # noqa: F401
    from models import build_model
    from utils.metrics.udr import REFERENCE, sample_images, udr_scores
    from utils.outputs.metrics_file import write_udr
    from utils.outputs.step_images import z_mean_and_kl
    from utils.runs.checkpoints import Checkpoints

    names = p["run_name"].split(",")
    folders = [working_folder(REPO / p["predictions_dir"] / n) for n in names]
    source = load_data(p)
    images = source.read(sample_images(source)).astype("float32") / 255
    codes, kl, steps = [], [], []
    for name, folder in zip(names, folders, strict=True):
        model = build_model(p, source.image_shape, training=False)
        steps.append(Checkpoints(folder / "checkpoints", model=model).restore())
        if steps[-1] is None:
            raise RunFolderError(f"run {name} has no checkpoint yet")
        z_mean, kl_each = z_mean_and_kl(model, images)
        codes.append(z_mean)
        kl.append(kl_each.mean(axis=0))
    write_udr(folders, names, udr_scores(codes, kl), steps, REFERENCE)
    return 0


def inspect_run(p, folder, source, stop):
    """--mode=evaluate (disentanglement metrics), analyze (what each latent does)
    or export, on a trained run's latest (or best) checkpoint, into its folder."""
    from models import build_model
    from utils.runs.checkpoints import Checkpoints

    model = build_model(p, source.image_shape, training=False)
    step = Checkpoints(folder / "checkpoints", model=model).restore(p["checkpoint"])
    if step is None:
        raise RunFolderError(
            f"run {p['run_name']} has no {p['checkpoint']} checkpoint yet"
        )
    print(f"{p['mode'].capitalize()} {p['run_name']} at step {step}")
    stop.at_once()
    if p["mode"] == "evaluate":
        from utils.outputs.metrics_file import evaluate_holdout, evaluate_metrics

        evaluate_metrics(
            model.encoder, source, folder, p["metrics_protocol"], step,
            p["metrics_representation"],
        )  # fmt: skip
        if p["holdout"]:  # the held-out combinations apart (Montero et al. 2021)
            evaluate_holdout(model, source, folder, p, step)
    elif p["mode"] == "analyze":
        from utils.outputs.analysis import analyze_model

        analyze_model(model, source, folder)
    else:
        from utils.outputs.export import export_model

        export_model(model, folder / "model", step)
    print(f"Wrote {folder}")
    return 0


def _remove_if_empty(folder):
    try:
        folder.rmdir()
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
