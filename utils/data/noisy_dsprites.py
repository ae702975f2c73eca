"""Noisy-dSprites (Locatello et al. ICML 2019; disentanglement_lib's `noisy_dsprites`,
data/ground_truth/dsprites.py `NoisyDSprites`).

dSprites' factors, grid and index order (color 1, shape 3, scale 6, orientation 40,
posX 32, posY 32: 737,280 images; scored: shape, scale, orientation, posX, posY),
and its splits. Image: min(x₃ + n, 1), x₃ the mask on 3 channels,
n ~ U(0, 1)^(64×64×3) per pixel and channel; uint8: 255 on the sprite,
round(255 · n) elsewhere.

disentanglement_lib draws n afresh at every read; here it is a pure function of the
index (utils/data/draws.py): each SplitMix64 output (SEED, fixed,
recorded in `version`) gives four 16-bit values b, least significant first, for
the pixels in C order (row, column, channel). A value b is the pixel
⌊(b − ⌊b/256⌋ + 128) / 256⌋: round(255 · n) for n = b / 65535 (but for 128 of the
65,536 values, one level off), chosen as it needs no multiplication and so runs on
four values per uint64 at once. Each of 1..254 comes out with probability 257 or
258 in 65,536 (1/255 to within 0.4 %), 0 and 255 with about half that, as
round(255 · n) for n ~ U(0, 1).
"""

import sys
from pathlib import Path

import numpy as np

from utils.data import draws
from utils.data import dsprites_variants as variants

SEED = 0x0015_0002  # of the noise; changing it (or the recipe) changes `version`
STRIDE = 64 * 64 * 3 // 4  # SplitMix64 outputs per image: four 16-bit values each
STEPS = np.arange(STRIDE, dtype=np.uint64) * draws.GAMMA  # state of draw j − first
LOW_BYTES = np.uint64(0x00FF_00FF_00FF_00FF)
HALVES = np.uint64(0x0080_0080_0080_0080)
CHUNK = 8  # images hashed at a time: their 200 KB of state stays in cache


def level(b):
    """16-bit values → their uint8 pixels, ⌊(b − ⌊b / 256⌋ + 128) / 256⌋."""
    b = np.asarray(b, dtype=np.int64)
    return ((b - (b >> 8) + 128) >> 8).astype(np.uint8)


def levels_in_place(words: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """`level` of the four 16-bit lanes of each uint64 at once (no lane borrows
    or carries: b − ⌊b/256⌋ + 128 < 2¹⁶), each left in its lane's low byte; then
    their bytes, (n, 4 · words) uint8, lane 0 (least significant) first."""
    np.right_shift(words, np.uint64(8), out=scratch)
    np.bitwise_and(scratch, LOW_BYTES, out=scratch)
    np.subtract(words, scratch, out=words)
    np.add(words, HALVES, out=words)
    np.right_shift(words, np.uint64(8), out=words)
    np.bitwise_and(words, LOW_BYTES, out=words)
    if sys.byteorder != "little":
        words = words.byteswap()
    return words.view(np.uint8)[:, ::2]


def noise(indices, out=None) -> np.ndarray:
    """(n, 64, 64, 3) uint8: each image's background, written into `out` if given."""
    first = draws.first_states(SEED, indices, STRIDE)
    out = np.empty((len(first), 64, 64, 3), np.uint8) if out is None else out
    words = np.empty((CHUNK, STRIDE), np.uint64)
    scratch = np.empty_like(words)
    for start in range(0, len(first), CHUNK):
        n = len(first[start : start + CHUNK])
        z, tmp = words[:n], scratch[:n]
        np.add(first[start : start + n, None], STEPS, out=z)
        draws.mix(z, tmp)
        out[start : start + n].reshape(n, -1)[:] = levels_in_place(z, tmp)
    return out


class NoisyDSprites(variants.DSpritesVariant):
    name = "noisy_dsprites"
    seed = SEED
    recipe = "noisy_dsprites_v1"

    def paint(self, masks, indices, out):
        noise(indices, out)
        sprite = masks * np.uint8(255)
        for k in range(3):  # min(x + n, 1): 255 on the sprite
            np.maximum(out[..., k], sprite, out=out[..., k])


def load(data_dir: Path, log=print, **_) -> NoisyDSprites:
    data = NoisyDSprites(variants.load_masks(data_dir, log))
    log(f"noisy_dsprites: dSprites masks on per-pixel noise ({data.version})")
    return data
