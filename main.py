"""Train a β-VAE: `python main.py [--name=value ...]` (see params.py, or --help).

The story of a run, top to bottom: parameters → run folder → data → model → training
loop → final artifacts, all written into predictions/<run_name>/.
"""

import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ chatter (e.g. "no CUDA")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from models import BetaVAE, ObjectiveSettings, compute_losses  # noqa: E402
from utils import cli, config, visualize  # noqa: E402
from utils.checkpoints import Checkpoints, latest_checkpoint_step  # noqa: E402
from utils.data import (
    DataNotFound,
    distributed_batches,
    fixed_indices,  # noqa: E402
    load_source,
    to_float,
)
from utils.images import save_gif  # noqa: E402
from utils.logs import CsvLog, TensorBoard  # noqa: E402
from utils.plots import read_log_csv, save_kl_bars, save_loss_curves  # noqa: E402
from utils.run_folder import (
    RunFolderError,
    RunLock,
    default_run_name,  # noqa: E402
    record_parameters,
    saved_parameters,
    unused_name,
)

REPO = Path(__file__).resolve().parent
PREDICTIONS = REPO / "predictions"
NUM_TEST_IMAGES = 16  # shown in every composite, as the original


def main(argv=None):
    # --- parameters: params.py, then the command line, checked before any work
    import params

    specs = cli.read_params(params)
    try:
        p, _ = cli.parse_command_line(specs, argv)
        errors = config.validate(p)
        if errors:
            raise cli.UsageError("invalid parameters:\n  " + "\n  ".join(errors))
    except cli.UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return train(p, Path(params.__file__))
    except (DataNotFound, RunFolderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def train(p, params_file):
    # --- run folder: a new one, or the named run resumed; never another's files
    run_name = p["run_name"] or unused_name(PREDICTIONS, default_run_name(p))
    p = {**p, "run_name": run_name}
    folder = PREDICTIONS / run_name
    folder.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder).acquire()
    try:
        saved_parameters(folder, p)  # raises if the folder holds another experiment
        done = latest_checkpoint_step(folder / "checkpoints")
        if done >= p["num_steps"]:
            print(
                f"Run {run_name} has already trained {done} steps (num_steps="
                f"{p['num_steps']}): nothing to do. Raise --num_steps to train "
                "longer."
            )
            return 0
        record_parameters(folder, p, params_file)
        return _train(p, folder, resume_step=done)
    finally:
        lock.release()


def _train(p, folder, resume_step):
    print(
        f"{'Resuming' if resume_step else 'Starting'} run {p['run_name']} "
        f"at step {resume_step} → {folder}"
    )
    keras.utils.set_random_seed(p["seed"])
    strategy = tf.distribute.get_strategy()  # one device

    # --- data
    source = load_source(
        p["dataset"], REPO / p["data_dir"], p["image_size"], p["crop_size"]
    )
    print(f"Data: {source.source}")
    test_images = to_float(
        source.read(fixed_indices(source.splits["test"], NUM_TEST_IMAGES))
    )
    validation_indices = fixed_indices(
        source.splits["validation"], p["validation_batches"] * p["batch_size"]
    )
    train_batches = iter(
        distributed_batches(
            strategy,
            source,
            source.splits["train"],
            p["batch_size"],
            seed=p["seed"],
            start_step=resume_step,
        )
    )

    # --- model, optimizer and the state a resume needs
    with strategy.scope():
        model = BetaVAE(
            source.image_shape,
            p["conv_layers"],
            p["dense_layers"],
            p["latent_size"],
            p["activation"],
        )
        optimizer = keras.optimizers.Adam(p["learning_rate"], beta_1=p["adam_beta_1"])
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, name="step")
        best_validation_loss = tf.Variable(np.inf, dtype=tf.float64)
        validations_without_improvement = tf.Variable(0, dtype=tf.int64)
    checkpoints = Checkpoints(
        folder / "checkpoints",
        model=model,
        optimizer=optimizer,
        step=step,
        best_validation_loss=best_validation_loss,
        validations_without_improvement=validations_without_improvement,
    )
    if checkpoints.restore():
        print(f"Restored checkpoint at step {int(step.numpy())}")
    cfg = ObjectiveSettings(
        **{
            k: p[k]
            for k in (
                "objective",
                "beta",
                "beta_schedule",
                "beta_start",
                "beta_steps",
                "gamma",
                "capacity_max",
                "capacity_steps",
                "reconstruction_loss",
            )
        }
    )
    train_step, validation_losses = make_steps(
        strategy, model, optimizer, step, cfg, p["batch_size"], p["seed"]
    )

    # --- logs
    latents = [f"kl_z{i}" for i in range(p["latent_size"])]
    scalars = ["loss", "reconstruction_loss", "kl", cfg.schedule_name]
    log = CsvLog(folder / "log.csv", ["step", *scalars, *latents], resume_step)
    validation_log = CsvLog(
        folder / "validation.csv",
        ["step", "loss", "reconstruction_loss", "kl"],
        resume_step,
    )
    tensorboard = TensorBoard(folder / "tensorboard")

    # --- the loop
    stop = StopRequest()
    reason = "reached num_steps"
    current = int(step.numpy())
    progress = tqdm(
        total=p["num_steps"],
        initial=current,
        mininterval=1.0,
        unit="step",
        dynamic_ncols=True,
    )
    started = time.time()
    while current < p["num_steps"]:
        values = {k: v.numpy() for k, v in train_step(next(train_batches)).items()}
        current += 1
        if not np.isfinite(values["loss"]):
            progress.close()
            print(
                f"error: the loss became {values['loss']} at step {current}. "
                f"The last good checkpoint (step {checkpoints.latest_step()}) is "
                "kept; lower --learning_rate or β and rerun the same command.",
                file=sys.stderr,
            )
            return 1
        if current % p["log_step"] == 0:
            row = {
                "step": current,
                **{k: values[k] for k in scalars},
                **dict(zip(latents, values["kl_per_latent"], strict=True)),
            }
            log.append(row)
            tensorboard.write("train", current, {k: values[k] for k in scalars})
        progress.update(1)
        progress.set_postfix({k: f"{values[k]:.4g}" for k in scalars}, refresh=False)
        final = current == p["num_steps"]

        if current % p["validation_step"] == 0 or final:
            losses = validation_losses(validation_indices, source)
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
                reason, final = (
                    f"early stop: {patience} validations without improvement",
                    True,
                )
            _save(
                checkpoints, current, [log, validation_log], tensorboard, best=improved
            )
        if current % p["checkpoint_step"] == 0 or final or stop.requested:
            _save(checkpoints, current, [log, validation_log], tensorboard)
        if current % p["plot_step"] == 0 or final or stop.requested:
            visualize.save_step_images(model, test_images, folder, current)
        if final or stop.requested:
            reason = reason if final else f"stopped by {stop.requested}"
            break
    progress.close()
    log.close()
    validation_log.close()
    minutes = (time.time() - started) / 60
    print(f"Step {current}: {reason} ({minutes:.1f} min this session)")

    # --- final artifacts: what a user opens first
    write_final_artifacts(model, source, folder)
    print(f"Wrote {folder}")
    return 0


