"""The train step and the validation losses as tf.functions, run on every replica
of a tf.distribute strategy (one device, several GPUs, or several machines).

`train_step` is the update itself, as in TensorFlow's CVAE tutorial: the losses
under a tape, the gradients, apply. Around it, the distribution plumbing: each
replica's share of the step's noise, the global-batch views some objectives need,
the reduction over replicas, and several steps per call (`steps_per_call`) looping
in the graph, so that the Python between steps is paid once per call, which
matters on an accelerator whose step takes a few milliseconds. Batches arrive as
uint8 and become floats on the device: a quarter of the bytes through tf.data and
across the host-to-device copy.
"""

import tensorflow as tf

from models import BatchView, compute_losses, permute_dims
from utils.data import to_float
from utils.objectives import logged_terms


def steps_in_next_call(current, p):
    """How many steps the next call trains: up to steps_per_call, ending at the
    next step that validates, saves or draws (or at num_steps), so that each of
    those happens at exactly its step, whatever steps_per_call is."""
    events = [p["num_steps"]] + [
        (current // p[k] + 1) * p[k]
        for k in ("validation_step", "checkpoint_step", "plot_step")
    ]
    return min(p["steps_per_call"], min(events) - current)


def train_step(model, optimizer, discriminator_optimizer, images, step, cfg, batch):
    """One update of the VAE (and of FactorVAE's discriminator, on its own loss and
    optimizer, from the same forward pass) → the step's per-example values."""
    with tf.GradientTape(persistent=True) as tape:
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


def make_steps(
    strategy, model, optimizers, step, cfg, global_batch, seed, jit_compile=False
):
    """(train_steps, validation_losses). `optimizers`: the VAE's and the
    discriminator's (or None). Gradients and logged values are the same on any
    number of devices. `jit_compile` compiles each replica's step with XLA."""
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
        out = compute_losses(model, images, step, cfg, batch)
        return replica_values({k: out[k] for k in keys}, batch)

    if jit_compile:  # each replica's step, as Keras does: the loop stays outside XLA
        replica_train_step = tf.function(replica_train_step, jit_compile=True)
        replica_validation_step = tf.function(replica_validation_step, jit_compile=True)

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
