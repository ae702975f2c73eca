"""Datasets as tf.data pipelines of batches, the same for every dataset and device
count.

A dataset ("source") is a uint8 array on disk or in memory with `read(indices)` →
(n, H, W, C) uint8 in 0..255 and `splits` of indices. The pipeline only moves
indices until the last moment: batch `s` takes positions [s·B, (s+1)·B) of an
epoch-wise seeded permutation (`tf.random.experimental.index_shuffle`), so the data
order is a pure function of the step. A resumed run therefore sees exactly the
batches an uninterrupted run would, and each replica can compute its own slice of
the global batch without coordination.
"""

import numpy as np
import tensorflow as tf

MIN_TEST_IMAGES = 3
NUM_TEST_IMAGES = 16  # shown in every composite, as the original
NUM_KL_IMAGES = 512  # test images on which latents are ranked by KL, everywhere


def split_problems(source, batch_size):
    """What the dataset's splits cannot do for a run with this batch size, as
    messages naming the split, its size and the fix; empty when all is well."""
    sizes = {split: len(indices) for split, indices in source.splits.items()}
    problems = []
    if sizes["train"] == 0:
        problems.append("the train split is empty: give the dataset training images")
    if sizes["validation"] < batch_size:
        problems.append(
            f"the validation split has {sizes['validation']} images, fewer than one "
            f"batch (batch_size={batch_size}): use --batch_size="
            f"{max(1, sizes['validation'])} or less, or give the split more images"
        )
    if sizes["test"] < MIN_TEST_IMAGES:
        problems.append(
            f"the test split has {sizes['test']} images; the step images need "
            f"{MIN_TEST_IMAGES} (interpolations between three encoded test images): "
            "give the split more images"
        )
    return problems


def to_float(images):
    """uint8 0..255 → float32 in [0, 1]."""
    return tf.cast(images, tf.float32) / 255.0


def test_sets(source):
    """The fixed test images of every run, as floats: those shown in the
    composites, and those on which latents are ranked by KL (in every figure that
    orders them)."""
    test = source.splits["test"]
    return (
        to_float(source.read(fixed_indices(test, NUM_TEST_IMAGES))),
        to_float(source.read(fixed_indices(test, NUM_KL_IMAGES))),
    )


def fixed_indices(indices, count, seed=1234):
    """`count` indices drawn once from a split, the same in every run: the test
    images shown in the plots and the validation subset."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(indices, size=min(count, len(indices)), replace=False))


def validation_batches(strategy, source, batches, global_batch):
    """The fixed validation subset (`batches` global batches of the validation
    split, the same in every run) as a distributed dataset: built once, iterated
    afresh at each validation."""
    indices = fixed_indices(source.splits["validation"], batches * global_batch)
    return distributed_batches(
        strategy, source, indices, global_batch,
        num_steps=len(indices) // global_batch,
    )  # fmt: skip


def distributed_batches(
    strategy, source, indices, global_batch, seed=None, start_step=0, num_steps=None
):
    """Per-replica batches for steps `start_step`, `start_step + 1`, … as a
    distributed dataset. With `seed`, each epoch is a fresh permutation of
    `indices`; without, they are read in order (validation)."""
    indices = np.asarray(indices, dtype=np.int64)
    count = len(indices)
    image_shape = tuple(source.image_shape)

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(global_batch)
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first_replica = context.input_pipeline_id * local
        table = tf.constant(indices)

        def chunk(element):
            # Element e is replica (e mod local)'s share of step (e div local).
            step = start_step + element // local
            replica = first_replica + element % local
            positions = (
                step * global_batch
                + replica * per_replica
                + tf.range(per_replica, dtype=tf.int64)
            )
            order = positions % count
            if seed is not None:
                order = _shuffled(order, positions // count, seed, count)
            return tf.gather(table, order)

        # `local` elements per step. Unbounded: 2**62 elements, not steps, since
        # 2**62 · local would overflow int64 with several local replicas.
        steps = tf.data.Dataset.range(
            num_steps * local if num_steps is not None else 2**62
        )
        images = steps.map(chunk).map(
            lambda idx: _read(source, idx, per_replica, image_shape),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return images.prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)


def _shuffled(order, epoch, seed, count):
    """Position → index under the permutation of its epoch. A batch can straddle two
    epochs; index_shuffle takes one seed per call, so compute both and pick."""
    first = epoch[0]
    shuffles = [
        tf.random.experimental.index_shuffle(
            order, tf.stack([tf.constant(seed, tf.int64), e]), count - 1
        )
        for e in (first, first + 1)
    ]
    return tf.where(epoch == first, shuffles[0], shuffles[1])


def _read(source, indices, batch, image_shape):
    images = tf.numpy_function(source.read, [indices], tf.uint8, stateful=False)
    images.set_shape((batch, *image_shape))
    return images  # uint8: a quarter of float32's bytes; the step converts
