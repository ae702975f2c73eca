"""Which latent holds which factor: the latent × factor matrices the metrics
compute, drawn as labelled heatmaps (as disentanglement_lib's and the QLAE code's
figures), latents in the traversal's KL order so that rows match analysis.png."""

import numpy as np
from matplotlib.figure import Figure

from utils.outputs.images import save_figure
from utils.outputs.plots import latents_by_kl

# (metric, key in its details) → what the matrix holds; the ones a run has are drawn
MATRICES = {
    ("mig", "mutual_information"): "mutual information (nats), MIG's estimator",
    ("dci", "importance"): "DCI importance (classifier feature importances)",
    ("sap", "score_matrix"): "SAP score matrix (per-pair accuracy)",
    ("infomec", "normalized_mutual_information"): "InfoMEC normalised MI",
}


def matrices_of(details: dict) -> dict:
    """{title: (d, K) array} of the matrices in one protocol's metric details."""
    found = {}
    for (metric, key), title in MATRICES.items():
        value = details.get(metric, {}).get(key)
        if value is not None and np.ndim(value) == 2:
            found[title] = np.asarray(value, dtype=np.float64)
    return found


def save_heatmaps(path, details, factor_names, kl_per_latent, note=""):
    """One panel per matrix, rows = latents by KL (largest first), columns = the
    scored factors, each cell labelled with its value → the PNG's path."""
    found = matrices_of(details)
    if not found:
        return None
    order = latents_by_kl(kl_per_latent)
    rows = len(order)
    fig = Figure(figsize=(3.2 * len(found) + 1, 0.38 * rows + 1.8), dpi=100)
    for i, (title, matrix) in enumerate(found.items()):
        ax = fig.add_subplot(1, len(found), i + 1)
        shown = matrix[order]
        ax.imshow(shown, cmap="viridis", aspect="auto", vmin=0)
        for (r, c), value in np.ndenumerate(shown):
            light = value < 0.6 * max(shown.max(), 1e-12)
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if light else "black")  # fmt: skip
        ax.set_xticks(range(len(factor_names)), factor_names, rotation=45, ha="right")
        labels = [f"z{j} ({kl_per_latent[j]:.2f})" for j in order]
        ax.set_yticks(range(rows), labels if i == 0 else [""] * rows)
        ax.set_title("\n".join(_wrap(title)), fontsize=9)
    fig.suptitle(f"Which latent holds which factor{note}; rows: latent (KL, nats)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    save_figure(fig, path)
    return path


def _wrap(text, width=34):
    words, lines = text.split(), [""]
    for word in words:
        if len(lines[-1]) + len(word) > width:
            lines.append("")
        lines[-1] = f"{lines[-1]} {word}".strip()
    return lines
