"""XYSquares (Michlo et al., disent: disent/dataset/data/_groundtruth__xysquares.py
`XYSquaresData`, its defaults): three 8×8 squares, one per RGB channel, 64×64×3.

Factors, in disent's order (row-major, y_B fastest, as its `idx_to_pos`):
x_R 8, y_R 8, x_G 8, y_G 8, x_B 8, y_B 8: 262,144 images, all scored. The square
of channel k (R, G, B) fills rows [8·y_k, 8·y_k + 8) and columns [8·x_k, 8·x_k + 8)
of channel k with 255 (disent's square size 8, grid spacing 8, offset
(64 − (8 + 7 · 8)) // 2 = 0); the rest is 0. Squares of different channels may
share pixels; with spacing = size, two images that differ in one factor differ in 128
channel values, whatever the factor and the distance (disent's point: pixel losses
see no order). Images are rendered on the fly from the index (no file). Splits: a
permutation seeded 0, 5,000 images each for validation and test.
"""

from pathlib import Path

import numpy as np

from utils.data.draws import in_pieces
from utils.data.ground_truth import GroundTruthData, seeded_splits
from utils.data.xy_object import spans

FACTOR_NAMES = ("x_R", "y_R", "x_G", "y_G", "x_B", "y_B")
FACTOR_SIZES = (8,) * 6
NUM_IMAGES = 262_144
NUM_HOLDOUT = 5_000
SQUARE = 8  # side, and the grid spacing


class XYSquares(GroundTruthData):
    name = "xy_squares"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    image_shape = (64, 64, 3)
    source = "generated (disent XYSquaresData's defaults, rendered from the index)"
    version = "xy_squares_v1"

    def __init__(self):
        self.splits = seeded_splits(NUM_IMAGES, NUM_HOLDOUT)

    def read(self, indices) -> np.ndarray:
        """(n, 64, 64, 3) uint8 images with values 0 or 255, in the order given."""
        return in_pieces(self.draw, indices, self.image_shape)

    def draw(self, indices, out):
        classes = np.unravel_index(indices, FACTOR_SIZES)
        length = np.full(len(indices), SQUARE)
        for k in range(3):  # R, G, B: factors x_k, y_k at 2k, 2k + 1
            columns = spans(SQUARE * classes[2 * k], length).astype(np.uint8)
            rows = spans(SQUARE * classes[2 * k + 1], length).astype(np.uint8)
            columns *= np.uint8(255)
            np.multiply(rows[:, :, None], columns[:, None, :], out=out[..., k])


def load(data_dir: Path = None, log=print, **_) -> XYSquares:
    data = XYSquares()
    log(f"xy_squares: {NUM_IMAGES:,} images, drawn from their factors ({data.version})")
    return data
