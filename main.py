"""Train a β-VAE: `python main.py [--name=value ...]` (see params.py, or --help).

The story of a run, top to bottom: parameters → run folder → data → model → the
training loop → final outputs, all written into predictions/<run_name>/.
TensorFlow loads only once the parameters are checked, so that --help, a bad
value and --mode=compare answer in a fraction of a second: the functions below
that need it import it themselves.
"""

import contextlib
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from utils import cli, config
from utils.compare import compare_runs
from utils.objectives import logged_terms
from utils.run_folder import (
    RESUMABLE_CHANGES,
    RunFolderError,
    RunLock,
    cannot_write,
    check_same_experiment,
    check_writable,
    default_run_name,
    load_parameters,
    record_parameters,
    unused_name,
    write_status,
)
from utils.stopping import Stopped, StopRequest

REPO = Path(__file__).resolve().parent
PARAMS_FILE = REPO / "params.py"
TENSORFLOW_BYTES = 2**30  # a training process's own memory before its model (README)


def main(argv=None):
    # --- parameters: params.py, then the command line, all checked before any work
    try:
        p, runs, swept = parameters(sys.argv[1:] if argv is None else argv)
    except (cli.UsageError, RunFolderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if len(runs) > 1:
        return train_sweep(runs, swept)
    if p["mode"] == "compare":
        return compare(p)

    # --- the run folder, locked: refusals come before TensorFlow and the data load
    stop = StopRequest()
    lock, created = None, []
    try:
        config.check_strategy(p["strategy"])
        p = {**p, "run_name": run_name_of(p)}
        folder = REPO / p["predictions_dir"] / p["run_name"]
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


def parameters(argv):
    """params.py, then the command line → (the run's parameters, one overrides
    dict per run of a sweep, the swept names); UsageError for a bad value."""
    params = cli.import_params(PARAMS_FILE)
    p, overrides = cli.parse_command_line(cli.read_params(params), argv)
    runs = cli.sweep(overrides)
    if p["mode"] in ("evaluate", "analyze", "export"):
        p = parameters_of_run(p, overrides)
    errors = [e for run in runs for e in config.validate({**p, **run})]
    if errors:
        errors = "\n  ".join(dict.fromkeys(errors))
        raise cli.UsageError(f"invalid parameters:\n  {errors}")
    return p, runs, [k for k, v in overrides.items() if v != runs[0][k]]


def run_name_of(p):
    """The run's name, or for a new run one from its parameters that no folder
    has yet; a training run's folder must be writable."""
    predictions = REPO / p["predictions_dir"]
    name = p["run_name"] or unused_name(predictions, default_run_name(p))
    if p["mode"] == "train":
        check_writable(predictions / name)
    return name


BUSY_ADVICE = {
    "train": "Wait for it to finish, stop it, or choose another --run_name.",
    "evaluate": "Wait for it to finish, or stop it, then evaluate.",
    "analyze": "Wait for it to finish, or stop it, then analyze.",
    "export": "Wait for it to finish, or stop it, then export.",
}


def run(p, folder, stop):
    """Train, or inspect a trained run: TensorFlow from here on."""
    with config.quiet_tensorflow_start_up():  # its C++ start-up lines, unasked
        import tensorflow  # noqa: F401
    from utils.data import DataNotFound, split_problems
    from utils.distribute import make_strategy
    from utils.results import finished_step, missing_final_outputs, saved_parameters

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
        check_memory(p)
    try:
        source = load_data(p)
    except DataNotFound as error:
        raise RunFolderError(str(error)) from None
    print(f"Data: {source.source}")
    problems = split_problems(source, p["batch_size"]) if p["mode"] == "train" else []
    if problems:
        raise cli.UsageError(
            "the data cannot train this run:\n  " + "\n  ".join(problems)
        )
    # Before any other TensorFlow op: a multi-worker strategy starts a server.
    strategy = make_strategy(p["strategy"])
    if p["mode"] != "train":
        return inspect_run(p, folder, source, stop)
    try:
        return train(p, folder, source, strategy, stop)
    except OSError as error:  # a full disk, say: what was saved before stays intact
        from utils.checkpoints import latest_checkpoint_step

        kept = latest_checkpoint_step(folder / "checkpoints", log=lambda line: None)
        print(
            f"error: {cannot_write(folder, error)}. The run is intact up to its last "
            f"checkpoint (step {kept}): make room, then rerun the same command to "
            "resume.",
            file=sys.stderr,
        )
        return 1


def check_memory(p):
    """Refuse, before any work, a run whose training and step images would need
    more memory than this machine has: a latent size or an image size that would
    otherwise end in the kernel's OOM kill, with no message."""
    import os

    from models import training_bytes
    from utils.data import NUM_KL_IMAGES, NUM_TEST_IMAGES
    from utils.step_images import step_images_bytes

    channels = 1 if p["dataset"] == "dsprites" else 3
    shape = (p["image_size"], p["image_size"], channels)
    need = TENSORFLOW_BYTES + training_bytes(p, shape)
    need += step_images_bytes(
        shape, p["latent_size"], NUM_KL_IMAGES, NUM_TEST_IMAGES, p["conv_layers"][0][0]
    )
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.9 * have:
        raise cli.UsageError(
            f"this run would need about {need / 2**30:.1f} GB of memory (model, "
            f"optimizer and activations for batch_size={p['batch_size']} at "
            f"image_size={p['image_size']}, latent_size={p['latent_size']}), more "
            f"than this machine's {have / 2**30:.1f} GB: lower them"
        )


def load_data(p):
    from utils.data import DataNotFound, load_source

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


def train_sweep(runs, swept):
    """Several values for some parameters (`swept`): one run per combination, one
    after the other, each in its own process and run folder."""
    for number, overrides in enumerate(runs, 1):
        overrides = dict(overrides)
        if overrides.get("run_name"):  # else named from the parameters
            suffix = "_".join(f"{k}{overrides[k]}" for k in swept)
            overrides["run_name"] = f"{overrides['run_name']}_{suffix}"
        args = [cli.as_argument(k, v) for k, v in overrides.items()]
        print(f"--- sweep run {number}/{len(runs)}: {' '.join(args)}")
        code = subprocess.run([sys.executable, __file__, *args]).returncode
        if code:
            print(f"error: sweep run {number} failed (exit {code})", file=sys.stderr)
            return code
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


# --- training


def train(p, folder, source, strategy, stop):
    from utils.checkpoints import Checkpoints, TrainingState
    from utils.distribute import is_chief, worker_checkpoint_dir
    from utils.results import finished_step, write_final_outputs

    # --- the run folder: a new one, or the named run resumed; never another run's files
    chief = is_chief(strategy)  # only the chief writes into the run folder
    multi_worker_chief = chief and p["strategy"] == "multi_worker"
    lock = RunLock(folder).acquire() if multi_worker_chief else None
    try:
        # --- model, optimizers, and the state a resume needs (all in the checkpoint)
        state = TrainingState.new(p, source.image_shape, strategy)
        writes_to = worker_checkpoint_dir(folder / "checkpoints", strategy)
        checkpoints = Checkpoints(
            folder / "checkpoints", writes_to, **state.trackables()
        )
        if checkpoints.restore():
            print(f"Restored the checkpoint of step {int(state.step.numpy())}")
            state.optimizer.learning_rate = p["learning_rate"]  # resumable
        state.parameters.assign(json_of(p))
        if chief:
            record_parameters(folder, p, PARAMS_FILE)
            describe_in_tensorboard(p, folder)
        trained = finished_step(p, folder) is None
        outcome = "finished"
        if trained:
            outcome = train_loop(p, folder, source, strategy, state, checkpoints, stop)
        if outcome == "diverged":
            return 1
        if chief:
            stop.at_once()  # from here a stop request stops now: the rerun finishes
            step, results = int(state.step.numpy()), outcome == "finished"
            write_final_outputs(p, folder, state.model, source, step, trained, results)
            print(f"Wrote {folder}")
        return 0
    finally:
        if lock:
            lock.release()


def describe_in_tensorboard(p, folder):
    """The run's parameters, with its validation and disentanglement numbers as
    columns, in TensorBoard's HPARAMS tab: a sweep becomes one sortable table."""
    from utils.evaluate import METRIC_NAMES
    from utils.objectives import objective_of
    from utils.tensorboard import write_hparams

    validation = ("negative_elbo", "reconstruction_loss", "kl")
    columns = [f"validation/{k}" for k in validation]
    columns += [f"metrics/{k}" for k in METRIC_NAMES]
    varying = ("objective", *objective_of(p).parameters, "seed")
    write_hparams(folder / "tensorboard", p, columns, varying=varying)


def train_loop(p, folder, source, strategy, state, checkpoints, stop):
    """Train to num_steps or an early stop ("finished"), or until a stop request
    ("stopped") or a loss that is not finite ("diverged")."""
    from tqdm import tqdm

    from models import ObjectiveSettings
    from utils.data import (
        distributed_batches,
        test_sets,
        validation_batches,
    )
    from utils.distribute import discard_worker_checkpoints, is_chief, use_xla
    from utils.logs import RunLogs
    from utils.step_images import BackgroundDrawing, step_images
    from utils.steps import make_steps, steps_in_next_call

    resume_step = int(state.step.numpy())
    print(f"{'Resuming' if resume_step else 'Starting'} {p['run_name']} → {folder}")
    chief = is_chief(strategy)
    # --- data: batches are a pure function of the step, so a resume continues them
    test_images, kl_images = test_sets(source)
    validation_data = validation_batches(
        strategy, source, p["validation_batches"], p["batch_size"]
    )
    train_batches = iter(
        distributed_batches(
            strategy, source, source.splits["train"], p["batch_size"],
            seed=p["seed"], start_step=resume_step,
        )
    )  # fmt: skip
    train_steps, validation_losses = make_steps(
        strategy, state.model, (state.optimizer, state.discriminator_optimizer),
        state.step, ObjectiveSettings.of(p), p["batch_size"], p["seed"],
        jit_compile=use_xla(p["jit_compile"], strategy),
    )  # fmt: skip
    # --- logs: stable column names, which become CSV headers and TensorBoard tags
    terms = logged_terms(p)
    logs = RunLogs(folder, terms, p["latent_size"], resume_step, chief)
    drawing = BackgroundDrawing()

    def validate():
        """Log the validation losses, keep the best; True when it is time to stop."""
        losses = validation_losses(validation_data)
        logs.validation(current, losses)
        if state.record_validation(losses):
            save(best=True)
        patience = p["early_stopping_patience"]
        return bool(patience) and stale(state) >= patience

    def save(best=False):
        logs.flush()  # every row up to the checkpoint's step is on disk before it
        checkpoints.save(current, best=best)  # every worker takes part
        discard_worker_checkpoints(folder / "checkpoints", strategy)

    def draw():
        images = step_images(state.model, test_images, kl_images, folder, current)
        drawing.submit(images, then=partial(logs.images, current))  # TensorBoard

    # --- the loop: `steps_per_call` steps per call, or fewer to land on the steps
    # that validate, checkpoint or draw; then each step's values, one by one
    current, final, stopping = resume_step, False, None
    progress = tqdm(
        total=p["num_steps"], initial=current, unit="step", mininterval=1.0,
        dynamic_ncols=True,
    )  # fmt: skip
    started = time.time()
    if chief:
        write_status(folder, "training", current, p["num_steps"], "")
    try:
        while not (final or stopping):
            count = steps_in_next_call(current, p)
            values = train_steps(train_batches, count)
            bad = log_steps(logs, values, current, p["log_step"])
            if bad:
                progress.close()
                diverged(p, folder, checkpoints, bad, values["loss"][bad - current - 1])
                return "diverged"
            current += count
            show_progress(progress, values, count, terms)
            final = current == p["num_steps"]
            if due(current, p["validation_step"]) or final:
                final |= validate()  # True: early stopping says stop
            stopping = stop.requested  # read once: a signal may come at any moment
            if due(current, p["checkpoint_step"]) or final or stopping:
                save()
            if chief and (due(current, p["plot_step"]) or final or stopping):
                draw()  # only the chief writes into the run folder
    except BaseException:
        # Keep the rows already logged; report the error that stopped the run,
        # not one that closing the files after it may raise (a full disk).
        close_after_a_fault(progress, drawing, logs)
        raise
    progress.close()
    drawing.close()  # the last step's images: before training.gif, and TensorBoard
    logs.close()
    stopped = not final and stopping  # a request that came before the end
    return end_of_session(p, folder, chief, current, stopped, started)


def close_after_a_fault(*closables):
    for closable in closables:
        with contextlib.suppress(Exception):
            closable.close()


def log_steps(logs, values, first, log_step):
    """Log a call's steps (those after `first`, every `log_step`) → the first
    step whose loss is not finite, or None."""
    import numpy as np

    for i, loss in enumerate(values["loss"]):
        step = first + i + 1
        if not np.isfinite(loss):
            return step
        if step % log_step == 0:
            logs.train(step, {k: v[i] for k, v in values.items()})
    return None


def show_progress(progress, values, count, terms):
    # The postfix first: the update that reaches 100 % shows the last step's values.
    last = {k: f"{values[k][-1]:.4g}" for k in terms[:3]}
    progress.set_postfix(last, refresh=False)
    progress.update(count)


def end_of_session(p, folder, chief, step, stopped, started):
    """Say how the session ended, in the terminal and in status.json → the
    outcome: "stopped" by a request, or "finished" (num_steps or early stop)."""
    if stopped:
        reason = f"stopped by {stopped}"
    elif step < p["num_steps"]:
        reason = "early stop: no lower validation negative ELBO in "
        reason += f"{p['early_stopping_patience']} validations"
    else:
        reason = "reached num_steps"
    minutes = (time.time() - started) / 60
    print(f"Step {step}: {reason} ({minutes:.1f} min in this session)")
    outcome = "stopped" if stopped else "finished"
    if chief:
        write_status(folder, outcome, step, p["num_steps"], reason)
    if stopped:
        print(
            "Rerun the same command to resume; the results (metrics, exports) are "
            "written when the run finishes."
        )
    return outcome


def due(step, every):
    return step % every == 0


def stale(state):
    return int(state.validations_without_improvement.numpy())


def diverged(p, folder, checkpoints, step, loss):
    # This loss came from the weights saved at the step before, if any.
    kept, lower = checkpoints.discard(step - 1), p["learning_rate"] / 10
    write_status(folder, "diverged", step, p["num_steps"], f"loss {loss}")
    print(
        f"error: the loss became {loss} at step {step}. The run is kept as of "
        f"its last good checkpoint (step {kept}): rerun the same command with a lower "
        f"learning rate (e.g. --learning_rate={lower:g}) to resume from there.",
        file=sys.stderr,
    )
    return 1


# --- an existing run: metrics, analysis, exports


def inspect_run(p, folder, source, stop):
    """--mode=evaluate (disentanglement metrics), analyze (what each latent does)
    or export, on a trained run's latest (or best) checkpoint, into its folder."""
    from models import build_model
    from utils.checkpoints import Checkpoints

    if p["mode"] == "evaluate" and p["dataset"] != "dsprites":
        raise RunFolderError(
            f"the metrics need ground-truth factors, which {p['dataset']} does not "
            "have: evaluate a dSprites run, or use --mode=analyze"
        )
    model = build_model(p, source.image_shape, training=False)
    step = Checkpoints(folder / "checkpoints", model=model).restore(p["checkpoint"])
    if step is None:
        raise RunFolderError(
            f"run {p['run_name']} has no {p['checkpoint']} checkpoint yet"
        )
    print(f"{p['mode'].capitalize()} {p['run_name']} at step {step}")
    stop.at_once()
    if p["mode"] == "evaluate":
        from utils.evaluate import evaluate_metrics

        evaluate_metrics(model.encoder, source, folder, p["metrics_protocol"], step)
    elif p["mode"] == "analyze":
        analyze_run(model, source, folder)
    else:
        from utils.export import export_model

        export_model(model, folder / "model")
    print(f"Wrote {folder}")
    return 0


def analyze_run(model, source, folder):
    import numpy as np

    from utils.analysis import analyze
    from utils.data import test_sets
    from utils.step_images import z_mean_and_kl

    _, kl_images = test_sets(source)
    summary = analyze(
        lambda x: z_mean_and_kl(model, x),
        lambda z: np.asarray(model.decode(z)),
        np.asarray(kl_images),
        folder,
    )
    print(
        f"{summary['active_latents']} active latents (KL > "
        f"{summary['active_threshold']} nats); most informative: "
        + ", ".join(f"z{i}" for i in summary["top_latents"])
    )


def _remove_if_empty(folder):
    try:
        folder.rmdir()
    except OSError:
        pass


def json_of(p):
    import json

    return json.dumps(p, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
