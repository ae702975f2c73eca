"""Scream-dSprites (Locatello et al. ICML 2019; disentanglement_lib's
`scream_dsprites`, data/ground_truth/dsprites.py `ScreamDSprites`). Needs the
painting, which this repo does not redistribute: see `missing_painting`.

dSprites' factors, grid and index order (color 1, shape 3, scale 6, orientation 40,
posX 32, posY 32: 737,280 images; scored: shape, scale, orientation, posX, posY),
and its splits. disentanglement_lib's recipe: the painting shrunk with PIL
`thumbnail((350, 274))` (to 274 px high, keeping its aspect ratio), scaled to
[0, 1]; per image a 64×64 crop p at row r ~ U{0 … H − 65}, column
c ~ U{0 … W − 65} (dlib's `randint(0, H − 64)`) and u ~ U(0, 1)³; background
b = (p + u) / 2; the image is 1 − b where the mask is on, b elsewhere; uint8 =
round(255 · value).

disentanglement_lib draws (r, c, u) afresh at every read; here they are draws 0, 1
and 2–4 of the image's SplitMix64 counters (utils/data/draws.py) with
the fixed SEED: a pure function of the index. `version` records the seed and a hash
of the shrunk painting's pixels (PIL's resampling may change between versions).
"""

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from utils.data import DataNotFound, draws
from utils.data import dsprites_variants as variants

SEED = 0x5C2E_0003  # of the crops and shifts; changing it changes `version`
FILENAMES = ("scream.jpg", "scream/scream.jpg")  # ours; disentanglement_lib's layout
URL = "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"
THUMBNAIL = (350, 274)  # PIL (width, height) the painting is shrunk to fit in
STRIDE = 5  # draws per image: crop row, crop column, u (3)


def find_painting(data_dir: Path) -> Path:
    for name in FILENAMES:
        if (Path(data_dir) / name).is_file():
            return Path(data_dir) / name
    raise missing_painting(data_dir)


def missing_painting(data_dir: Path) -> DataNotFound:
    data_dir = Path(data_dir)
    return DataNotFound(
        f"scream_dsprites needs Munch's The Scream as {data_dir / FILENAMES[0]} (or "
        f"{data_dir / FILENAMES[1]}, disentanglement_lib's layout), which is not "
        "there. It is not shipped with this repo; download the image "
        f"disentanglement_lib uses (bin/dlib_download_data): {URL}, e.g. "
        f"`wget -O {data_dir / FILENAMES[0]} {URL}`, then run again."
    )


def load_painting(path: Path) -> np.ndarray:
    """(H, W, 3) uint8: the painting shrunk as disentanglement_lib does."""
    with Image.open(path) as image:
        image = image.convert("RGB")  # a no-op for the (RGB) JPEG dlib reads
        image.thumbnail(THUMBNAIL)
        painting = np.asarray(image, dtype=np.uint8).copy()
    if min(painting.shape[:2]) <= 64:
        raise ValueError(
            f"{path} is {painting.shape[1]}×{painting.shape[0]} px once shrunk to "
            f"fit {THUMBNAIL[0]}×{THUMBNAIL[1]}: it needs more than 64 px per side "
            f"for the 64×64 crops; use the painting from {URL}"
        )
    return painting


class ScreamDSprites(variants.DSpritesVariant):
    name = "scream_dsprites"
    seed = SEED
    recipe = "scream_dsprites_v1"
    batch = 512

    def __init__(self, dsprites, painting: np.ndarray, path: Path):
        digest = hashlib.sha256(painting.tobytes()).hexdigest()[:16]
        size = f"{painting.shape[1]}x{painting.shape[0]}"
        self.recipe = f"{self.recipe}, painting {size} sha256:{digest}"
        super().__init__(dsprites)
        self.source = f"{path} and dSprites masks, {dsprites.source}"
        self.painting = painting
        # [r, c] is the 64×64 crop at row r, column c, as (3, 64, 64): no copy.
        self.crops = np.lib.stride_tricks.sliding_window_view(
            painting, (64, 64), axis=(0, 1)
        )

    def nuisance(self, indices):
        """Per image: crop row, crop column (n,) int64 and u (n, 3) float64."""
        bits = draws.of_images(SEED, indices, stride=STRIDE)
        height, width = self.painting.shape[:2]
        rows = draws.below(bits[:, 0], height - 64)
        columns = draws.below(bits[:, 1], width - 64)
        return rows, columns, draws.uniform(bits[:, 2:])

    def paint(self, masks, indices, out):
        rows, columns, u = self.nuisance(indices)
        # Channels first, (n, 3, 64, 64): every step below runs on whole planes.
        # 255 · b = (255 · p + 255 · u) / 2; 255 · (1 − b) where the mask is on.
        values = self.crops[rows, columns].astype(np.float32)
        values += (255 * u).astype(np.float32)[:, :, None, None]
        values *= np.float32(0.5)
        on = np.broadcast_to(masks[:, None].astype(bool), values.shape)
        np.subtract(np.float32(255), values, out=values, where=on)
        np.rint(values, out=values)
        np.copyto(out, values.transpose(0, 2, 3, 1), casting="unsafe")


def load(data_dir: Path, log=print, **_) -> ScreamDSprites:
    path = find_painting(data_dir)  # before generating dSprites: fail first
    painting = load_painting(path)
    data = ScreamDSprites(variants.load_masks(data_dir, log), painting, path)
    log(f"scream_dsprites: dSprites masks on crops of {path} ({data.version})")
    return data
