"""What a training run does once, at its end, timed in this process: the export
of the model, and on dSprites the disentanglement metrics of either protocol."""

import dataclasses
import tempfile
import time
from pathlib import Path

from utils.evaluate import EncodedDataset
from utils.export import export_model
from utils.metrics import METRICS, PROTOCOLS, evaluate_all

# Enough that most of dSprites' 40 orientations appear twice in a classifier's
# training sample (sklearn warns when classes outnumber half the samples).
MIN_SAMPLES = 100
SAMPLE_SIZES = (
    "beta_vae_train", "beta_vae_eval", "factor_vae_train", "factor_vae_eval",
    "factor_vae_variance_points", "mig_points", "dci_train", "dci_test",
)  # fmt: skip


def export_seconds(model):
    """One export_model, the first in this process, as at the end of a run."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        export_model(model, Path(folder) / "model")
        return time.perf_counter() - started


def metrics_seconds(encoder, source, protocols, share=1):
    """{f"metrics_{protocol}_…_s": seconds} of each of `protocols` (names), each
    on a fresh encoding of the images, as a run's end (--metrics_protocol=…)
    makes it. share > 1 (--quick, to check the tool): 1/share of the samples."""
    figures = {}
    for name in protocols:
        protocol = PROTOCOLS[name]
        protocol = smaller(protocol, share) if share > 1 else protocol
        figures |= protocol_seconds(encoder, source, protocol, f"metrics_{name}")
    return figures


def smaller(protocol, share):
    """1/share of each sample, but at least MIN_SAMPLES."""
    sizes = {k: max(getattr(protocol, k) // share, MIN_SAMPLES) for k in SAMPLE_SIZES}
    return dataclasses.replace(protocol, **sizes)


def protocol_seconds(encoder, source, protocol, prefix):
    """Each metric's seconds, the encoding of the images it is the first to ask
    for included; the encoding's total; the whole. evaluate_metrics' own work,
    without its metrics.json and printed table (milliseconds)."""
    dataset = EncodedDataset(source, encoder)
    started = time.perf_counter()
    results = evaluate_all(dataset, dataset.represent, protocol, quiet=True)
    figures = {f"{prefix}_s": time.perf_counter() - started}
    figures |= {f"{prefix}_{name}_s": results["seconds"][name] for name in METRICS}
    figures[f"{prefix}_encoding_s"] = dataset.seconds
    figures[f"{prefix}_images_encoded"] = int(dataset.encoded.sum())
    return figures
