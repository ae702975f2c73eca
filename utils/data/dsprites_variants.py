"""What color_dsprites, noisy_dsprites and scream_dsprites share: dSprites'
factors, index order and splits, and its masks, painted by each variant with
nuisance draws that are a pure function of the image index (utils/data/draws.py).
"""

import numpy as np

from utils.data.draws import in_pieces
from utils.data.dsprites import FACTOR_NAMES, FACTOR_SIZES, DSprites, load_dsprites
from utils.data.ground_truth import GroundTruthData


def masks(dsprites: DSprites, indices) -> np.ndarray:
    """(n, 64, 64) uint8 dSprites masks with values 0 or 1."""
    packed = dsprites.packed[np.asarray(indices, dtype=np.int64).reshape(-1)]
    return np.unpackbits(packed, axis=1).reshape(-1, 64, 64)


def fill_channels(out: np.ndarray, plane: np.ndarray, colours: np.ndarray):
    """out[..., k] = plane · colours[:, k]: (n, 64, 64, 3) from a (n, 64, 64) 0/1
    plane and (n, 3) uint8 colours. One channel at a time: numpy's broadcasting
    over a last axis of 3 is several times slower."""
    for k in range(out.shape[-1]):
        np.multiply(plane, colours[:, k, None, None], out=out[..., k])


def load_masks(data_dir, log=print) -> DSprites:
    """The dSprites the variants colour: the official npz in `data_dir` if there,
    else the generated copy, cached there (utils/data/dsprites.py)."""
    return load_dsprites(data_dir, log=log)


class DSpritesVariant(GroundTruthData):
    """dSprites' factors, index order and splits; RGB images painted from its masks
    by a subclass's `paint`, `batch` images at a time."""

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    image_shape = (64, 64, 3)
    seed: int  # of the nuisance draws
    recipe: str  # the version's name for the painting, e.g. "color_dsprites_v1"
    batch = 256  # images painted at a time

    def __init__(self, dsprites: DSprites):
        self.dsprites = dsprites
        self.splits = dsprites.splits
        self.source = f"dSprites masks, {dsprites.source}"
        self.version = f"{self.recipe} (seed {self.seed}) on {dsprites.version}"

    def paint(self, masks, indices, out):
        """Writes the (n, 64, 64, 3) images of `indices` into `out`, from their
        (n, 64, 64) 0/1 masks."""
        raise NotImplementedError

    def read(self, indices) -> np.ndarray:
        """(n, 64, 64, 3) uint8 images, in the order given."""

        def paint(part, out):
            self.paint(masks(self.dsprites, part), part, out)

        return in_pieces(paint, indices, self.image_shape, self.batch)
