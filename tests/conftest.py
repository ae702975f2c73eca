"""Fixtures shared by the end-to-end tests."""

import numpy as np
import pytest
from PIL import Image


def write_celeba_folder(folder, count, train, validation):
    """`count` aligned-size (178×218) JPEGs — a coloured disc on a background — in
    CelebA's layout, with the official partition file: the first `train` images
    train, the next `validation` validate, the rest test."""
    images = folder / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:218, :178]
    lines = []
    for i in range(1, count + 1):
        picture = np.empty((218, 178, 3), np.uint8)
        picture[:] = rng.integers(0, 255, 3)
        cy, cx, r = rng.integers(70, 150), rng.integers(50, 130), rng.integers(15, 40)
        picture[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
        name = f"{i:06d}.jpg"
        Image.fromarray(picture).save(images / name, quality=90)
        split = 0 if i <= train else 1 if i <= train + validation else 2
        lines.append(f"{name} {split}")
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def celeba_dir(tmp_path_factory):
    """120 images: 80 train, 20 validation, 20 test."""
    return write_celeba_folder(tmp_path_factory.mktemp("celeba"), 120, 80, 20)


def objective_settings(**overrides):
    """models.ObjectiveSettings from params.py's defaults (dSprites'), overridden:
    params.py is the one source of defaults."""
    from pathlib import Path

    from models import ObjectiveSettings
    from utils.settings import cli

    params = cli.import_params(Path(__file__).resolve().parents[1] / "params.py")
    p, _ = cli.parse_command_line(cli.read_params(params), ["--dataset=dsprites"])
    return ObjectiveSettings.of({**p, "lambda_d": None, **overrides})


def main_in_process(capsys, *argv) -> tuple[int, str]:
    """(exit code, stderr) of `main.py ARGV`, in this process: TensorFlow starts
    once for all the calls. main.py's stop request handlers are put back after."""
    import signal

    import main

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main.main(list(argv))
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    return code, capsys.readouterr().err
