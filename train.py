"""How a β-VAE is learnt: the training state, the step on one or many devices,
the schedule of validations, checkpoints and images, and the loop.

The step is the update itself, as in TensorFlow's CVAE tutorial: the losses under
a tape, the gradients, apply. Around it, the distribution plumbing: each replica's
share of the step's noise, the global-batch views some objectives need, the
reduction over replicas, and several steps per call (`steps_per_call`) looping in
the graph, so that the Python between steps is paid once per call, which matters
on an accelerator whose step takes a few milliseconds. Batches arrive as uint8 and
become floats on the device: a quarter of the bytes through tf.data and across
the host-to-device copy.

`build_training` is what both the loop and `python -m benchmark` train with.
"""

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import partial

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from models import (
    BatchView,
    ObjectiveSettings,
    build_model,
    build_optimizers,
    compute_losses,
    permute_dims,
    training_bytes_by_part,
)
from utils.data.factor_structure import training_indices, training_summary
from utils.data.pipeline import (
    NUM_KL_IMAGES,
    NUM_TEST_IMAGES,
    distributed_batches,
    test_sets,
    to_float,
    validation_batches,
)
from utils.devices.distribute import (
    discard_worker_checkpoints,
    is_chief,
    use_xla,
    worker_checkpoint_dir,
)
from utils.objectives import logged_terms, objective_of
from utils.outputs.end_of_run import finished_step, write_final_outputs
from utils.outputs.logs import RunLogs
from utils.outputs.metrics_file import (
    evaluate_holdout,
    training_metric_names,
    training_metrics,
)
from utils.outputs.step_images import (
    BackgroundDrawing,
    step_image_paths,
    step_images,
    step_images_bytes,
)
from utils.outputs.tensorboard import write_hparams
from utils.runs.checkpoints import Checkpoints
from utils.runs.folder import RunLock, record_parameters, rerun_command, write_status

# --- when things happen


