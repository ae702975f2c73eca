"""Train a β-VAE: `python main.py [--name=value ...]` (see params.py, or --help).

The story of a run, top to bottom: parameters → data → run folder → model →
training loop → final artifacts, all written into predictions/<run_name>/.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ chatter ("no CUDA")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from models import BetaVAE, ObjectiveSettings  # noqa: E402
from utils import cli, config, visualize  # noqa: E402
from utils.analysis import analyze  # noqa: E402
from utils.checkpoints import Checkpoints, latest_checkpoint_step  # noqa: E402
from utils.compare import compare_runs  # noqa: E402
from utils.data import (  # noqa: E402
    DataNotFound,
    distributed_batches,
    fixed_indices,
    load_source,
    to_float,
    validation_batches,
)
from utils.distribute import (  # noqa: E402
    StrategyError,
    check_strategy,
    discard_worker_checkpoints,
    is_chief,
    make_strategy,
    use_xla,
    worker_checkpoint_dir,
)
from utils.evaluate import evaluate_metrics  # noqa: E402
from utils.images import save_gif  # noqa: E402
from utils.logs import CsvLog, TensorBoard, log_train_step  # noqa: E402
from utils.plots import read_log_csv, save_kl_bars, save_loss_curves  # noqa: E402
from utils.run_folder import (  # noqa: E402
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
)
from utils.steps import make_steps  # noqa: E402

REPO = Path(__file__).resolve().parent
NUM_TEST_IMAGES = 16  # shown in every composite, as the original


def main(argv=None):
    # --- parameters: params.py, then the command line, all checked before any work
    import params

    specs = cli.read_params(params)
    argv = sys.argv[1:] if argv is None else argv
    try:
        p, overrides = cli.parse_command_line(specs, argv)
        runs = cli.sweep(overrides)
        if p["mode"] in ("evaluate", "analyze"):
            p = parameters_of_run(p, overrides)
        errors = [e for run in runs for e in config.validate({**p, **run})]
        if errors:
            errors = list(dict.fromkeys(errors))
            raise cli.UsageError("invalid parameters:\n  " + "\n  ".join(errors))
    except (cli.UsageError, RunFolderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if len(runs) > 1:
        return train_sweep(runs, [k for k, v in overrides.items() if v != runs[0][k]])
    if p["mode"] == "compare":
        names = p["run_name"].split(",") if p["run_name"] else None
        try:
            page = compare_runs(REPO / p["predictions_dir"], names)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"Wrote {page}")
        return 0
    try:
        # Refusals first, before a long data load; neither writes anything.
        check_strategy(p["strategy"])
        if p["mode"] == "train":
            name = p["run_name"] or default_run_name(p)
            check_writable(REPO / p["predictions_dir"] / name)
        # The data is found (or its absence reported) before anything is written,
        # and before the strategy: building a cache forks, which hangs once a
        # multi-worker strategy has started its gRPC server (grpc/grpc#14055).
        source = load_data(p)
        print(f"Data: {source.source}")
        # Before any other TensorFlow op: a multi-worker strategy starts a server.
        strategy = make_strategy(p["strategy"])
        if p["mode"] == "train":
            return train(p, source, strategy, Path(params.__file__))
        return inspect_run(p, source)
    except (DataNotFound, RunFolderError, StrategyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def load_data(p):
    data_dir = REPO / p["data_dir"]
    try:
        return load_source(p["dataset"], data_dir, p["image_size"], p["crop_size"])
    except (OSError, ValueError) as error:  # unreadable, or no room for the cache
        raise DataNotFound(
            f"cannot use data_dir {data_dir}: {error}; fix it, or choose "
            "--data_dir=<a folder with the dataset>"
        ) from None


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
    """evaluate/analyze an existing run with the parameters it was trained with."""
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


def train(p, source, strategy, params_file):
    # --- run folder: a new one, or the named run resumed; never another run's files
    predictions = REPO / p["predictions_dir"]
    run_name = p["run_name"] or unused_name(predictions, default_run_name(p))
    p = {**p, "run_name": run_name}
    folder = predictions / run_name
    chief = is_chief(strategy)  # only the chief writes into the run folder
    lock = RunLock(folder).acquire() if chief else None  # creates the folder
    try:
        # Refuse a folder that holds another experiment; say what a resume changes.
        for change in check_same_experiment(load_parameters(folder), p, folder):
            print(f"Note: {change}")
        done = latest_checkpoint_step(folder / "checkpoints")
        if done >= p["num_steps"]:
            print(
                f"Run {run_name} has already trained {done} steps (num_steps="
                f"{p['num_steps']}): nothing to do. Raise --num_steps to train longer."
            )
            return 0
        if chief:
            record_parameters(folder, p, params_file)
        return train_loop(p, source, strategy, folder, resume_step=done)
    except OSError as error:  # a full disk, say: what was saved before stays intact
        kept = latest_checkpoint_step(folder / "checkpoints")
        print(
            f"error: {cannot_write(folder, error)}. The run is intact up to its last "
            f"checkpoint (step {kept}): make room, then rerun the same command to "
            "resume.",
            file=sys.stderr,
        )
        return 1
    finally:
        if lock:
            lock.release()


def train_loop(p, source, strategy, folder, resume_step):
    print(f"{'Resuming' if resume_step else 'Starting'} {p['run_name']} → {folder}")
    keras.utils.set_random_seed(p["seed"])
    chief = is_chief(strategy)

    # --- data: batches are a pure function of the step, so a resume continues them
    test_images = to_float(
        source.read(fixed_indices(source.splits["test"], NUM_TEST_IMAGES))
    )
    validation_data = validation_batches(
        strategy, source, p["validation_batches"], p["batch_size"]
    )
    train_batches = iter(
        distributed_batches(
            strategy, source, source.splits["train"], p["batch_size"],
            seed=p["seed"], start_step=resume_step,
        )
    )  # fmt: skip

    # --- model, optimizer, and the state a resume needs
    with strategy.scope():
        model = build_model(p, source.image_shape)
        optimizer = build_optimizer(p)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, name="step")
        best_validation_loss = tf.Variable(np.inf, dtype=tf.float64)
        validations_without_improvement = tf.Variable(0, dtype=tf.int64)
    checkpoints = Checkpoints(
        folder / "checkpoints",
        worker_checkpoint_dir(folder / "checkpoints", strategy),
        model=model, optimizer=optimizer, step=step,
        best_validation_loss=best_validation_loss,
        validations_without_improvement=validations_without_improvement,
    )  # fmt: skip
    if checkpoints.restore():
        print(f"Restored the checkpoint of step {int(step.numpy())}")
        optimizer.learning_rate = p["learning_rate"]  # not the checkpoint's: resumable
    cfg = ObjectiveSettings.of(p)
    train_steps, validation_losses = make_steps(
        strategy, model, optimizer, step, cfg, p["batch_size"], p["seed"],
        jit_compile=use_xla(p["jit_compile"], strategy),
    )  # fmt: skip

    # --- logs: stable column names, which become CSV headers and TensorBoard tags
    scalars = ["loss", "reconstruction_loss", "kl", cfg.schedule_name]
    latents = [f"kl_z{i}" for i in range(p["latent_size"])]
    validation_columns = ["step", "loss", "reconstruction_loss", "kl"]
    if chief:
        log = CsvLog(folder / "log.csv", ["step", *scalars, *latents], resume_step)
        validation_log = CsvLog(
            folder / "validation.csv", validation_columns, resume_step
        )
        tensorboard = TensorBoard(folder / "tensorboard")
    else:
        log = validation_log = tensorboard = NoLog()

    def save(best=False):
        # Logs first: every row up to the checkpoint's step is on disk before it.
        log.flush()
        validation_log.flush()
        tensorboard.flush()
        checkpoints.save(current, best=best)  # every worker takes part
        discard_worker_checkpoints(folder / "checkpoints", strategy)

    # --- the loop: `steps_per_call` steps per call, or fewer to land on the steps
    # that validate, checkpoint or draw; then each step's values, one by one
    stop = StopRequest()
    current = int(step.numpy())
    reason = "reached num_steps"
    progress = tqdm(
        total=p["num_steps"], initial=current, unit="step", mininterval=1.0,
        dynamic_ncols=True,
    )  # fmt: skip
    started = time.time()
    drawing = visualize.BackgroundDrawing()
    while current < p["num_steps"]:
        count = steps_in_next_call(current, p)
        chunk = train_steps(train_batches, tf.constant(count, tf.int32))
        chunk = {k: v.numpy() for k, v in chunk.items()}
        for i in range(count):
            values = {k: v[i] for k, v in chunk.items()}
            current += 1
            if not np.isfinite(values["loss"]):
                progress.close()
                # This loss came from the weights saved at the step before, if any.
                kept, lower = checkpoints.discard(current - 1), p["learning_rate"] / 10
                print(
                    f"error: the loss became {values['loss']} at step {current}. The "
                    f"run is kept as of its last good checkpoint (step {kept}): rerun "
                    f"the same command with a lower learning rate (e.g. "
                    f"--learning_rate={lower:g}) to resume from there.",
                    file=sys.stderr,
                )
                return 1
            if current % p["log_step"] == 0:
                log_train_step(log, tensorboard, current, values, scalars, latents)
        progress.update(count)
        progress.set_postfix({k: f"{values[k]:.4g}" for k in scalars}, refresh=False)
        final = current == p["num_steps"]

        if current % p["validation_step"] == 0 or final:
            losses = validation_losses(validation_data)
            validation_log.append({"step": current, **losses})
            tensorboard.write("validation", current, losses)
            improved = losses["loss"] < best_validation_loss.numpy()
            if improved:
                best_validation_loss.assign(losses["loss"])
                validations_without_improvement.assign(0)
            else:
                validations_without_improvement.assign_add(1)
            patience = p["early_stopping_patience"]
            if patience and validations_without_improvement.numpy() >= patience:
                reason = f"early stop after {patience} validations without improvement"
                final = True
            if improved:
                save(best=True)
        stopping = stop.requested  # read once: a signal may come at any moment
        if stopping and not final:
            reason = f"stopped by {stopping}"
        if current % p["checkpoint_step"] == 0 or final or stopping:
            save()
        if chief and (current % p["plot_step"] == 0 or final or stopping):
            drawing.submit(visualize.step_images(model, test_images, folder, current))
        if final or stopping:
            break
    progress.close()
    drawing.close()  # the last step's images, before training.gif is made of them
    log.close()
    validation_log.close()
    minutes = (time.time() - started) / 60
    print(f"Step {current}: {reason} ({minutes:.1f} min in this session)")

    # --- final artifacts: what a user opens first
    if chief:
        write_final_artifacts(model, source, folder)
        if p["dataset"] == "dsprites" and p["metrics_at_end"]:
            evaluate_metrics(model.encoder, source, folder, step=current)
        print(f"Wrote {folder}")
    return 0


def inspect_run(p, source):
    """--mode=evaluate (disentanglement metrics) or analyze (what each latent does)
    on a trained run's latest checkpoint, written into its folder."""
    folder = REPO / p["predictions_dir"] / p["run_name"]
    if p["mode"] == "evaluate" and p["dataset"] != "dsprites":
        raise RunFolderError(
            f"the metrics need ground-truth factors, which {p['dataset']} does not "
            "have: evaluate a dSprites run, or use --mode=analyze"
        )
    lock = RunLock(folder).acquire()  # not while it is training
    try:
        model = build_model(p, source.image_shape)
        if not Checkpoints(folder / "checkpoints", model=model).restore():
            raise RunFolderError(f"run {p['run_name']} has no checkpoint yet")
        step = latest_checkpoint_step(folder / "checkpoints")
        print(f"{p['mode'].capitalize()} {p['run_name']} at step {step}")
        if p["mode"] == "evaluate":
            evaluate_metrics(model.encoder, source, folder, step=step)
        else:
            analyze_run(model, source, folder)
    finally:
        lock.release()
    print(f"Wrote {folder}")
    return 0


