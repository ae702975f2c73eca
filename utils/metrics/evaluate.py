"""Every registered metric of a trained encoder on a ground-truth dataset, with
the provenance of each number (utils/outputs/metrics_file.py writes them).

The reference protocols draw ~3 million samples, more than the 737,280 images
dSprites has. So each image is encoded at most once per evaluation, when a metric
first asks for it, and kept (mean and log-variance): the same numbers as encoding
every sample, for a fraction of the encoder time, shared by all metrics.
"""

import datetime
import time

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from utils.data.pipeline import to_float
from utils.metrics import REGISTRY
from utils.metrics.base import suffix
from utils.metrics.provenance import cpu, versions

ENCODER_BATCH = 2048
REPRESENTATIONS = ("mean", "sampled")
SEED = 0  # disentanglement_lib's evaluation.random_seed, for every metric


class EncodedDataset:
    """The images as seen through the encoder: representing an index is encoding
    its image once, then looking its code up. `sampled` draws z ~ q(z|x) anew at
    every look-up (disentanglement_lib's sampled representation), from a generator
    that `begin(metric)` resets, so that each metric's noise is its own."""

    def __init__(self, source, encoder, representation="mean"):
        self.source, self.representation = source, representation
        # Any number of images: one trace, not one per chunk size (~90 ms each).
        images = tf.TensorSpec((None, *source.image_shape), tf.uint8)
        self.encode = tf.function(
            lambda x: encoder(to_float(x), training=False)[:2], input_signature=[images]
        )
        self.mean = self.log_var = None
        self.encoded = np.zeros(source.num_images, dtype=bool)
        self.seconds, self.noise = 0.0, None

    def kl_per_latent(self) -> np.ndarray:
        """Mean KL(q(z_j|x) ‖ N(0, 1)) per latent over the images encoded."""
        mean = self.mean[self.encoded].astype(np.float64)
        log_var = self.log_var[self.encoded].astype(np.float64)
        return (0.5 * (mean**2 + np.exp(log_var) - 1.0 - log_var)).mean(axis=0)

    def begin(self, stream: int):
        self.noise = np.random.default_rng([SEED, stream])

    def represent(self, indices):
        indices = np.asarray(indices)
        new = np.unique(indices[~self.encoded[indices]])
        started = time.perf_counter()
        for start in range(0, len(new), ENCODER_BATCH):
            chunk = new[start : start + ENCODER_BATCH]
            mean, log_var = (t.numpy() for t in self.encode(self.source.read(chunk)))
            if self.mean is None:
                shape = (len(self.encoded), mean.shape[1])
                self.mean, self.log_var = (
                    np.zeros(shape, np.float32),
                    np.zeros(shape, np.float32),
                )
            self.mean[chunk], self.log_var[chunk] = mean, log_var
            self.encoded[chunk] = True
        self.seconds += time.perf_counter() - started
        if self.representation == "mean":
            return self.mean[indices]
        std = np.exp(0.5 * self.log_var[indices].astype(np.float64))
        return self.mean[indices] + std * self.noise.standard_normal(std.shape)


def evaluate_all(ds, represent, protocol="reference", quiet=False, begin=None,
                 names=None, settings=None) -> dict:  # fmt: skip
    """Every registered metric (or those in `names`) under `protocol` (its settings
    replaced by `settings[name]` where given) → {headline: score, "details",
    "settings", "seconds"}; a tqdm bar per metric. Each metric
    draws from its own RandomState(0), as disentanglement_lib evaluates each
    metric in a run of its own: a metric's number does not depend on the others."""
    result = {"details": {}, "settings": {}, "seconds": {}, "estimators": {}}
    num_factors = len(ds.scored_factors)
    for stream, (name, metric) in enumerate(REGISTRY.items()):
        if not metric.needs_factors or (names and name not in names):
            continue
        chosen = (settings or {}).get(name) or metric.settings(protocol)
        if begin is not None:
            begin(stream)
        bar = tqdm(
            total=metric.progress_total(chosen, num_factors), unit="point",
            desc=f"{metric.title} ({protocol})", disable=quiet, dynamic_ncols=True,
            mininterval=1.0,
        )  # fmt: skip
        start = time.perf_counter()
        with bar:
            details = metric.compute(
                ds, represent, chosen, np.random.RandomState(SEED), bar
            )
        result["seconds"][name] = time.perf_counter() - start
        result["details"][name], result["settings"][name] = details, chosen
        result["estimators"][name] = metric.notes
        for key, detail in metric.headlines.items():
            result[key] = float(details[detail])
    return result


def provenance(ds, protocol, representation, step) -> dict:
    return {
        "protocol": protocol,
        "representation": representation,
        "seed": SEED,
        "checkpoint_step": step,
        "dataset": ds.describe(),
        "versions": versions(),
        "cpu": cpu(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def key_suffix(protocol: str, representation: str) -> str:
    """`mig`, `mig_fast`, `mig_sampled`, `mig_fast_sampled`."""
    return suffix(protocol) + ("" if representation == "mean" else "_sampled")
