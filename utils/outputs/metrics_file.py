"""A run's metrics.json (every protocol's numbers for one checkpoint, with their
provenance), the terminal table, TensorBoard's metric columns and the latent ×
factor heatmaps in analysis/: what `--mode=evaluate` and a run's end write."""

import json

import numpy as np

from utils.data.factor_structure import (
    HOLDOUT_SAMPLE,
    HOLDOUT_SEED,
    describe_holdout,
    holdout_samples,
)
from utils.data.ground_truth import require_factors
from utils.files import atomic_write_bytes
from utils.metrics import REGISTRY, headline_names
from utils.metrics.evaluate import EncodedDataset, evaluate_all, key_suffix, provenance
from utils.metrics.provenance import cpu, versions
from utils.outputs.heatmaps import save_heatmaps
from utils.outputs.tensorboard import write_metrics as write_tensorboard_metrics


def evaluate_metrics(encoder, source, folder, protocol="reference", step=None,
                     representation="mean") -> dict:  # fmt: skip
    """Score with `protocol`, write `folder`/metrics.json, print a table; returns
    the results. metrics.json keeps other protocols' numbers of the same step."""
    ds = require_factors(source)
    encoded = EncodedDataset(ds, encoder, representation)
    results = evaluate_all(ds, encoded.represent, protocol, begin=encoded.begin)
    results["encoding_seconds"] = encoded.seconds  # within the metrics' seconds
    results["num_images_encoded"] = int(encoded.encoded.sum())
    results["step"] = step
    results["provenance"] = provenance(ds, protocol, representation, step)
    results["mig_per_factor"] = mig_per_factor(ds, results["details"]["mig"])
    results["kl_per_latent"] = encoded.kl_per_latent().tolist()
    path = folder / "metrics.json"
    write_metrics(path, results, step)
    print(format_table(results, protocol, representation))
    print(f"wrote {path}")
    end = key_suffix(protocol, representation)
    picture = save_heatmaps(
        folder / "analysis" / f"latent_factor{end}.png", results["details"],
        ds.scored_names, results["kl_per_latent"], f" ({protocol} protocol)",
    )  # fmt: skip
    if picture:
        print(f"wrote {picture}")
    return results


# metrics_step: the protocol of the metrics during training. The reference one
# takes minutes; the run's own evaluation at the end stays metrics_protocol's.
TRAINING_PROTOCOL = "fast"


def training_metric_names() -> list[str]:
    """The columns of metrics_during_training.csv: each headline, under the fast
    protocol's own names (mig_fast, ...)."""
    return headline_names([TRAINING_PROTOCOL])


def training_metrics(model, source) -> dict:
    """{mig_fast: ..., ...} of the encoder's means now, quietly (no bars inside the
    training's): what metrics_step logs."""
    ds = require_factors(source)
    encoded = EncodedDataset(ds, model.encoder, "mean")
    results = evaluate_all(
        ds, encoded.represent, TRAINING_PROTOCOL, quiet=True, begin=encoded.begin
    )
    end = key_suffix(TRAINING_PROTOCOL, "mean")
    names = training_metric_names()
    return {k + end: results[k] for k in results if k + end in names}


def mig_per_factor(ds, mig: dict) -> dict:
    return {
        name: {"mig": gap, "latent": f"z{latent}"}
        for name, gap, latent in zip(
            ds.scored_names, mig["per_factor"], mig["latent_per_factor"], strict=True
        )
    }


