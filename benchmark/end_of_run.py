"""What a training run does once, at its end, timed in this process: the export
of the model, and on dSprites the disentanglement metrics of either protocol."""

import tempfile
import time
from pathlib import Path

from utils.metrics import REGISTRY
from utils.metrics.evaluate import EncodedDataset, evaluate_all
from utils.outputs.export import export_model

# Enough that most of dSprites' 40 orientations appear twice in a classifier's
# training sample (sklearn warns when classes outnumber half the samples).
MIN_SAMPLES = 100


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
        settings = smaller(name, share) if share > 1 else None
        figures |= protocol_seconds(encoder, source, name, f"metrics_{name}", settings)
    return figures


def smaller(protocol, share):
    """Each metric's settings with 1/share of each sample (a `num_…` setting), but
    at least MIN_SAMPLES."""
    return {
        name: {
            k: max(v // share, MIN_SAMPLES) if k.startswith("num_train") or
            k in ("num_test", "num_eval", "num_variance_estimate") else v
            for k, v in metric.settings(protocol).items()
        }
        for name, metric in REGISTRY.items()
    }  # fmt: skip


def protocol_seconds(encoder, source, protocol, prefix, settings=None):
    """Each metric's seconds, the encoding of the images it is the first to ask
    for included; the encoding's total; the whole. evaluate_metrics' own work,
    without its metrics.json and printed table (milliseconds)."""
    dataset = EncodedDataset(source, encoder)
    started = time.perf_counter()
    results = evaluate_all(
        dataset, dataset.represent, protocol, quiet=True, begin=dataset.begin,
        settings=settings,
    )  # fmt: skip
    figures = {f"{prefix}_s": time.perf_counter() - started}
    figures |= {f"{prefix}_{name}_s": s for name, s in results["seconds"].items()}
    figures[f"{prefix}_encoding_s"] = dataset.seconds
    figures[f"{prefix}_images_encoded"] = int(dataset.encoded.sum())
    return figures
