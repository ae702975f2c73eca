"""Plots of a run (PNG): loss curves from its logs, driven by the objective's own
description (utils/objectives.py), and KL per latent."""

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from utils.objectives import objective_of
from utils.outputs.images import save_figure

TRAIN_COLOR, VALIDATION_COLOR, TARGET_COLOR = "tab:blue", "tab:orange", "tab:green"
HIGHLIGHT_COLOR, INACTIVE_COLOR = "tab:orange", "silver"
MAX_BARS = 40  # more would not be legible; the rest are counted in the axis label
ACTIVE_THRESHOLD = 0.01  # nats: a latent with less KL carries (almost) nothing

# ---- KL per latent


def latents_by_kl(kl: np.ndarray) -> np.ndarray:
    """Latent indices, most informative (largest KL) first; ties by index."""
    return np.argsort(-np.asarray(kl), kind="stable")


def kl_order_note(num_images: int) -> str:
    return f"latents sorted by KL on {num_images} test images"


def shown_note(shown: int, latents: int) -> str:
    return (
        f"top {shown} of {latents} latents"
        if shown < latents
        else f"all {latents} latents"
    )


def draw_kl_bars(
    ax,
    kl,
    num_images,
    active_threshold=ACTIVE_THRESHOLD,
    highlight=(),
    max_bars=MAX_BARS,
):
    """Bars of KL per latent (nats), largest first, at most `max_bars`, on a log
    axis with the active threshold dashed; `highlight`ed latents in orange."""
    kl = np.asarray(kl, dtype=np.float64)
    order = latents_by_kl(kl)
    shown = order[:max_bars]
    # Log scale: inactive latents sit 3+ orders of magnitude below active ones, and
    # the 0.01-nat threshold would be invisible on a linear axis. Below the floor
    # a latent carries nothing worth a bar.
    floor = active_threshold / 1000
    highlight = set(np.asarray(highlight, dtype=int).tolist())
    colors = [
        HIGHLIGHT_COLOR if i in highlight else
        TRAIN_COLOR if kl[i] > active_threshold else INACTIVE_COLOR
        for i in shown
    ]  # fmt: skip
    x = np.arange(len(shown))
    ax.bar(x, np.maximum(kl[shown], floor), color=colors)
    ax.axhline(active_threshold, color="black", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylim(floor, max(kl.max(initial=0.0), active_threshold) * 2)
    rotation = 90 if len(shown) > 16 else 0
    ax.set_xticks(x, [f"z{i}" for i in shown], rotation=rotation, fontsize=8)
    ax.set_xlim(-0.6, len(shown) - 0.4)
    note = kl_order_note(num_images)
    if len(shown) < len(kl):
        rest = kl[order[len(shown)]]
        note += (
            f"\n{len(shown)} of {len(kl)} shown; the other {len(kl) - len(shown)} "
            f"have KL ≤ {rest:.2g} nats"
        )
    ax.set_xlabel(note, fontsize=9)
    ax.set_ylabel("KL (nats)")
    n_active = int((kl > active_threshold).sum())
    ax.set_title(
        f"{n_active} of {len(kl)} latents active (KL > {active_threshold:g} nats, "
        "dashed)",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)


def kl_bars_figure(kl, num_images, active_threshold=ACTIVE_THRESHOLD) -> Figure:
    bars = min(len(kl), MAX_BARS)
    fig = Figure(figsize=(max(6.0, 0.28 * bars + 1.5), 4.2), layout="constrained")
    draw_kl_bars(fig.add_subplot(), kl, num_images, active_threshold)
    fig.suptitle("KL per latent")
    return fig


def save_kl_bars(path: Path, kl, num_images, active_threshold=ACTIVE_THRESHOLD):
    """kl_per_latent.png: `kl` the mean KL per latent on `num_images` images."""
    save_figure(kl_bars_figure(kl, num_images, active_threshold), path)


# ---- loss curves


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred mean over `window` points, ignoring nan; the ends use fewer points."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    kernel = np.ones(max(1, window))
    total = np.convolve(np.where(valid, values, 0.0), kernel, mode="same")
    count = np.convolve(valid.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _is_noisy(values: np.ndarray) -> bool:
    # A schedule (β, C) is piecewise linear in the step: its second differences
    # are zero almost everywhere, and smoothing would only round its corners.
    values = values[np.isfinite(values)]
    if len(values) < 3:
        return False
    bend = np.median(np.abs(np.diff(values, 2)))
    return bool(bend > 1e-9 * (np.ptp(values) + 1e-12))


def _varies(*series) -> bool:
    values = np.concatenate([np.asarray(s, np.float64) for s in series] or [[]])
    values = values[np.isfinite(values)]
    return values.size > 0 and np.ptp(values) > 0


def _maybe_log(ax, *series: np.ndarray) -> None:
    # Log scale only when it helps: positive values spanning > 2 orders of magnitude
    # (the first steps' reconstruction loss dwarfs the rest of the run).
    values = np.concatenate([s[np.isfinite(s)] for s in series])
    if values.size and values.min() > 0 and values.max() / values.min() > 100:
        ax.set_yscale("log")


def loss_panels(train, validation, p) -> list[tuple[str, str]]:
    """(log column, title) of each panel: the four every objective logs, then the
    objective's own terms, except its KL target (drawn on the KL panel) and any
    that never change (a constant β adds nothing)."""
    objective = objective_of(p or {})
    loss_title = f"loss: {objective.paper}\n{textwrap.fill(objective.loss, 72)}"
    panels = [
        ("loss", loss_title),
        ("reconstruction_loss", "reconstruction loss"),
        ("kl", "KL (nats)"),
        ("negative_elbo", "negative ELBO = reconstruction + KL\n"
         "validation: what model selection uses"),
    ]  # fmt: skip
    for term, title in objective.terms.items():
        if term != objective.kl_target and _varies(
            train.get(term, []), validation.get(term, [])
        ):
            panels.append((term, title))
    return panels


# metrics_step's panel: the headline scores that read on one [0, 1] axis.
DISENTANGLEMENT = "disentanglement"
DISENTANGLEMENT_TITLE = "disentanglement during training (fast protocol)"
DISENTANGLEMENT_SCORES = {
    "beta_vae_fast": "β-VAE score",
    "factor_vae_fast": "FactorVAE score",
    "mig_fast": "MIG",
    "dci_disentanglement_fast": "DCI disentanglement",
}


def _plot_disentanglement(ax, metrics):
    """The scores of metrics_during_training.csv against the step; True if any."""
    step = metrics.get("step", np.array([]))
    shown = False
    for key, title in DISENTANGLEMENT_SCORES.items():
        if key in metrics and len(step) and np.isfinite(metrics[key]).any():
            ax.plot(step, metrics[key], "o-", markersize=3, linewidth=1.2, label=title)
            shown = True
    if shown:
        ax.set_ylim(0, 1.05)
    return shown


def _plot_training(ax, step, values, window):
    if _is_noisy(values) and window > 1:
        ax.plot(step, values, color=TRAIN_COLOR, alpha=0.2, linewidth=0.8)
        values = moving_average(values, window)
    ax.plot(step, values, color=TRAIN_COLOR, linewidth=1.5, label="training")


def loss_curves_figure(train, validation, p, metrics=None) -> Figure:
    """`metrics`: metrics_during_training.csv (metrics_step), drawn on a panel of
    its own when it has rows."""
    train, validation, metrics = train or {}, validation or {}, metrics or {}
    objective = objective_of(p or {})
    panels = loss_panels(train, validation, p)
    if len(metrics.get("step", [])):
        panels.append((DISENTANGLEMENT, DISENTANGLEMENT_TITLE))
    rows = -(-len(panels) // 2)
    fig = Figure(figsize=(11, 3.3 * rows + 0.5), dpi=120, layout="constrained")
    axes = fig.subplots(rows, 2, sharex=True, squeeze=False).ravel()
    for ax, (name, title) in zip(axes, panels, strict=False):
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if name == DISENTANGLEMENT:
            shown = _plot_disentanglement(ax, metrics)
        else:
            shown = _plot_loss(ax, name, train, validation, objective)
        if shown:
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center",
                    transform=ax.transAxes, color="gray")  # fmt: skip
    for ax in axes[len(panels) :]:
        fig.delaxes(ax)
    for ax in axes[max(0, len(panels) - 2) : len(panels)]:  # each column's last
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("step")
    return fig


def _plot_loss(ax, name, train, validation, objective):
    """One logged term: training (smoothed when noisy) and validation; True if
    anything was drawn."""
    step = train.get("step", np.array([]))
    window = max(1, len(step) // 50)  # ~1/50 of the run: smooths batch noise
    shown = []
    if name in train and len(step):
        _plot_training(ax, step, train[name], window)
        shown.append(train[name])
    if name in validation and len(validation.get("step", [])):
        ax.plot(validation["step"], validation[name], "o", markersize=4,
                color=VALIDATION_COLOR, label="validation")  # fmt: skip
        shown.append(validation[name])
    target = objective.kl_target
    if name == "kl" and target in train and len(step):
        # The capacity objective pulls KL towards C (Burgess 2018): show both.
        ax.plot(step, train[target], "--", color=TARGET_COLOR, linewidth=1.2,
                label=objective.terms[target])  # fmt: skip
    if shown:
        _maybe_log(ax, *shown)
    return bool(shown)


def save_loss_curves(path: Path, train, validation, p, metrics=None) -> None:
    """loss_curves.png from log.csv and validation.csv (read_log_csv), the run's
    parameters `p`, which name the objective and so its panels, and the metrics
    during training, if any (metrics_during_training.csv)."""
    save_figure(loss_curves_figure(train, validation, p, metrics), path)