@dataclass(frozen=True)
class EventSchedule:
    """The steps at which a run validates, saves a checkpoint and draws, and how
    many steps each call trains: the one rule the loop and the benchmark share."""

    num_steps: int
    validation_step: int
    checkpoint_step: int
    plot_step: int
    steps_per_call: int = 1
    metrics_step: int = 0  # 0: no metrics during training

    @classmethod
    def of(cls, p):
        return cls(
            p["num_steps"], p["validation_step"], p["checkpoint_step"],
            p["plot_step"], p.get("steps_per_call", 1), p.get("metrics_step", 0),
        )  # fmt: skip

    def validates(self, step):
        return step % self.validation_step == 0 or step == self.num_steps

    def saves(self, step):
        return step % self.checkpoint_step == 0 or step == self.num_steps

    def draws(self, step):
        return step % self.plot_step == 0 or step == self.num_steps

    def measures(self, step):
        """The fast protocol's metrics at this step (metrics_step)."""
        return bool(self.metrics_step) and step % self.metrics_step == 0

    def steps_in_next_call(self, current):
        """Up to steps_per_call, ending at the next step that validates, saves,
        draws or measures (or at num_steps), so that each of those happens at
        exactly its step, whatever steps_per_call is."""
        every = (self.validation_step, self.checkpoint_step, self.plot_step)
        every += (self.metrics_step,) * bool(self.metrics_step)
        events = [self.num_steps] + [(current // k + 1) * k for k in every]
        return min(self.steps_per_call, min(events) - current)

    def call_ends(self):
        """The steps at which calls end (their steps are logged together)."""
        ends, current = [], 0
        while current < self.num_steps:
            current += self.steps_in_next_call(current)
            ends.append(current)
        return ends


# --- whether this machine can hold it


TENSORFLOW_BYTES = 2**30  # a training process's own memory before its model (README)


def check_memory(p):
    """Refuse, before any work, a run whose training and step images would need
    more memory than this machine has: a latent size or an image size that would
    otherwise end in the kernel's OOM kill, with no message."""
    from utils.data import info
    from utils.settings.cli import UsageError

    channels = info(p["dataset"]).channels
    shape = (p["image_size"], p["image_size"], channels)
    parts = training_bytes_by_part(p, shape)
    parts["images"] = step_images_bytes(
        shape, p["latent_size"], NUM_KL_IMAGES, NUM_TEST_IMAGES, p["conv_layers"][0][0]
    )
    need = TENSORFLOW_BYTES + sum(parts.values())
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.9 * have:
        layers = f"conv_layers={p['conv_layers']}, dense_layers={p['dense_layers']}"
        what = {  # what each part grows with: the settings to lower
            "weights": f"weights and optimizer state for {layers}, "
            f"latent_size={p['latent_size']}",
            "activations": f"activations for batch_size={p['batch_size']} at "
            f"image_size={p['image_size']} through {layers}",
            "images": f"step images for latent_size={p['latent_size']} at "
            f"image_size={p['image_size']}",
        }
        largest_first = sorted(parts, key=parts.get, reverse=True)
        listed = "; ".join(
            f"{what[k]}: {parts[k] / 2**30:.1f} GB" for k in largest_first
        )
        raise UsageError(
            f"this run would need about {need / 2**30:.1f} GB of memory ({listed}), "
            f"more than this machine's {have / 2**30:.1f} GB: lower the settings of "
            "the largest part"
        )


# --- what a checkpoint holds, and a resume restores


SELECTED_ON = "negative_elbo"  # the validation loss that selects best/ and stops


@dataclass
class TrainingState:
    """Everything a resume restores. `parameters`: the run's parameters as JSON, so
    that a run whose params.json is lost can still be checked and resumed."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    discriminator_optimizer: keras.optimizers.Optimizer | None
    step: tf.Variable
    best_validation_loss: tf.Variable  # the lowest validation negative ELBO yet
    validations_without_improvement: tf.Variable
    parameters: tf.Variable

    @classmethod
    def new(cls, p, image_shape, strategy):
        """A fresh state for the parameters `p`, its variables mirrored by
        `strategy`; the weights are seeded by p["seed"]."""
        keras.utils.set_random_seed(p["seed"])
        with strategy.scope():
            model = build_model(p, image_shape)
            optimizer, discriminator_optimizer = build_optimizers(p, model)
            step = tf.Variable(0, dtype=tf.int64, name="step")
            best = tf.Variable(np.inf, dtype=tf.float64)
            stale = tf.Variable(0, dtype=tf.int64)
        # A string: on the host, not mirrored (no device holds string variables).
        with tf.device("/cpu:0"):
            text = tf.Variable(json.dumps(p, sort_keys=True), dtype=tf.string)
        return cls(model, optimizer, discriminator_optimizer, step, best, stale, text)

    def trackables(self):
        return {k: v for k, v in vars(self).items() if v is not None}

    def record_validation(self, losses):
        """Early-stopping state after a validation → whether it is the best yet.
        Selection uses the negative ELBO, which does not depend on the step: the
        objective's own loss rises under a β warm-up, or falls under a decrease,
        whatever the model does."""
        improved = losses[SELECTED_ON] < self.best_validation_loss.numpy()
        if improved:
            self.best_validation_loss.assign(losses[SELECTED_ON])
            self.validations_without_improvement.assign(0)
        else:
            self.validations_without_improvement.assign_add(1)
        return improved


# --- what the loop and the benchmark train with


@dataclass
class Training:
    state: TrainingState
    train_steps: object  # (batches, count) -> {name: (count, …) array}
    validation_losses: object  # (distributed batches) -> {name: mean}


def build_training(p, image_shape, strategy, jit_compile=None) -> Training:
    """A fresh TrainingState for `p` and its step functions. `jit_compile`: None
    for the run's own choice (p["jit_compile"] on this strategy)."""
    state = TrainingState.new(p, image_shape, strategy)
    if jit_compile is None:
        jit_compile = use_xla(p["jit_compile"], strategy)
    train_steps, validation_losses = make_steps(
        strategy, state.model, (state.optimizer, state.discriminator_optimizer),
        state.step, ObjectiveSettings.of(p), p["batch_size"], p["seed"],
        jit_compile=jit_compile,
    )  # fmt: skip
    return Training(state, train_steps, validation_losses)


# --- the step, and its plumbing over replicas


def train_step(model, optimizer, discriminator_optimizer, images, step, cfg, batch):
    """One update of the VAE (and of FactorVAE's discriminator, on its own loss and
    optimizer, from the same forward pass) → the step's per-example values."""
    # Persistent only when a second gradient (the discriminator's) is taken.
    with tf.GradientTape(persistent=bool(discriminator_optimizer)) as tape:
        out = compute_losses(model, images, step, cfg, batch)
        # Mixed precision: a LossScaleOptimizer scales the loss so that float16
        # gradients do not underflow, and unscales them in apply; else a no-op.
        loss = optimizer.scale_loss(batch.mean(out["loss"]))
        if discriminator_optimizer:
            discriminator_loss = batch.mean(out["discriminator_loss"])
    apply(optimizer, tape.gradient(loss, model.vae_variables), model.vae_variables)
    if discriminator_optimizer:
        variables = model.discriminator.trainable_variables
        gradients = tape.gradient(discriminator_loss, variables)
        apply(discriminator_optimizer, gradients, variables)
    return out


def apply(optimizer, gradients, variables):
    optimizer.apply_gradients(zip(gradients, variables, strict=True))


# --- the plumbing: replicas, their share of the global batch, several steps a call


class ReplicaBatch(BatchView):
    """This replica's view of the global batch of `global_batch` examples: its
    slice of the global noise and permutation (functions of the seed and the step,
    so an example gets the same on any number of replicas, and on a resume), the
    global batch's values by all-gather, and means over the global batch."""

    def __init__(self, images, latent_size, global_batch, seed, salt):
        context = tf.distribute.get_replica_context()
        count = tf.shape(images)[0]
        self.start = context.replica_id_in_sync_group * count
        self.count, self.global_batch = count, global_batch
        self.seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(salt, tf.int64)])
        noise = tf.random.stateless_normal((global_batch, latent_size), self.seed)
        self.epsilon = self.mine(noise)
        self.context = context

    def mine(self, everyone):
        return everyone[self.start : self.start + self.count]

    def gather(self, x):
        return self.context.all_gather(x, axis=0)

    def shuffle(self, z):
        seed = tf.random.experimental.stateless_fold_in(self.seed, 1)
        return self.mine(permute_dims(self.gather(z), seed))

    def mean(self, per_example):
        """This replica's share of the mean over the global batch: the replicas'
        gradients sum to the gradient of the global mean."""
        return tf.reduce_sum(per_example, axis=0) / self.global_batch


