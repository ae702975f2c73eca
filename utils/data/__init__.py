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
    generated: bool = False  # made here, no file to download


def _module(name, **info):
    return name, DatasetInfo(**info)


GROUND_TRUTH = {"channels": 3, "image_size": 64}
DATASETS = {  # --dataset name → (module, what it is)
    "celeba": _module("utils.data.celeba", channels=3, has_factors=False),
    "folder": _module("utils.data.folder", channels=3, has_factors=False),
    "dsprites": _module("utils.data.dsprites", **GROUND_TRUTH | {"channels": 1},
                        generated=True),
    "color_dsprites": _module("utils.data.color_dsprites", **GROUND_TRUTH,
                              generated=True),
    "noisy_dsprites": _module("utils.data.noisy_dsprites", **GROUND_TRUTH,
                              generated=True),
    "scream_dsprites": _module("utils.data.scream_dsprites", **GROUND_TRUTH),
    "dsprites_noshape": _module("utils.data.dsprites_noshape",
                                **GROUND_TRUTH | {"channels": 1}, generated=True),
    "xy_object": _module("utils.data.xy_object", **GROUND_TRUTH, generated=True),
    "xy_squares": _module("utils.data.xy_squares", **GROUND_TRUTH, generated=True),
    "shapes3d": _module("utils.data.shapes3d", **GROUND_TRUTH),
    "mpi3d_toy": _module("utils.data.mpi3d.toy", **GROUND_TRUTH),
    "mpi3d_realistic": _module("utils.data.mpi3d.realistic", **GROUND_TRUTH),
    "mpi3d_real": _module("utils.data.mpi3d.real", **GROUND_TRUTH),
    "smallnorb": _module("utils.data.smallnorb", **GROUND_TRUTH | {"channels": 1}),
    "cars3d": _module("utils.data.cars3d", **GROUND_TRUTH),
}  # fmt: skip


def module_of(dataset: str):
    return importlib.import_module(DATASETS[dataset][0])


def info(dataset: str) -> DatasetInfo:
    return DATASETS[dataset][1]


def check_found(dataset: str, data_dir) -> None:
    """DataNotFound if the dataset's files are not in data_dir, where its module
    can tell from their names alone (it has `locate(data_dir)`): main.py asks
    before TensorFlow starts, so that a missing download is answered in a second.
    Other modules answer when they load."""
    locate = getattr(module_of(dataset), "locate", None)
    if locate is not None:
        locate(Path(data_dir))


def check_usable(dataset: str, data_dir, mode: str) -> None:
    """DataNotFound, before any work, for metrics on a dataset without
    ground-truth factors and for files that are not where data_dir points."""
    if mode == "evaluate" and not info(dataset).has_factors:
        raise DataNotFound(
            f"the metrics need ground-truth factors, which {dataset} does not "
            "have: evaluate a run on a ground-truth dataset (dsprites, ...), --mode="
            "analyze it, or rank its seeds by UDR (--mode=evaluate --run_name=a,b,c)"
        )
    check_found(dataset, data_dir)


def load_source(dataset, data_dir, image_size, crop_size, log=print):
    return module_of(dataset).load(
        Path(data_dir), log=log, image_size=image_size, crop_size=crop_size
    )
