"""Disentanglement metrics of a trained encoder on dSprites, into metrics.json.

The protocols push ~2.6 million samples through the encoder (the β-VAE score alone
takes 15,000 × 64 pairs), more than the 737,280 images dSprites has. So every image
is encoded once, in index order, and the metrics look codes up by index: the same
numbers as encoding each sample, for a fraction of the encoder time.
"""

import json
import time

import numpy as np
import tensorflow as tf

from utils.data import to_float
from utils.files import atomic_write_bytes
from utils.metrics import MetricSettings, evaluate_all

HEADLINES = ("beta_vae", "factor_vae", "mig", "dci_disentanglement")


def encode_all(encoder, source, batch_size=2048):
    """Encoder means of every image of `source`, in index order: (N, L) float32."""
    count = len(source.latents_classes)
    mean = tf.function(lambda images: encoder(to_float(images), training=False)[0])
    batches = (
        tf.data.Dataset.range(0, count, batch_size)
        .map(
            lambda start: tf.numpy_function(
                lambda s: source.read(np.arange(s, min(s + batch_size, count))),
                [start],
                tf.uint8,
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(2)
    )
    return np.concatenate([mean(images).numpy() for images in batches])


class IndexedCodes:
    """The dataset seen through a table of codes: its "images" are indices and
    representing one is a lookup, which is what utils.metrics needs."""

    def __init__(self, source, codes):
        self.source, self.codes = source, codes
        self.factor_sizes = source.factor_sizes

    def sample_classes(self, n, rng):
        return self.source.sample_classes(n, rng)

    def images_for_classes(self, classes):
        from utils.dsprites import classes_to_index

        return classes_to_index(classes)

    def represent(self, indices):
        return self.codes[indices]


def evaluate_metrics(encoder, source, folder, settings=None, step=None):
    """Encode, score, write `folder`/metrics.json, print a table; returns the dict."""
    settings = settings or MetricSettings()
    started = time.perf_counter()
    codes = encode_all(encoder, source)
    encoding_seconds = time.perf_counter() - started
    view = IndexedCodes(source, codes)
    results = evaluate_all(view, view.represent, settings)
    results["seconds"]["encode_dataset"] = encoding_seconds
    results["step"] = step
    results["num_images_encoded"] = len(codes)
    text = json.dumps(results, indent=2, default=float) + "\n"
    atomic_write_bytes(folder / "metrics.json", text, durable=True)
    print(format_table(results))
    return results


def format_table(results):
    rows = [("metric", "score", "seconds")]
    for name in HEADLINES:
        rows.append((name, f"{results[name]:.3f}", f"{results['seconds'][name]:.1f}"))
    rows.append(("(encoding)", "", f"{results['seconds']['encode_dataset']:.1f}"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{a:<{width[0]}}  {b:>{width[1]}}  {c:>{width[2]}}" for a, b, c in rows
    )