def replica_values(out, batch):
    """Per-example values → this replica's share of the global mean, to be summed
    over replicas; scalars (β, C, DIP's penalties) are already the global
    batch's, the same on every replica: (shares, same)."""
    shares = {k: batch.mean(v) for k, v in out.items() if v.shape.rank}
    same = {k: v for k, v in out.items() if not v.shape.rank}
    return {k: tf.cast(v, tf.float32) for k, v in shares.items()}, same


def reduce(strategy, per_replica):
    """The replicas' (shares, same) → one dict: shares summed, the same averaged."""
    shares, same = per_replica
    sum_, mean = tf.distribute.ReduceOp.SUM, tf.distribute.ReduceOp.MEAN
    return {
        **{k: strategy.reduce(sum_, v, axis=None) for k, v in shares.items()},
        **{k: strategy.reduce(mean, v, axis=None) for k, v in same.items()},
    }


def replica_steps(model, optimizers, step, cfg, global_batch, seed, jit_compile):
    """What each replica runs: (its train step, its validation step), compiled
    with XLA if asked, as Keras does (the loop over steps stays outside XLA)."""
    optimizer, discriminator_optimizer = optimizers
    keys = logged_terms({"objective": cfg.objective})

    def replica_train_step(images, step_value):
        images = to_float(images)
        batch = ReplicaBatch(images, model.latent_size, global_batch, seed, step_value)
        out = train_step(
            model, optimizer, discriminator_optimizer, images, step_value, cfg, batch
        )
        return replica_values(out, batch)

    def replica_validation_step(images):
        images = to_float(images)
        # Fixed noise: validation losses differ only by the weights.
        batch = ReplicaBatch(images, model.latent_size, global_batch, seed, -1)
        out = compute_losses(model, images, step, cfg, batch, training=False)
        return replica_values({k: out[k] for k in keys}, batch)

    if jit_compile:
        replica_train_step = tf.function(replica_train_step, jit_compile=True)
        replica_validation_step = tf.function(replica_validation_step, jit_compile=True)
    return replica_train_step, replica_validation_step


