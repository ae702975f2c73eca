"""Image artifacts of a run: grids, the per-step composite, traversals and GIFs.

Everything takes float arrays in [0, 1] shaped (..., H, W, C) with C = 1 or 3 and
writes files atomically (temporary file in the same folder, then os.replace), so a
killed run never leaves a half-written image behind.
"""

import io
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from utils.files import atomic_write_bytes

WHITE = 255
TEXT_COLOR = (20, 20, 20)


def step_filename(prefix: str, step: int, ext: str) -> str:
    # Zero-padded so a plain sort puts step 10 after step 2.
    return f"{prefix}_{step:07d}.{ext}"


def to_uint8_rgb(images: np.ndarray) -> np.ndarray:
    """(..., H, W, 1 or 3) floats in [0, 1] → (..., H, W, 3) uint8."""
    images = np.asarray(images, dtype=np.float32)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if images.shape[-1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got shape {images.shape}")
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


def image_grid(
    images: np.ndarray, rows: int, cols: int, pad: int = 2, background: int = WHITE
) -> np.ndarray:
    """(n, H, W, C) in [0, 1] → one (rows·H + (rows+1)·pad, cols·W + …, 3) uint8 image.

    Image i goes to cell (i // cols, i % cols); cells without an image stay blank.
    """
    images = to_uint8_rgb(images)[: rows * cols]
    _, h, w, _ = images.shape
    grid = np.full(
        (rows * (h + pad) + pad, cols * (w + pad) + pad, 3), background, dtype=np.uint8
    )
    for i, image in enumerate(images):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[top : top + h, left : left + w] = image
    return grid


def save_composite(
    path: Path,
    step: int,
    originals,
    reconstructions,
    interpolations,
    interpolation_cols: int = 16,
) -> None:
    """The original repo's per-step JPEG: header, then three captioned grids."""
    height = np.asarray(originals).shape[1]
    text_size = int(np.clip(height // 4, 14, 32))  # 14 px at 32², 16 at 64², 32 at 128²
    margin = text_size // 2 + 4
    cols = min(len(originals), interpolation_cols)

    def grid(imgs, cols):
        return image_grid(imgs, -(-len(imgs) // cols), cols)  # rows rounded up

    sections = [
        ("Test images", grid(originals, cols)),
        ("Reconstructions", grid(reconstructions, cols)),
        (
            "Interpolations between encoded test images",
            grid(interpolations, interpolation_cols),
        ),
    ]
    # Pillow ≥ 10.1 ships a scalable default font: no system font needed.
    header_size = round(text_size * 1.4)
    header = ImageFont.load_default(size=header_size)
    caption = ImageFont.load_default(size=text_size)
    header_text = f"Step: {step}"
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))  # only to measure text
    text_width = max(
        [draw.textlength(header_text, font=header)]
        + [draw.textlength(title, font=caption) for title, _ in sections]
    )
    width = int(max([text_width] + [g.shape[1] for _, g in sections])) + 2 * margin
    total = (
        2 * margin
        + header_size
        + sum(text_size + margin // 2 + g.shape[0] + margin for _, g in sections)
    )
    page = Image.new("RGB", (width, total), (WHITE,) * 3)
    draw = ImageDraw.Draw(page)
    draw.text((margin, margin), header_text, font=header, fill=TEXT_COLOR)
    y = 2 * margin + header_size
    for title, cells in sections:
        draw.text((margin, y), title, font=caption, fill=TEXT_COLOR)
        y += text_size + margin // 2
        page.paste(Image.fromarray(cells), (margin, y))
        y += cells.shape[0] + margin
    buffer = io.BytesIO()
    # 4:4:4 chroma keeps the 1-pixel detail of small images from smearing.
    page.save(buffer, format="JPEG", quality=90, subsampling=0)
    atomic_write_bytes(path, buffer.getvalue())


def save_traversal(
    path: Path,
    step: int | None,
    traversals: np.ndarray,
    kl_per_latent: np.ndarray,
    values: np.ndarray,
    order: np.ndarray,
) -> None:
    """Traversal grid: row r sweeps latent order[r] over values; PNG."""
    rows = [f"z{i}  KL {kl_per_latent[i]:.2f}" for i in order[: len(traversals)]]
    columns = [f"{v:.3g}" for v in np.asarray(values)]
    title = "Latent traversals" + ("" if step is None else f" — step {step}")
    save_labelled_grid(path, traversals, rows, columns, title)


def save_labelled_grid(
    path, sweeps, row_labels, column_labels, title, label_inches=1.35
):
    """sweeps (rows, columns, H, W, C) as one image grid with a label per row
    (left) and per column (top) and a title; PNG."""
    n_rows, n_columns, h, w, channels = sweeps.shape
    pad, dpi = 2, 100
    grid = image_grid(sweeps.reshape(-1, h, w, channels), n_rows, n_columns, pad=pad)
    scale = max(1, 64 // h)  # show small images at ≥ 64 px so rows stay legible
    image_w, image_h = grid.shape[1] * scale / dpi, grid.shape[0] * scale / dpi
    right, top, bottom = 0.15, 0.85, 0.15  # inches, room for the labels
    fig_w, fig_h = label_inches + image_w + right, top + image_h + bottom
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes(
        (label_inches / fig_w, bottom / fig_h, image_w / fig_w, image_h / fig_h)
    )
    show_labelled_canvas(
        ax, grid,
        pad + np.arange(n_rows) * (h + pad) + (h - 1) / 2, row_labels,
        pad + np.arange(n_columns) * (w + pad) + (w - 1) / 2, column_labels,
    )  # fmt: skip
    fig.text(0.5, 1 - 0.2 / fig_h, title, ha="center", va="top", fontsize=13)
    buffer = io.BytesIO()
    # zlib level 1: a third of the default level 6's time (the page is large), and
    # a file ~10 % bigger; this runs every plot_step during training.
    fig.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    atomic_write_bytes(path, buffer.getvalue())


def show_labelled_canvas(ax, canvas, row_centres, row_labels, col_centres, col_labels):
    """A pixel canvas with labelled rows (left) and columns (top), no frame."""
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks(row_centres, row_labels, fontsize=10, family="monospace")
    ax.set_xticks(col_centres, col_labels, fontsize=9)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    # duration is ms per frame; loop=0 repeats forever. Pillow merges identical
    # consecutive frames (adding their durations), which looks the same.
    gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)
    atomic_write_bytes(path, gif)


def save_gif(
    path: Path, frame_paths: list[Path], fps: float = 4, max_frames: int = 200
) -> None:
    """GIF of image files in the given order, evenly subsampled to max_frames."""
    if not frame_paths:
        raise ValueError("save_gif needs at least one frame")
    # Even subsampling that always keeps the first and the last frame.
    keep = np.unique(
        np.linspace(0, len(frame_paths) - 1, min(max_frames, len(frame_paths)))
        .round()
        .astype(int)
    )
    images = [np.asarray(Image.open(frame_paths[i]).convert("RGB")) for i in keep]
    # Pad every frame on the right/bottom to the largest size seen (white page).
    h = max(image.shape[0] for image in images)
    w = max(image.shape[1] for image in images)
    frames = np.full((len(images), h, w, 3), WHITE, dtype=np.uint8)
    for frame, image in zip(frames, images, strict=True):
        frame[: image.shape[0], : image.shape[1]] = image
    _write_gif(path, frames, fps)


def latent_gif(
    path: Path, frames: np.ndarray, fps: float = 8, upscale: int = 2
) -> None:
    """(n, H, W, C) in [0, 1] → GIF sweeping 0…n−1 then back n−2…1 (2n−2 frames)."""
    frames = to_uint8_rgb(frames)
    if len(frames) > 1:
        frames = np.concatenate([frames, frames[-2:0:-1]])
    # Nearest-neighbour upscaling keeps pixels sharp (64² is tiny on screen).
    frames = frames.repeat(upscale, axis=1).repeat(upscale, axis=2)
    _write_gif(path, frames, fps)