def saved_at(path, step) -> dict:
    """What metrics.json holds, if it is of checkpoint `step`; else nothing."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    if saved.get("step") != step:  # another checkpoint's numbers are stale here
        saved = {}
    return saved


def write_metrics(path, results, step):
    saved = saved_at(path, step)
    made = results["provenance"]
    end = key_suffix(made["protocol"], made["representation"])
    name = made["protocol"] + ("" if made["representation"] == "mean" else "_sampled")
    protocols = {**saved.get("protocols", {}), name: results}
    headlines = {
        key + end: results[key]
        for m in REGISTRY.values()
        for key in m.headlines
        if key in results
    }
    headlines["mig_per_factor" + end] = results["mig_per_factor"]
    merged = {**saved, **headlines, "step": step, "protocols": protocols}
    text = json.dumps(merged, indent=2, default=float) + "\n"
    atomic_write_bytes(path, text, durable=True)
    # The same numbers as TensorBoard's HPARAMS columns, replacing earlier ones.
    numbers = {k: v for k, v in merged.items() if k in headline_names()}
    write_tensorboard_metrics(path.parent / "tensorboard", step or 0, numbers)


def format_table(results, protocol, representation="mean"):
    note = (
        "disentanglement_lib's protocols"
        if protocol == "reference"
        else "smaller samples and extra-trees DCI: not comparable with published "
        "numbers; --metrics_protocol=reference for those"
    )
    end = key_suffix(protocol, representation)
    rows = [("metric", "score", "seconds")]
    for name, metric in REGISTRY.items():
        for key in metric.headlines:
            if key in results:
                seconds = f"{results['seconds'][name]:.0f}"
                rows.append((key + end, f"{results[key]:.3f}", seconds))
    rows += [
        (f"  MIG {factor}", f"{v['mig']:.3f} ({v['latent']})", "")
        for factor, v in results["mig_per_factor"].items()
    ]
    width = max(len(r[0]) for r in rows)
    seconds = sum(results["seconds"].values())
    return "\n".join(
        [
            f"Metrics, {protocol} protocol, {representation} code ({note}), "
            f"{seconds:.0f} s:"
        ]
        + [f"  {a:<{width}}  {b:>14}  {c:>7}" for a, b, c in rows]
    )


def evaluate_holdout(model, source, folder, p, step, count=HOLDOUT_SAMPLE) -> dict:
    """Reconstruction loss and KL of the held-out combinations, which training never
    saw (Montero et al. 2021), against the in-distribution test images: fixed
    samples of up to `count` each, into metrics.json under "holdout"; a table."""
    held, test, counts = holdout_samples(source, p["holdout"], count)
    kind = p["reconstruction_loss"]
    block = {
        "definition": p["holdout"],
        "described": describe_holdout(p["holdout"]),
        "counts": counts,
        "sample": {"at_most": count, "seed": HOLDOUT_SEED, "z": "posterior mean"},
        "held_out": image_losses(model, source, held, kind),
        "in_distribution_test": image_losses(model, source, test, kind),
        "reconstruction_loss": kind,
        "step": step,
    }
    path = folder / "metrics.json"
    write_holdout(path, block, step)
    print(format_holdout(block))
    print(f"wrote holdout into {path}")
    return block


def image_losses(model, source, indices, kind, batch_size=256) -> dict:
    """Mean −log p(x|z) (nats, summed over pixels) with z at the posterior mean, so
    that the two samples differ only by their images, and mean KL (nats)."""
    from models import reconstruction_loss

    reconstruction, kl = [], []
    for start in range(0, len(indices), batch_size):
        images = source.read(indices[start : start + batch_size]) / np.float32(255)
        z_mean, kl_per_latent = model.posterior(images)
        logits = model.decoder(z_mean, training=False)
        reconstruction.append(np.asarray(reconstruction_loss(images, logits, kind)))
        kl.append(np.asarray(kl_per_latent).sum(axis=1))
    if not reconstruction:
        return {"images": 0, "reconstruction_loss": None, "kl": None}
    return {
        "images": len(indices),
        "reconstruction_loss": float(np.concatenate(reconstruction).mean()),
        "kl": float(np.concatenate(kl).mean()),
    }


def write_holdout(path, block, step):
    """metrics.json's "holdout" key; the rest kept if it is of the same step."""
    saved = saved_at(path, step)
    merged = {**saved, "step": step, "holdout": block}
    atomic_write_bytes(path, json.dumps(merged, indent=2) + "\n", durable=True)


def format_holdout(block):
    counts = block["counts"]
    rows = [("held out", block["held_out"])]
    rows.append(("in-distribution test", block["in_distribution_test"]))

    def number(value):
        return "–" if value is None else f"{value:.2f}"

    return "\n".join(
        [
            f"Held-out combinations (Montero et al. 2021), {block['described']}: "
            f"{counts['held_out_images']:,} images, {counts['held_out_in_train']:,} "
            "of them left out of training; z at the posterior mean:",
            f"  {'':<22}{'images':>8}{'reconstruction':>16}{'KL':>10}",
        ]
        + [
            f"  {name:<22}{v['images']:>8,}{number(v['reconstruction_loss']):>16}"
            f"{number(v['kl']):>10}"
            for name, v in rows
        ]
    )


def write_udr(folders, names, result, steps, settings):
    """Each run's UDR (Duan et al. 2020) against the others of its group, into its
    metrics.json under "udr", with the group it was measured in; a table."""
    for i, folder in enumerate(folders):
        path = folder / "metrics.json"
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            saved = {}
        saved["udr"] = {
            "udr": result["model_scores"][i],
            "group": names,
            "group_scores": result["model_scores"],
            "pairwise": result["pairwise"],
            "checkpoint_steps": steps,
            "settings": settings,
            "provenance": {"versions": versions(), "cpu": cpu()},
        }
        text = json.dumps(saved, indent=2, default=float) + "\n"
        atomic_write_bytes(path, text, durable=True)
    ranked = sorted(zip(result["model_scores"], names, strict=True), reverse=True)
    print("UDR (Duan et al. 2020; higher: more alike across seeds), best first:")
    for score, name in ranked:
        print(f"  {name:<40} {score:.3f}")
    print(f"wrote udr into {len(folders)} metrics.json files")
