"""What each latent controls, after training: the original's "Analysis: TBD", filled.

For the most informative latents (by KL) we sweep the latent from the smallest to
the largest mean seen on encoded samples, as the original did, and draw the sweeps
from several reference images so a viewer can tell a consistent effect from noise.
Takes callables (numpy in, numpy out), not a model: no TensorFlow here.
"""

import io
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from utils.files import atomic_write_bytes
from utils.images import (
    image_grid,
    latent_gif,
    save_labelled_grid,
    show_labelled_canvas,
)
from utils.plots import save_kl_bars
from utils.visualize import kl_per_latent_of

BATCH = 256  # images per encode/decode call
NUM_REFERENCES = 3  # reference images per latent in analysis.png
GAP = 10  # blank pixels between latents, and after the inputs, in analysis.png
ACTIVE, TOP, INACTIVE = "tab:blue", "tab:orange", "silver"


def _in_batches(fn, x):
    """fn's tuple of arrays, computed BATCH rows at a time (bounded memory)."""
    parts = [fn(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]
    columns = zip(*parts, strict=True)
    return [np.concatenate([np.asarray(p) for p in col]) for col in columns]


def _sweeps(decode, z_refs, top, lows, highs, steps):
    """(len(top), refs, steps, H, W, C): latent top[r] swept from lows[r] to
    highs[r], the others fixed at each reference code."""
    grid = np.tile(z_refs[None, :, None], (len(top), 1, steps, 1))
    for row, latent in enumerate(top):
        grid[row, :, :, latent] = np.linspace(lows[row], highs[row], steps)
    (decoded,) = _in_batches(lambda z: (decode(z),), grid.reshape(-1, grid.shape[-1]))
    return decoded.reshape(*grid.shape[:3], *decoded.shape[1:])


def _save_png(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def _sweep_labels(steps):
    # Each row has its own range (in the row label): columns say where in it.
    return ["min"] + [""] * (steps - 2) + ["max"] if steps > 1 else ["min = max"]


def save_traversal_grid(path, sweeps, labels):
    """One row per latent, sweeping its own seen range (given in its label)."""
    title = "Latent traversals, min → max of z_mean seen on encoded samples"
    steps = sweeps.shape[1]
    save_labelled_grid(path, sweeps, labels, _sweep_labels(steps), title, 2.7)


def save_analysis_figure(path, kl, threshold, top, references, sweeps, labels):
    """Left: KL per latent. Right: per top latent, its sweep from each reference
    image (input image first), so a viewer sees what the latent controls."""
    n_top, n_refs, steps, h, w, c = sweeps.shape
    pad, dpi = 2, 100
    inputs = image_grid(references, n_refs, 1, pad)
    blank = np.full((inputs.shape[0], GAP, 3), 255, np.uint8)
    groups = [
        np.concatenate(
            [inputs, blank, image_grid(g.reshape(-1, h, w, c), n_refs, steps, pad)], 1
        )
        for g in sweeps
    ]
    blank = np.full((GAP, groups[0].shape[1], 3), 255, np.uint8)
    canvas = np.concatenate([part for g in groups for part in (g, blank)][:-1])
    scale = max(1, 64 // h)
    image_w, image_h = canvas.shape[1] * scale / dpi, canvas.shape[0] * scale / dpi
    bars_w = float(np.clip(0.22 * len(kl) + 1.0, 3.5, 7.0))
    bars_h = float(np.clip(image_h, 3.0, 5.0))
    # inches: bars' y label | bars | room for the row labels | images | margin
    x0, x1, x2, margin, top_m, bottom = 0.8, bars_w, 1.9, 0.2, 1.1, 0.6
    fig_w = x0 + x1 + x2 + image_w + margin
    fig_h = top_m + max(image_h, bars_h) + bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)

    bars = fig.add_axes(
        (x0 / fig_w, 1 - (top_m + bars_h) / fig_h, x1 / fig_w, bars_h / fig_h)
    )
    order = np.argsort(-kl, kind="stable")
    floor = threshold / 1000  # log scale: inactive latents sit orders of magnitude down
    colors = [
        TOP if i in top else ACTIVE if kl[i] > threshold else INACTIVE for i in order
    ]
    bars.bar(np.arange(len(kl)), np.maximum(kl[order], floor), color=colors)
    bars.axhline(threshold, color="black", linestyle="--", linewidth=1)
    bars.set_yscale("log")
    bars.set_ylim(floor, max(kl.max(), threshold) * 2)
    bars.set_xticks(
        np.arange(len(kl)),
        [f"z{i}" for i in order],
        fontsize=8,
        rotation=90 if len(kl) > 16 else 0,
    )
    bars.set_ylabel("KL (nats), mean over samples")
    n_active = int((kl > threshold).sum())
    bars.set_title(
        f"{n_active} of {len(kl)} latents active (KL > {threshold:g})\n"
        "orange: traversed on the right; blue: other active latents",
        fontsize=10,
    )
    bars.grid(axis="y", alpha=0.3)

    images = fig.add_axes(
        ((x0 + x1 + x2) / fig_w, bottom / fig_h, image_w / fig_w, image_h / fig_h)
    )
    rows = (np.arange(n_top) + 0.5) * (groups[0].shape[0] + GAP) - GAP / 2
    cols = pad + (w - 1) / 2 + np.arange(steps) * (w + pad) + inputs.shape[1] + GAP
    show_labelled_canvas(
        images,
        canvas,
        rows,
        [s.replace("  [", "\n[") for s in labels],
        [pad + (w - 1) / 2, *cols],
        ["input", *_sweep_labels(steps)],
    )
    title, note = (
        "What each latent controls",
        (
            "Each row: the input's code, one latent swept from the smallest to the "
            "largest\nvalue of its mean seen on encoded samples (range in brackets), "
            "the others fixed."
        ),
    )
    fig.text(0.5, 1 - 0.15 / fig_h, title, ha="center", va="top", fontsize=14)
    fig.text((x0 + x1 + x2) / fig_w, 1 - 0.5 / fig_h, note, va="top", fontsize=10)
    _save_png(fig, path)


def analyze(
    encode,
    decode,
    images,
    folder: Path,
    top: int = 6,
    steps: int = 11,
    active_threshold: float = 0.01,
) -> dict:
    """Writes folder/analysis/: traversal_grid.png, traversal_z{i}.gif,
    analysis.png, kl_per_latent.png, analysis.json; returns the JSON's dict."""
    out = Path(folder) / "analysis"
    images = np.asarray(images)
    if len(images) == 0:
        raise ValueError("analyze needs at least one image to encode")
    z_mean, z_log_var = _in_batches(encode, images)
    kl = kl_per_latent_of(z_mean, z_log_var)
    lows, highs = z_mean.min(axis=0), z_mean.max(axis=0)
    n_active = int((kl > active_threshold).sum())
    order = np.argsort(-kl, kind="stable")
    top_latents = order[: max(1, min(top, n_active))]
    labels = [
        f"z{i}  KL {kl[i]:.2f}  [{lows[i]:.2f}, {highs[i]:.2f}]" for i in top_latents
    ]

    # The first sample is the reference, as the original; two more spread over the
    # samples show whether a latent does the same thing to other images.
    refs = np.unique(np.linspace(0, len(images) - 1, NUM_REFERENCES).astype(int))
    sweeps = _sweeps(
        decode, z_mean[refs], top_latents, lows[top_latents], highs[top_latents], steps
    )
    save_traversal_grid(out / "traversal_grid.png", sweeps[:, 0], labels)
    for row, latent in enumerate(top_latents):
        latent_gif(out / f"traversal_z{latent}.gif", sweeps[row, 0])
    top_set, path = set(top_latents.tolist()), out / "analysis.png"
    save_analysis_figure(
        path, kl, active_threshold, top_set, images[refs], sweeps, labels
    )
    save_kl_bars(out / "kl_per_latent.png", kl, active_threshold=active_threshold)

    result = {
        "kl_per_latent": [float(v) for v in kl],
        "active_latents": n_active,
        "active_threshold": float(active_threshold),
        "top_latents": [int(i) for i in top_latents],
        "ranges": {f"z{i}": [float(lows[i]), float(highs[i])] for i in range(len(kl))},
        "num_samples": len(images),
    }
    atomic_write_bytes(out / "analysis.json", json.dumps(result, indent=2) + "\n")
    return result
