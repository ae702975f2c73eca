"""The train step and the validation losses as tf.functions, run on every replica
of a tf.distribute strategy (one device, several GPUs, or several machines)."""

import tensorflow as tf

from models import compute_losses
from utils.data import distributed_batches


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
