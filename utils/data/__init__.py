"""Datasets, one module per dataset; this registry is the only list.

Each module named here provides `load(data_dir, log, image_size, crop_size) ->
source` (a source: `read(indices)` → (n, H, W, C) uint8, `splits`, `image_shape`,
`name`; a ground-truth dataset is a utils/data/ground_truth.GroundTruthData). What
the checks need before any work (channels, a fixed image size, whether it has
factors) is declared here, beside the module's name, so that `--help` and the
checks import no dataset module (nor matplotlib, h5py …): modules are imported
only when used. Adding a dataset = one module and one line.
"""

import importlib
from dataclasses import dataclass
from pathlib import Path


class DataNotFound(Exception):
    """The dataset is not where the parameters say. Exit code 2."""


@dataclass(frozen=True)
class DatasetInfo:
    channels: int  # of its images
    image_size: int | None = None  # fixed size (64 for ground-truth data), or any
    has_factors: bool = True  # ground-truth factors: every metric can score it
    generated: bool = False  # made here, no download


def _module(name, **info):
    return name, DatasetInfo(**info)


GROUND_TRUTH = {"channels": 3, "image_size": 64}
DATASETS = {  # --dataset name → (module, what it is)
    "celeba": _module("utils.data.celeba", channels=3, has_factors=False),
    "dsprites": _module("utils.data.dsprites", **GROUND_TRUTH | {"channels": 1},
                        generated=True),
}  # fmt: skip


def module_of(dataset: str):
    return importlib.import_module(DATASETS[dataset][0])


def info(dataset: str) -> DatasetInfo:
    return DATASETS[dataset][1]


def load_source(dataset, data_dir, image_size, crop_size, log=print):
    return module_of(dataset).load(
        Path(data_dir), log=log, image_size=image_size, crop_size=crop_size
    )
