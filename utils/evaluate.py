"""Disentanglement metrics of a trained encoder on dSprites, into metrics.json.

The reference protocols draw ~2.9 million samples, more than the 737,280 images
dSprites has. So each image is encoded at most once, when a metric first asks for
it, and kept: the same numbers as encoding every sample, for a fraction of the
encoder time (the reference protocol ends up encoding most of the dataset; the
fast one a sixth of it).
"""

import json
import time

import numpy as np
import tensorflow as tf

from utils.data import to_float
from utils.dsprites import classes_to_index
from utils.files import atomic_write_bytes
from utils.metrics import HEADLINES, PROTOCOLS, evaluate_all
from utils.tensorboard import write_metrics as write_tensorboard_metrics

# Every number metrics.json can hold: each headline, under each protocol's name.
METRIC_NAMES = [k + p.suffix for p in PROTOCOLS.values() for k in HEADLINES]

ENCODER_BATCH = 2048


class EncodedDataset:
    """dSprites seen through the encoder: its "images" are indices, and
    representing one is encoding it once, then looking its code up."""

    def __init__(self, source, encoder):
        self.source, self.factor_sizes = source, source.factor_sizes
        # Any number of images: one trace, not one per chunk size (~90 ms each).
        images = tf.TensorSpec((None, *source.image_shape), tf.uint8)
        self.mean = tf.function(
            lambda x: encoder(to_float(x), training=False)[0], input_signature=[images]
        )
        self.codes = None
        self.encoded = np.zeros(len(source.latents_classes), dtype=bool)
        self.seconds = 0.0

    def sample_classes(self, n, rng):
        return self.source.sample_classes(n, rng)

    def images_for_classes(self, classes):
        return classes_to_index(classes)

    def represent(self, indices):
        new = np.unique(indices[~self.encoded[indices]])
        started = time.perf_counter()
        for start in range(0, len(new), ENCODER_BATCH):
            chunk = new[start : start + ENCODER_BATCH]
            codes = self.mean(self.source.read(chunk)).numpy()
            if self.codes is None:
                self.codes = np.zeros((len(self.encoded), codes.shape[1]), np.float32)
            self.codes[chunk], self.encoded[chunk] = codes, True
        self.seconds += time.perf_counter() - started
        return self.codes[indices]


def evaluate_metrics(encoder, source, folder, protocol="reference", step=None):
    """Score with `protocol` (a name, or a metrics.Protocol), write
    `folder`/metrics.json, print a table; returns the results. metrics.json keeps
    the other protocol's numbers if they are of the same checkpoint step."""
    protocol = PROTOCOLS.get(protocol, protocol)
    dataset = EncodedDataset(source, encoder)
    results = evaluate_all(dataset, dataset.represent, protocol)
    results["encoding_seconds"] = dataset.seconds  # within the metrics' seconds
    results["num_images_encoded"] = int(dataset.encoded.sum())
    results["step"] = step
    mig = results["details"]["mig"]
    factors = [
        n
        for n, k in zip(source.factor_names, source.factor_sizes, strict=True)
        if k > 1
    ]
    results["mig_per_factor"] = {
        name: {"mig": gap, "latent": f"z{latent}"}
        for name, gap, latent in zip(
            factors, mig["per_factor"], mig["latent_per_factor"], strict=True
        )
    }
    write_metrics(folder / "metrics.json", results, protocol, step)
    print(format_table(results, protocol))
    return results


def write_metrics(path, results, protocol, step):
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    if saved.get("step") != step:  # another checkpoint's numbers are stale here
        saved = {}
    protocols = {**saved.get("protocols", {}), protocol.name: results}
    headlines = {k + protocol.suffix: results[k] for k in HEADLINES}
    headlines["mig_per_factor" + protocol.suffix] = results["mig_per_factor"]
    merged = {**saved, **headlines, "step": step, "protocols": protocols}
    text = json.dumps(merged, indent=2, default=float) + "\n"
    atomic_write_bytes(path, text, durable=True)
    # The same numbers as TensorBoard's HPARAMS columns, replacing earlier ones.
    numbers = {k: v for k, v in merged.items() if k in METRIC_NAMES}
    write_tensorboard_metrics(path.parent / "tensorboard", step or 0, numbers)


def format_table(results, protocol):
    note = (
        "disentanglement_lib's protocols"
        if protocol.name == "reference"
        else "smaller samples and extra-trees DCI: not comparable with published "
        "numbers; --metrics_protocol=reference for those"
    )
    rows = [("metric", "score")]
    rows += [(k + protocol.suffix, f"{results[k]:.3f}") for k in HEADLINES]
    rows += [
        (f"  MIG {factor}", f"{v['mig']:.3f} ({v['latent']})")
        for factor, v in results["mig_per_factor"].items()
    ]
    width = max(len(r[0]) for r in rows)
    seconds = sum(results["seconds"].values())
    return "\n".join(
        [f"Metrics, {protocol.name} protocol ({note}), {seconds:.0f} s:"]
        + [f"  {a:<{width}}  {b}" for a, b in rows]
    )
