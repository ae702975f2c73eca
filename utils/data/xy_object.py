"""XYObject (Michlo et al., disent: disent/dataset/data/_groundtruth__xyobject.py
`XYObjectData`, its defaults): one coloured square on black, 64×64×3.

Factors, in disent's order (row-major, color fastest, as its `idx_to_pos`):
x 25, y 25, scale 5, color 24: 75,000 images, all scored.
- scale s ∈ {0 … 4}: side 7 + 2s px (7, 9, 11, 13, 15);
- x, y ∈ {0 … 24}: the square's top-left pixel is column 2x + r, row 2y + r with
  r = (15 − side) // 2 (disent's grid spacing 2 and its centring on the largest
  square: `(64 − 15) // 2 + 1` = 25 placements), so every scale shares a centre;
- color c ∈ {0 … 23}, disent's `rainbow_4` palette: brightness level c // 6 major,
  hue c % 6 minor, hues R, Y, G, C, B, M (R = (255, 0, 0), Y = (255, 255, 0), …),
  each channel that is on at floor(255 · (c // 6 + 1) / 4) = 63, 127, 191 or 255.
The square fills rows [2y + r, 2y + r + side) and columns [2x + r, 2x + r + side)
with its colour; the rest is 0. Images are rendered on the fly from the index (no
file). Splits: a permutation seeded 0, 2,500 images each for validation and test.
"""

from pathlib import Path

import numpy as np

from utils.data.draws import in_pieces
from utils.data.ground_truth import GroundTruthData, seeded_splits

FACTOR_NAMES = ("x", "y", "scale", "color")
FACTOR_SIZES = (25, 25, 5, 24)
NUM_IMAGES = 75_000
NUM_HOLDOUT = 2_500
SPACING = 2
SIDES = np.arange(7, 16, 2)  # 7, 9, 11, 13, 15
HUES = np.array(
    [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]]
)  # R, Y, G, C, B, M
LEVELS = 4
# (24, 3) uint8, disent's `_shades(4, rainbow)`: brightness major, hue minor.
COLORS = np.concatenate(
    [HUES * (255 * level // LEVELS) for level in range(1, LEVELS + 1)]
).astype(np.uint8)


def spans(start: np.ndarray, length: np.ndarray, size: int = 64) -> np.ndarray:
    """(n, size) bool: pixel k lies in [start, start + length)."""
    pixels = np.arange(size)
    return (pixels >= start[:, None]) & (pixels < (start + length)[:, None])


class XYObject(GroundTruthData):
    name = "xy_object"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    image_shape = (64, 64, 3)
    source = "generated (disent XYObjectData's defaults, rendered from the index)"
    version = "xy_object_v1"

    def __init__(self):
        self.splits = seeded_splits(NUM_IMAGES, NUM_HOLDOUT)

    def read(self, indices) -> np.ndarray:
        """(n, 64, 64, 3) uint8 images, in the order given."""
        return in_pieces(self.draw, indices, self.image_shape)

    def draw(self, indices, out):
        x, y, scale, color = np.unravel_index(indices, FACTOR_SIZES)
        side = SIDES[scale]
        offset = (SIDES[-1] - side) // 2
        rows = spans(SPACING * y + offset, side).astype(np.uint8)
        columns = spans(SPACING * x + offset, side).astype(np.uint8)
        # One image row of the square, (n, 64 · 3), then the rows it covers.
        row = (columns[:, :, None] * COLORS[color][:, None, :]).reshape(-1, 1, 192)
        np.multiply(rows[:, :, None], row, out=out.reshape(-1, 64, 192))


def load(data_dir: Path = None, log=print, **_) -> XYObject:
    data = XYObject()
    log(f"xy_object: {NUM_IMAGES:,} images, drawn from their factors ({data.version})")
    return data
