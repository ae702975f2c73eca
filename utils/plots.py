"""Plots drawn from a run folder's logs: loss curves and KL per latent (PNG)."""

import csv
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from utils.files import atomic_write_bytes

TRAIN_COLOR, VALIDATION_COLOR, CAPACITY_COLOR = "tab:blue", "tab:orange", "tab:green"


def read_log_csv(path: Path) -> dict[str, np.ndarray]:
    """CSV with a header row → {column: float array}; empty or bad cells → nan."""
    path = Path(path)
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    header, body = rows[0], [row for row in rows[1:] if row]

    def number(cell: str) -> float:
        try:
            return float(cell)
        except ValueError:  # "" from a column a row did not log
            return np.nan

    return {
        name: np.array(
            [number(row[j]) if j < len(row) else np.nan for row in body],
            dtype=np.float64,
        )
        for j, name in enumerate(header)
    }


def _save(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred mean over `window` points, ignoring nan; the ends use fewer points."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    kernel = np.ones(max(1, window))
    total = np.convolve(np.where(valid, values, 0.0), kernel, mode="same")
    count = np.convolve(valid.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _maybe_log(ax, *series: np.ndarray) -> None:
    # Log scale only when it helps: positive values spanning > 2 orders of magnitude
    # (the first steps' reconstruction loss dwarfs the rest of the run).
    values = np.concatenate([s[np.isfinite(s)] for s in series])
    if values.size and values.min() > 0 and values.max() / values.min() > 100:
        ax.set_yscale("log")


def save_loss_curves(
    path: Path, train: dict[str, np.ndarray], validation: dict[str, np.ndarray]
) -> None:
    """Four panels against step: loss, reconstruction, KL, and β or C (nats)."""
    validation = validation or {}
    use_capacity = "capacity" in train and np.isfinite(train["capacity"]).any()
    schedule = "capacity" if use_capacity else "beta"
    panels = [
        ("loss", "Total loss"),
        ("reconstruction_loss", "Reconstruction loss"),
        ("kl", "KL (nats)"),
        (schedule, "Capacity C (nats)" if use_capacity else "β"),
    ]
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    train_step = train.get("step", np.array([]))
    # ~1/50 of the run: smooths batch noise without hiding trends.
    window = max(1, len(train_step) // 50)
    for ax, (name, title) in zip(axes, panels, strict=True):
        ax.set_title(title)
        ax.grid(alpha=0.3)
        shown = []
        if name in train and len(train_step):
            raw = train[name]
            smooth = moving_average(raw, window) if name != schedule else raw
            if name != schedule and window > 1:
                ax.plot(train_step, raw, color=TRAIN_COLOR, alpha=0.2, linewidth=0.8)
            ax.plot(
                train_step,
                smooth,
                color=TRAIN_COLOR,
                linewidth=1.5,
                label="training" if name != schedule else None,
            )
            shown.append(raw)
        if name in validation and "step" in validation and len(validation["step"]):
            ax.plot(
                validation["step"],
                validation[name],
                "o",
                color=VALIDATION_COLOR,
                markersize=4,
                label="validation",
            )
            shown.append(validation[name])
        if name == "kl" and use_capacity:
            # The capacity objective pulls KL towards C (Burgess 2018): show both.
            ax.plot(
                train_step,
                train["capacity"],
                "--",
                color=CAPACITY_COLOR,
                linewidth=1.2,
                label="capacity C",
            )
        if shown:
            _maybe_log(ax, *shown)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize=9)
        else:
            ax.text(
                0.5,
                0.5,
                "no data",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="gray",
            )
    for ax in axes[2:]:
        ax.set_xlabel("step")
    _save(fig, path)


def save_kl_bars(
    path: Path,
    kl_per_latent: np.ndarray,
    title: str = "KL per latent",
    active_threshold: float = 0.01,
) -> None:
    """Bars of KL per latent (nats), sorted descending, threshold as a dashed line."""
    kl = np.asarray(kl_per_latent, dtype=np.float64)
    order = np.argsort(-kl, kind="stable")
    n_active = int((kl > active_threshold).sum())
    # Log scale: inactive latents sit 3+ orders of magnitude below active ones, and
    # the 0.01-nat threshold would be invisible on a linear axis. Below the floor
    # (1e-5 nats by default) a latent carries nothing worth a bar.
    floor = active_threshold / 1000
    fig = Figure(figsize=(max(6.0, 0.32 * len(kl) + 1.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(kl))
    ax.bar(
        x,
        np.maximum(kl[order], floor),
        color=np.where(kl[order] > active_threshold, TRAIN_COLOR, "silver"),
    )
    ax.axhline(
        active_threshold,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"active threshold {active_threshold:g} nats",
    )
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor, top=max(kl.max(initial=0.0), active_threshold) * 2)
    ax.set_xticks(
        x, [f"z{i}" for i in order], rotation=90 if len(kl) > 16 else 0, fontsize=9
    )
    ax.set_xlim(-0.6, len(kl) - 0.4)
    ax.set_ylabel("KL (nats)")
    ax.set_title(f"{title} — {n_active} of {len(kl)} active")
    ax.legend(loc="upper right", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
