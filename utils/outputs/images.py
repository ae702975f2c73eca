"""Pictures as files: image grids, the per-step composite page, labelled grids of
latent sweeps, GIFs, and matplotlib figures as PNG.

Images are float arrays in [0, 1] shaped (..., H, W, C) with C = 1 or 3. Every
file is written atomically (temporary file in the same folder, then os.replace),
so a killed run never leaves a half-written image behind; the save functions also
return the encoded bytes, for TensorBoard.
"""

import io
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from utils.files import atomic_write_bytes

WHITE = 255
TEXT_COLOR = (20, 20, 20)
PAD = 2  # pixels between the cells of a grid
MIN_CELL = 64  # smaller images are enlarged (nearest) to this, so rows stay legible


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
    images: np.ndarray, rows: int, cols: int, pad: int = PAD, background: int = WHITE
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


def save_figure(fig, path: Path, compress_level: int = 6) -> bytes:
    """A matplotlib figure as a PNG file, at the figure's own dpi; returns the PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", pil_kwargs={"compress_level": compress_level})
    atomic_write_bytes(path, buffer.getvalue())
    return buffer.getvalue()


def _save_page(page: Image.Image, path: Path, **encoder_options) -> bytes:
    buffer = io.BytesIO()
    page.save(buffer, **encoder_options)
    atomic_write_bytes(path, buffer.getvalue())
    return buffer.getvalue()


def _fonts(text_size: int):
    # Pillow ≥ 10.1 ships a scalable default font: no system font needed. It has
    # no arrows or dashes (→, —): titles drawn with it say "to" and use commas.
    return (
        ImageFont.load_default(size=round(text_size * 1.4)),
        ImageFont.load_default(size=text_size),
    )


def _text_width(texts, font) -> float:
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return max((measure.textlength(t, font=font) for t in texts), default=0.0)


def save_composite(
    path: Path,
    step: int,
    originals,
    reconstructions,
    interpolations,
    interpolation_cols: int = 16,
) -> bytes:
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
    header, caption = _fonts(text_size)
    header_text = f"Step: {step}"
    text_width = max(
        _text_width([header_text], header),
        _text_width([title for title, _ in sections], caption),
    )
    width = int(max([text_width] + [g.shape[1] for _, g in sections])) + 2 * margin
    total = (
        2 * margin
        + header.size
        + sum(text_size + margin // 2 + g.shape[0] + margin for _, g in sections)
    )
    page = Image.new("RGB", (width, total), (WHITE,) * 3)
    draw = ImageDraw.Draw(page)
    draw.text((margin, margin), header_text, font=header, fill=TEXT_COLOR)
    y = 2 * margin + header.size
    for title, cells in sections:
        draw.text((margin, y), title, font=caption, fill=TEXT_COLOR)
        y += text_size + margin // 2
        page.paste(Image.fromarray(cells), (margin, y))
        y += cells.shape[0] + margin
    # 4:4:4 chroma keeps the 1-pixel detail of small images from smearing.
    return _save_page(page, path, format="JPEG", quality=90, subsampling=0)


def labelled_grid_page(sweeps, row_labels, column_labels, title, notes=()):
    """sweeps (rows, columns, H, W, C) as one image with a title, lines of notes,
    a label left of each row and above each column. Drawn with Pillow, not
    matplotlib: ~10× faster, and this runs at every plot_step."""
    n_rows, n_columns, h, w, channels = np.shape(sweeps)
    scale = max(1, MIN_CELL // h)
    grid = image_grid(np.reshape(sweeps, (-1, h, w, channels)), n_rows, n_columns)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    pitch_y, pitch_x = (h + PAD) * scale, (w + PAD) * scale
    text_size = int(np.clip(pitch_y // 5, 12, 18))
    title_font, font = _fonts(text_size)
    margin, line = text_size, text_size + 4
    label_width = int(_text_width(row_labels, font)) + margin
    head = margin + title_font.size + margin // 2 + line * len(notes) + line
    width = max(
        2 * margin + label_width + grid.shape[1],
        2 * margin + int(_text_width([title], title_font)),
        2 * margin + int(_text_width(notes, font)),
    )
    page = Image.new("RGB", (width, head + grid.shape[0] + margin), (WHITE,) * 3)
    draw = ImageDraw.Draw(page)
    draw.text((margin, margin), title, font=title_font, fill=TEXT_COLOR)
    for i, note in enumerate(notes):
        y = margin + title_font.size + margin // 2 + i * line
        draw.text((margin, y), note, font=font, fill=TEXT_COLOR)
    left = margin + label_width
    page.paste(Image.fromarray(grid), (left, head))
    for c, label in enumerate(column_labels):
        x = left + PAD * scale + c * pitch_x + w * scale // 2
        draw.text((x, head - 4), label, font=font, fill=TEXT_COLOR, anchor="mb")
    for r, label in enumerate(row_labels):
        y = head + PAD * scale + r * pitch_y + h * scale // 2
        draw.text((margin, y), label, font=font, fill=TEXT_COLOR, anchor="lm")
    return page


def save_labelled_grid(path, sweeps, row_labels, column_labels, title, notes=()):
    """labelled_grid_page as a PNG file; returns the PNG."""
    page = labelled_grid_page(sweeps, row_labels, column_labels, title, notes)
    # zlib level 1: a third of level 6's time for a file ~10 % bigger.
    return _save_page(page, path, format="PNG", compress_level=1)


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