def analyze_run(model, source, folder):
    images = to_float(source.read(fixed_indices(source.splits["test"], 1000)))
    summary = analyze(
        lambda x: visualize.encode_means(model, x),
        lambda z: np.asarray(model.decode(z)),
        np.asarray(images),
        folder,
    )
    print(
        f"{summary['active_latents']} active latents (KL > "
        f"{summary['active_threshold']} nats); most informative: "
        + ", ".join(f"z{i}" for i in summary["top_latents"])
    )


def build_model(p, image_shape):
    return BetaVAE(
        image_shape, p["conv_layers"], p["dense_layers"], p["latent_size"],
        p["activation"], p["precision"],
    )  # fmt: skip


def build_optimizer(p):
    optimizer = keras.optimizers.Adam(p["learning_rate"], beta_1=p["adam_beta_1"])
    if p["precision"] == "mixed_float16":
        # float16 gradients underflow below 6e-8: scale the loss up and the
        # gradients back down, dynamically (Micikevicius et al. 2018). bfloat16
        # has float32's range and needs no scaling.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def steps_in_next_call(current, p):
    """How many steps the next call trains: up to steps_per_call, ending at the
    next step that validates, saves or draws (or at num_steps), so that each of
    those happens at exactly its step, whatever steps_per_call is."""
    events = [p["num_steps"]] + [
        (current // p[k] + 1) * p[k]
        for k in ("validation_step", "checkpoint_step", "plot_step")
    ]
    return min(p["steps_per_call"], min(events) - current)


def write_final_artifacts(model, source, folder):
    """training.gif, loss_curves.png and kl_per_latent.png, drawn from the run
    folder's own files and the model."""
    composites = sorted((folder / "composites").glob("step_*.jpg"))
    if composites:
        save_gif(folder / "training.gif", composites)
    save_loss_curves(
        folder / "loss_curves.png",
        read_log_csv(folder / "log.csv"),
        read_log_csv(folder / "validation.csv"),
    )
    images = to_float(source.read(fixed_indices(source.splits["test"], 512)))
    z_mean, z_log_var = visualize.encode_means(model, images)
    kl = visualize.kl_per_latent_of(z_mean, z_log_var)
    save_kl_bars(folder / "kl_per_latent.png", kl)


class NoLog:
    """What a non-chief worker logs to: nothing (the chief logs the same values)."""

    def append(self, values):
        pass

    def write(self, split, step, values):
        pass

    def flush(self):
        pass

    close = flush


class StopRequest:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step, save a
    checkpoint and write the final artifacts, rather than die mid-write."""

    def __init__(self):
        self.requested = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(f"\n{self.requested}: stopping after this step…", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