def make_steps(
    strategy, model, optimizers, step, cfg, global_batch, seed, jit_compile=False
):
    """(train_steps, validation_losses). `optimizers`: the VAE's and the
    discriminator's (or None). Gradients and logged values are the same on any
    number of devices. `jit_compile` compiles each replica's step with XLA."""
    keys = logged_terms({"objective": cfg.objective})
    replica_train_step, replica_validation_step = replica_steps(
        model, optimizers, step, cfg, global_batch, seed, jit_compile
    )

    @tf.function
    def train_call(batches, count):
        """`count` (an int32 tensor: one trace for any count) train steps on the
        next batches of the iterator `batches` → each step's values, stacked."""
        names = [*keys, "kl_per_latent"]
        stacked = {k: tf.TensorArray(tf.float32, size=count) for k in names}
        for i in tf.range(count):
            values = reduce(
                strategy,
                strategy.run(
                    replica_train_step, args=(next(batches), step.read_value())
                ),
            )
            step.assign_add(1)
            stacked = {k: stacked[k].write(i, values[k]) for k in names}
        return {k: array.stack() for k, array in stacked.items()}

    @tf.function
    def validation_sums(batches):
        totals = {k: tf.constant(0.0) for k in keys}
        count = tf.constant(0.0)
        for images in batches:
            values = reduce(
                strategy, strategy.run(replica_validation_step, args=(images,))
            )
            totals = {k: totals[k] + values[k] for k in keys}
            count += 1.0
        return totals, count

    def train_steps(batches, count):
        """`count` steps in one call → {name: (count, …) array}: one fetch."""
        values = train_call(batches, tf.constant(count, tf.int32))
        return {k: v.numpy() for k, v in values.items()}

    def validation_losses(batches):
        """Mean losses over the distributed dataset `batches` (built once by the
        caller, iterated afresh each time), in one call: one fetch, not one per
        batch."""
        sums, count = validation_sums(batches)
        return {k: float(v) / float(count) for k, v in sums.items()}

    return train_steps, validation_losses


# --- the loop


def train(p, folder, source, strategy, stop, params_file):
    """Train the run in `folder` (new, or resumed from its checkpoint) to its end,
    then write its final outputs → exit code (1: the loss diverged)."""
    chief = is_chief(strategy)  # only the chief writes into the run folder
    multi_worker_chief = chief and p["strategy"] == "multi_worker"
    lock = RunLock(folder).acquire() if multi_worker_chief else None
    try:
        # --- model, optimizers, and the state a resume needs (all in the checkpoint)
        training = build_training(p, source.image_shape, strategy)
        state = training.state
        writes_to = worker_checkpoint_dir(folder / "checkpoints", strategy)
        checkpoints = Checkpoints(
            folder / "checkpoints", writes_to, **state.trackables()
        )
        if checkpoints.restore():
            print(f"Restored the checkpoint of step {int(state.step.numpy())}")
            state.optimizer.learning_rate = p["learning_rate"]  # resumable
        state.parameters.assign(json.dumps(p, sort_keys=True))
        if chief:
            record_parameters(folder, p, params_file)
            describe_in_tensorboard(p, folder)
        trained = finished_step(p, folder) is None
        outcome = "finished"
        if trained:
            loop = Loop(p, folder, source, strategy, training, checkpoints)
            outcome = loop.run(stop)
        if outcome == "diverged":
            return 1
        if chief:
            stop.at_once()  # from here a stop request stops now: the rerun finishes
            step, results = int(state.step.numpy()), outcome == "finished"
            if results and p.get("holdout"):  # first: the metrics keep its block
                evaluate_holdout(state.model, source, folder, p, step)
            write_final_outputs(p, folder, state.model, source, step, trained, results)
            print(f"Wrote {folder}")
        return 0
    finally:
        if lock:
            lock.release()


