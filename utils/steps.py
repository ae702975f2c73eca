"""The train steps and the validation losses as tf.functions, run on every replica
of a tf.distribute strategy (one device, several GPUs, or several machines).

Batches arrive as uint8 and become floats on the device: a quarter of the bytes
through tf.data and across the host-to-device copy. Several train steps run per
call (`steps_per_call`), looping in the graph, so that the Python between steps
(one call, one fetch of the logged values) is paid once per call, which matters on
an accelerator whose step takes a few milliseconds.
"""

import tensorflow as tf

from models import compute_losses
from utils.data import to_float

VALIDATION_KEYS = ("loss", "reconstruction_loss", "kl")


def make_steps(
    strategy, model, optimizer, step, cfg, global_batch, seed, jit_compile=False
):
    """(train_steps, validation_losses). Losses are summed per replica and divided
    by the *global* batch, so gradients and logged values are the same on any
    number of devices. `jit_compile` compiles each replica's step with XLA."""
    latent_size = model.latent_size
    keys = ("loss", "reconstruction_loss", "kl", "kl_per_latent", cfg.schedule_name)

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

    def replica_train_step(images, step_value):
        images = to_float(images)
        with tf.GradientTape() as tape:
            out = compute_losses(
                model, images, step_value, cfg, noise(images, step_value)
            )
            loss = tf.reduce_sum(out["loss"]) / global_batch
            # Mixed precision: a LossScaleOptimizer scales the loss so that float16
            # gradients do not underflow, and unscales them in apply; else a no-op.
            scaled = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(
            zip(gradients, model.trainable_variables, strict=True)
        )
        return {k: tf.cast(v, tf.float32) for k, v in batch_means(out).items()}

    def replica_validation_step(images):
        images = to_float(images)
        # Fixed noise: validation losses differ only by the weights.
        salt = tf.constant(-1, tf.int64)
        out = compute_losses(model, images, step, cfg, noise(images, salt))
        means = batch_means(out)
        return {k: means[k] for k in VALIDATION_KEYS}

    if jit_compile:  # each replica's step, as Keras does: the loop stays outside XLA
        replica_train_step = tf.function(replica_train_step, jit_compile=True)
        replica_validation_step = tf.function(replica_validation_step, jit_compile=True)

    @tf.function
    def train_steps(batches, count):
        """`count` (an int32 tensor: one trace for any count) train steps on the
        next batches of the iterator `batches` → each step's values, stacked."""
        stacked = {k: tf.TensorArray(tf.float32, size=count) for k in keys}
        for i in tf.range(count):
            values = reduce(
                strategy.run(
                    replica_train_step, args=(next(batches), step.read_value())
                )
            )
            step.assign_add(1)
            stacked = {k: stacked[k].write(i, values[k]) for k in keys}
        return {k: array.stack() for k, array in stacked.items()}

    @tf.function
    def validation_sums(batches):
        totals = {k: tf.constant(0.0) for k in VALIDATION_KEYS}
        count = tf.constant(0.0)
        for images in batches:
            values = reduce(strategy.run(replica_validation_step, args=(images,)))
            totals = {k: totals[k] + values[k] for k in totals}
            count += 1.0
        return totals, count

    def validation_losses(batches):
        """Mean losses over the distributed dataset `batches` (built once by the
        caller, iterated afresh each time), in one call: one fetch, not one per
        batch."""
        sums, count = validation_sums(batches)
        return {k: float(v) / float(count) for k, v in sums.items()}

    return train_steps, validation_losses
