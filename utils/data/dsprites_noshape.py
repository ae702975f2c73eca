"""dSprites without its shape factor: the squares only.

Factors (dSprites' order, posY fastest): color 1, shape 1 (the square, dSprites'
shape class 0), scale 6, orientation 40, posX 32, posY 32: 245,760 images, 64×64×1,
0 or 255; scored: scale, orientation, posX, posY. Index i is dSprites' index i (its
squares are its first 245,760 images). Splits: a permutation seeded 0, 5,000 images
each for validation and test.

disentanglement_lib's `dsprites_noshape` (`DSprites([2, 3, 4, 5])`) scores the same
four factors but draws the shape at random, as an unscored nuisance, each time an
image is sampled. Here the shape is fixed instead, so that an image is a pure
function of its index, as everywhere in this repo (`read(indices)`): a random shape
per read would give the same index other pixels in training, in each metric and on
resume. The images are therefore not dlib's: a third of its images, one shape.
"""

from pathlib import Path

import numpy as np

from utils.data import dsprites
from utils.data.dsprites_variants import load_masks
from utils.data.ground_truth import GroundTruthData, seeded_splits

SHAPE = 0  # dSprites' shape class kept: the square
FACTOR_SIZES = (1, 1, 6, 40, 32, 32)
NUM_IMAGES = 245_760
NUM_HOLDOUT = 5_000  # images each in "validation" and "test"


class DSpritesNoShape(GroundTruthData):
    name = "dsprites_noshape"
    factor_names = dsprites.FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    image_shape = (64, 64, 1)

    def __init__(self, masks: dsprites.DSprites):
        self.dsprites = masks
        self.splits = seeded_splits(NUM_IMAGES, NUM_HOLDOUT)
        self.source = f"dSprites' squares, {masks.source}"
        self.version = f"dsprites_noshape_v1 (shape {SHAPE}) on {masks.version}"

    def dsprites_index(self, indices) -> np.ndarray:
        """This dataset's indices → dSprites' (the same numbers: shape 0 first)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= NUM_IMAGES):
            raise IndexError(f"image indices must be in [0, {NUM_IMAGES})")
        return indices + SHAPE * NUM_IMAGES

    def read(self, indices) -> np.ndarray:
        """(n, 64, 64, 1) uint8 images with values 0 or 255, in the order given."""
        return self.dsprites.read(self.dsprites_index(indices))


def load(data_dir: Path, log=print, **_) -> DSpritesNoShape:
    data = DSpritesNoShape(load_masks(data_dir, log))
    log(f"dsprites_noshape: dSprites' {NUM_IMAGES:,} squares ({data.version})")
    return data
