"""Color-dSprites (Locatello et al. ICML 2019; disentanglement_lib's `color_dsprites`,
data/ground_truth/dsprites.py `ColorDSprites`).

dSprites' factors, grid and index order (color 1, shape 3, scale 6, orientation 40,
posX 32, posY 32: 737,280 images; scored: shape, scale, orientation, posX, posY),
and its splits. Image: the dSprites mask on 3 channels times a colour
c ~ U(0.5, 1)³ drawn once per image, on black; uint8 = round(255 · c) on the
sprite (128..255 per channel), 0 elsewhere.

disentanglement_lib draws c afresh at every read; here c is draws 0, 1, 2 (R, G, B)
of the image's SplitMix64 counters (utils/data/draws.py) with the fixed
SEED: a pure function of the index, recorded in `version`.
"""

from pathlib import Path

import numpy as np

from utils.data import draws
from utils.data import dsprites_variants as variants

SEED = 0xC010_0001  # of the colours; changing it (or the recipe) changes `version`


def colours(indices) -> np.ndarray:
    """(n, 3) uint8: each image's sprite colour, round(255 · U(0.5, 1)) per channel."""
    c = 0.5 + 0.5 * draws.uniform(draws.of_images(SEED, indices, stride=3))
    return np.rint(255 * c).astype(np.uint8)


class ColorDSprites(variants.DSpritesVariant):
    name = "color_dsprites"
    seed = SEED
    recipe = "color_dsprites_v1"

    def paint(self, masks, indices, out):
        variants.fill_channels(out, masks, colours(indices))


def load(data_dir: Path, log=print, **_) -> ColorDSprites:
    data = ColorDSprites(variants.load_masks(data_dir, log))
    log(f"color_dsprites: dSprites masks coloured per image ({data.version})")
    return data