def make_steps(strategy, model, optimizer, step, cfg, global_batch, seed):
    """The train step and the validation loss, as tf.functions over replicas.
    Losses are summed per replica and divided by the *global* batch, so gradients
    and logged values are the same on any number of devices."""
    latent_size = model.latent_size

    def noise(images, salt):
        # The whole global batch's noise, sliced to this replica's share: the same
        # sample for an example on any number of replicas, and on a resume.
        context = tf.distribute.get_replica_context()
        count = tf.shape(images)[0]
        start = context.replica_id_in_sync_group * count
        full = tf.random.stateless_normal(
            (global_batch, latent_size), tf.stack([tf.cast(seed, tf.int64), salt])
        )
        return full[start : start + count]

    def batch_means(out):
        return {
            k: (tf.reduce_sum(v, axis=0) / global_batch if v.shape.rank else v)
            for k, v in out.items()
        }

    def reduce(per_replica):
        return {
            k: strategy.reduce(
                tf.distribute.ReduceOp.MEAN
                if k == cfg.schedule_name
                else tf.distribute.ReduceOp.SUM,
                v,
                axis=None,
            )
            for k, v in per_replica.items()
        }

    @tf.function
    def train_step(images):
        def replica_step(images):
            with tf.GradientTape() as tape:
                out = compute_losses(model, images, step, cfg, noise(images, step))
                loss = tf.reduce_sum(out["loss"]) / global_batch
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                zip(gradients, model.trainable_variables, strict=True)
            )
            return batch_means(out)

        values = reduce(strategy.run(replica_step, args=(images,)))
        step.assign_add(1)
        return values

    @tf.function
    def validation_step(images):
        def replica_step(images):
            # Fixed noise: validation losses differ only by the weights.
            out = compute_losses(
                model, images, step, cfg, noise(images, tf.constant(-1, tf.int64))
            )
            return batch_means(out)

        return reduce(strategy.run(replica_step, args=(images,)))

    def validation_losses(indices, source):
        batches = len(indices) // global_batch
        dataset = distributed_batches(
            strategy, source, indices, global_batch, num_steps=batches
        )
        totals = {}
        for images in dataset:
            for k, v in validation_step(images).items():
                if k in ("loss", "reconstruction_loss", "kl"):
                    totals[k] = totals.get(k, 0.0) + float(v) / batches
        return totals

    return train_step, validation_losses


def _save(checkpoints, step, logs, tensorboard, best=False):
    # Logs first: every row up to the checkpoint's step is on disk before it.
    for log in logs:
        log.flush()
    tensorboard.flush()
    checkpoints.save(step, best=best)


def write_final_artifacts(model, source, folder):
    """training.gif, loss_curves.png and kl_per_latent.png, from the run folder's
    own files, so they can be redrawn any time."""
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
    save_kl_bars(
        folder / "kl_per_latent.png", visualize.kl_per_latent_of(z_mean, z_log_var)
    )


class StopRequest:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step, save a
    checkpoint and write the final artifacts, instead of dying mid-write."""

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
