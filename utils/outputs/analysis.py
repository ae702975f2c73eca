"""What each latent controls, after training: the original's "Analysis: TBD", filled.

For the most informative latents (by KL) we sweep the latent from the smallest to
the largest mean seen on encoded samples, as the original did, and draw the sweeps
from several reference images so a viewer can tell a consistent effect from noise.
Takes callables (numpy in, numpy out), not a model: no TensorFlow here.
"""

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from utils.files import atomic_write_bytes
from utils.outputs.images import (
    MIN_CELL,
    PAD,
    image_grid,
    latent_gif,
    save_figure,
    save_labelled_grid,
)
from utils.outputs.plots import (
    ACTIVE_THRESHOLD,
    MAX_BARS,
    draw_kl_bars,
    kl_order_note,
    latents_by_kl,
    save_kl_bars,
    shown_note,
)

BATCH = 64  # images per encode/decode call (bounded memory)
NUM_REFERENCES = 3  # reference images per latent in analysis.png
GAP = 10  # blank pixels between latents, and after the inputs, in analysis.png
MAX_GIFS = 32  # one GIF per active latent, the most informative first, up to this


def _in_batches(fn, x):
    """fn's tuple of arrays, computed BATCH rows at a time (bounded memory)."""
    parts = [fn(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]
    columns = zip(*parts, strict=True)
    return [np.concatenate([np.asarray(p) for p in col]) for col in columns]


def _sweeps(decode, z_refs, latents, lows, highs, steps):
    """(len(latents), refs, steps, H, W, C): latent latents[r] swept from lows[r]
    to highs[r], the others fixed at each reference code."""
    grid = np.tile(z_refs[None, :, None], (len(latents), 1, steps, 1))
    for row, latent in enumerate(latents):
        grid[row, :, :, latent] = np.linspace(lows[row], highs[row], steps)
    (decoded,) = _in_batches(lambda z: (decode(z),), grid.reshape(-1, grid.shape[-1]))
    return decoded.reshape(*grid.shape[:3], *decoded.shape[1:])


def _sweep_labels(steps):
    # Each row has its own range (in the row label): columns say where in it.
    return ["min"] + [""] * (steps - 2) + ["max"] if steps > 1 else ["min = max"]


def save_traversal_grid(path, sweeps, labels, notes):
    """One row per latent, sweeping its own seen range (given in its label)."""
    title = "Latent traversals, from the min to the max of z_mean on encoded samples"
    steps = sweeps.shape[1]
    save_labelled_grid(path, sweeps, labels, _sweep_labels(steps), title, notes)


def _sweeps_canvas(references, sweeps):
    """One pixel canvas: per latent, a group of rows (one per reference image:
    the input, a gap, its sweep); and the centres of the rows and columns."""
    n_top, n_refs, steps, h, w, c = sweeps.shape
    inputs = image_grid(references, n_refs, 1)
    blank = np.full((inputs.shape[0], GAP, 3), 255, np.uint8)
    groups = [
        np.concatenate(
            [inputs, blank, image_grid(g.reshape(-1, h, w, c), n_refs, steps)], 1
        )
        for g in sweeps
    ]
    blank = np.full((GAP, groups[0].shape[1], 3), 255, np.uint8)
    canvas = np.concatenate([part for g in groups for part in (g, blank)][:-1])
    rows = (np.arange(n_top) + 0.5) * (groups[0].shape[0] + GAP) - GAP / 2
    first = PAD + (w - 1) / 2
    cols = first + np.arange(steps) * (w + PAD) + inputs.shape[1] + GAP
    return canvas, rows, [first, *cols]


def _show_canvas(ax, canvas, row_centres, row_labels, col_centres, col_labels):
    """A pixel canvas with labelled rows (left) and columns (top), no frame."""
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks(row_centres, row_labels, fontsize=10, family="monospace")
    ax.set_xticks(col_centres, col_labels, fontsize=9)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def save_analysis_figure(
    path, kl, num_images, threshold, latents, references, sweeps, labels
):
    """Top: KL per latent (the swept `latents` in orange). Below, per top latent,
    its sweep from each reference image (input image first). Stacked, so neither
    part leaves a blank area beside a taller other."""
    dpi, scale = 100, max(1, MIN_CELL // sweeps.shape[3])
    canvas, rows, cols = _sweeps_canvas(references, sweeps)
    image_w, image_h = canvas.shape[1] * scale / dpi, canvas.shape[0] * scale / dpi
    n_bars = min(len(kl), MAX_BARS)
    # inches: row labels | images | margin; title | bars | ticks | note | images
    row_labels = [s.replace("  [", "\n[") for s in labels]
    # Monospace at 10 pt is 0.6 × 10 pt = 1/12 inch per character.
    chars = max(len(part) for s in row_labels for part in s.split("\n"))
    left = chars / 12 + 0.35
    margin, title_h, bars_h, note_h, bottom = 0.3, 0.7, 2.2, 0.8, 0.15
    ticks_h = (0.75 if n_bars > 16 else 0.45) + (0.2 if len(kl) > n_bars else 0)
    fig_w = max(left + image_w + margin, 0.8 + 0.2 * n_bars + margin, 6.0)
    fig_h = title_h + bars_h + ticks_h + note_h + image_h + bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)

    bars = fig.add_axes(
        (0.8 / fig_w, 1 - (title_h + bars_h) / fig_h, (fig_w - 0.8 - margin) / fig_w,
         bars_h / fig_h)
    )  # fmt: skip
    draw_kl_bars(bars, kl, num_images, threshold, highlight=latents)
    bars.set_ylabel("KL (nats), mean over samples")
    images = fig.add_axes(
        (left / fig_w, bottom / fig_h, image_w / fig_w, image_h / fig_h)
    )
    steps = sweeps.shape[2]
    _show_canvas(
        images, canvas, rows, row_labels, cols, ["input", *_sweep_labels(steps)]
    )
    fig.text(0.5, 1 - 0.15 / fig_h, "What each latent controls", ha="center",
             va="top", fontsize=14)  # fmt: skip
    note = (
        "Orange bars: the latents below. Each row: the input's code, one latent "
        "swept from the smallest to the largest\nvalue of its mean seen on encoded "
        "samples (range in brackets), the others fixed."
    )
    note_top = title_h + bars_h + ticks_h + 0.1
    fig.text(0.15 / fig_w, 1 - note_top / fig_h, note, va="top", fontsize=10)
    save_figure(fig, path)


def analyze(
    encode,
    decode,
    images,
    folder: Path,
    top: int = 6,
    steps: int = 11,
    active_threshold: float = ACTIVE_THRESHOLD,
    max_gifs: int = MAX_GIFS,
) -> dict:
    """Writes folder/analysis/: traversal_grid.png and analysis.png (the `top`
    latents by KL), traversal_z{i}.gif per active latent (up to max_gifs),
    kl_per_latent.png, analysis.json; returns the JSON's dict.

    encode(images) → (z_mean, KL per latent of each image), (n, L) each;
    decode(z) → images in [0, 1]. Latents are sorted by KL on `images`."""
    out = Path(folder) / "analysis"
    images = np.asarray(images)
    if len(images) == 0:
        raise ValueError("analyze needs at least one image to encode")
    z_mean, kl_each = _in_batches(encode, images)
    kl = kl_each.mean(axis=0)
    lows, highs = z_mean.min(axis=0), z_mean.max(axis=0)
    n_active = int((kl > active_threshold).sum())
    order = latents_by_kl(kl)
    # At least one latent, so that a collapsed model still shows what it does.
    top_latents = order[: max(1, min(top, n_active))]
    gif_latents = order[: max(1, min(max_gifs, n_active))]
    labels = [
        f"z{i}  KL {kl[i]:.2f}  [{lows[i]:.2f}, {highs[i]:.2f}]" for i in top_latents
    ]
    note = f"{kl_order_note(len(images))}; {shown_note(len(top_latents), len(kl))}"

    # The first sample is the reference, as the original; two more spread over the
    # samples show whether a latent does the same thing to other images.
    refs = np.unique(np.linspace(0, len(images) - 1, NUM_REFERENCES).astype(int))
    sweeps = _sweeps(
        decode, z_mean[refs], top_latents, lows[top_latents], highs[top_latents], steps
    )
    save_traversal_grid(out / "traversal_grid.png", sweeps[:, 0], labels, [note])
    gif_sweeps = _sweeps(
        decode, z_mean[refs[:1]], gif_latents, lows[gif_latents], highs[gif_latents],
        steps,
    )  # fmt: skip
    for latent, sweep in zip(gif_latents, gif_sweeps[:, 0], strict=True):
        latent_gif(out / f"traversal_z{latent}.gif", sweep)
    save_analysis_figure(
        out / "analysis.png", kl, len(images), active_threshold, top_latents,
        images[refs], sweeps, labels,
    )  # fmt: skip
    save_kl_bars(out / "kl_per_latent.png", kl, len(images), active_threshold)

    result = {
        "kl_per_latent": [float(v) for v in kl],
        "active_latents": n_active,
        "active_threshold": float(active_threshold),
        "top_latents": [int(i) for i in top_latents],
        "gif_latents": [int(i) for i in gif_latents],
        "ranges": {f"z{i}": [float(lows[i]), float(highs[i])] for i in range(len(kl))},
        "num_samples": len(images),
    }
    atomic_write_bytes(out / "analysis.json", json.dumps(result, indent=2) + "\n")
    return result


def analyze_model(model, source, folder):
    """--mode=analyze: `analyze` on a trained BetaVAE's KL-ranking test images."""
    from utils.data.pipeline import test_sets
    from utils.outputs.step_images import z_mean_and_kl

    _, kl_images = test_sets(source)
    summary = analyze(
        lambda x: z_mean_and_kl(model, x),
        lambda z: np.asarray(model.decode(z)),
        np.asarray(kl_images),
        folder,
    )
    print(
        f"{summary['active_latents']} active latents (KL > "
        f"{summary['active_threshold']} nats); most informative: "
        + ", ".join(f"z{i}" for i in summary["top_latents"])
    )