def describe_in_tensorboard(p, folder):
    """The run's parameters, with its validation and disentanglement numbers as
    columns, in TensorBoard's HPARAMS tab: a sweep becomes one sortable table."""
    from utils.metrics import headline_names

    validation = ("negative_elbo", "reconstruction_loss", "kl")
    columns = [f"validation/{k}" for k in validation]
    columns += [f"metrics/{k}" for k in headline_names()]
    varying = ("objective", *objective_of(p).parameters, "seed")
    varying += tuple(k for k in ("factor_correlation", "holdout") if p.get(k))
    # A dict (holdout) as its JSON text: the tab holds text, numbers and booleans.
    shown = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in p.items()}
    write_hparams(folder / "tensorboard", shown, columns, varying=varying)


class Loop:
    """Train to num_steps or an early stop ("finished"), or until a stop request
    ("stopped") or a loss that is not finite ("diverged"): `steps_per_call` steps
    per call, or fewer to land on the steps that validate, save or draw."""

    def __init__(self, p, folder, source, strategy, training, checkpoints):
        self.p, self.folder, self.strategy = p, folder, strategy
        self.training, self.state = training, training.state
        self.checkpoints, self.schedule = checkpoints, EventSchedule.of(p)
        self.chief = is_chief(strategy)
        self.current = int(self.state.step.numpy())
        # --- data: batches are a pure function of the step, so a resume continues
        self.test_images, self.kl_images = test_sets(source)
        self.validation_data = validation_batches(
            strategy, source, p["validation_batches"], p["batch_size"]
        )
        # The train split, or the images a factor_correlation or holdout leaves:
        # fixed, the same on a resume (utils/data/factor_structure.py).
        structure = p.get("factor_correlation"), p.get("holdout")
        train = training_indices(source, *structure, seed=p["seed"])
        if summary := training_summary(source, *structure, train):
            print(summary)
        self.train_batches = iter(
            distributed_batches(
                strategy, source, train, p["batch_size"], seed=p["seed"],
                start_step=self.current,
            )
        )  # fmt: skip
        # --- logs: stable column names, which become CSV headers and TensorBoard tags
        self.terms = logged_terms(p)
        self.source = source
        measured = training_metric_names() if p.get("metrics_step") else ()
        self.logs = RunLogs(
            folder, self.terms, p["latent_size"], self.current, self.chief, measured
        )
        self.drawing = BackgroundDrawing()

    def validate(self):
        """Log the validation losses, keep the best; True when it is time to stop."""
        losses = self.training.validation_losses(self.validation_data)
        self.logs.validation(self.current, losses)
        if self.state.record_validation(losses):
            self.save(best=True)
        patience = self.p["early_stopping_patience"]
        stale = int(self.state.validations_without_improvement.numpy())
        return bool(patience) and stale >= patience

    def save(self, best=False):
        self.logs.flush()  # every row up to the checkpoint's step is on disk before it
        self.checkpoints.save(self.current, best=best)  # every worker takes part
        discard_worker_checkpoints(self.folder / "checkpoints", self.strategy)

    def measure(self):
        """metrics_step: the fast protocol's metrics of the encoder as it is now,
        into metrics_during_training.csv and TensorBoard (Locatello et al. 2019
        score only the end; this shows when the latents align with the factors)."""
        if self.chief:  # the others go on to the next step's collective and wait
            self.logs.metrics(
                self.current, training_metrics(self.state.model, self.source)
            )

    def draw(self):
        images = step_images(
            self.state.model, self.test_images, self.kl_images, self.folder,
            self.current,
        )  # fmt: skip
        then = partial(self.logs.images, self.current)  # TensorBoard
        self.drawing.submit(images, then=then)

    def run(self, stop):
        p = self.p
        print(
            f"{'Resuming' if self.current else 'Starting'} {p['run_name']} → "
            f"{self.folder}"
        )
        progress = tqdm(
            total=p["num_steps"], initial=self.current, unit="step",
            mininterval=1.0, dynamic_ncols=True,
        )  # fmt: skip
        started = time.time()
        if self.chief:
            write_status(self.folder, "training", self.current, p["num_steps"], "")
            # A kill after a drawing step's checkpoint, before its images were on
            # disk (they are drawn in a thread after it): the restored model is the
            # one that would have drawn them.
            resumed_at = self.current
            if (
                resumed_at
                and self.schedule.draws(resumed_at)
                and not all(
                    path.exists() for path in step_image_paths(self.folder, resumed_at)
                )
            ):
                self.draw()
        try:
            final = stopping = False
            while not (final or stopping):
                final, stopping = self.one_call(stop, progress)
        except Diverged:
            progress.close()
            # The rows up to the bad step show why it diverged: on disk, not dropped
            # (a resume from the last good checkpoint replaces them).
            self.drawing.close()
            self.logs.close()
            return "diverged"
        except BaseException:
            # Keep the rows already logged; report the error that stopped the
            # run, not one that closing the files after it may raise (full disk).
            close_after_a_fault(progress, self.drawing, self.logs)
            raise
        progress.close()
        self.drawing.close()  # the last images: before training.gif, TensorBoard
        self.logs.close()
        stopped = not final and stopping  # a request that came before the end
        return end_of_session(
            p, self.folder, self.chief, self.current, stopped, started
        )

    def one_call(self, stop, progress):
        """One call's steps and the events due at its end → (final, stopping)."""
        count = self.schedule.steps_in_next_call(self.current)
        values = self.training.train_steps(self.train_batches, count)
        bad = log_steps(self.logs, values, self.current, self.p["log_step"])
        if bad:
            loss = values["loss"][bad - self.current - 1]
            diverged(self.p, self.folder, self.checkpoints, bad, loss)
            raise Diverged
        self.current += count
        show_progress(progress, values, count, self.terms)
        final = self.current == self.p["num_steps"]
        if self.schedule.validates(self.current):
            final |= self.validate()  # True: early stopping says stop
        stopping = stop.requested  # read once: a signal may come at any moment
        if self.schedule.saves(self.current) or final or stopping:
            self.save()
        if self.schedule.measures(self.current):
            self.measure()
        if self.chief and (self.schedule.draws(self.current) or final or stopping):
            self.draw()  # only the chief writes into the run folder
        return final, stopping


class Diverged(Exception):
    """A loss that is not finite: the run is kept as of its last good checkpoint."""


def close_after_a_fault(*closables):
    for closable in closables:
        with contextlib.suppress(Exception):
            closable.close()


def log_steps(logs, values, first, log_step):
    """Log a call's steps (those after `first`, every `log_step`) → the first
    step whose loss is not finite, or None."""
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
            "The results (metrics, exports) are written when the run finishes; to "
            f"resume: {rerun_command(p['run_name'])}"
        )
    return outcome


def diverged(p, folder, checkpoints, step, loss):
    # This loss came from the weights saved at the step before, if any.
    kept, lower = checkpoints.discard(step - 1), p["learning_rate"] / 10
    write_status(folder, "diverged", step, p["num_steps"], f"loss {loss}")
    kept = (
        f"The run is kept as of its last good checkpoint (step {kept}): rerun with "
        "a lower learning rate to resume from there"
        if kept
        else "It diverged before its first checkpoint: rerun with a lower learning "
        "rate to start again from step 0"
    )
    print(
        f"error: the loss became {loss} at step {step}. {kept}: "
        f"{rerun_command(p['run_name'], learning_rate=format(lower, 'g'))}",
        file=sys.stderr,
    )
