"""utils.outputs.step_images: what the model draws at each step, on a fake model whose
KL per latent and decoded pictures are designed, and once on a real BetaVAE."""

import threading
import tracemalloc

import imageio.v3 as iio
import numpy as np
import pytest

from models import BetaVAE, kl_per_latent
from utils.outputs.step_images import (
    DECODE_PIXELS,
    ENCODE_PIXELS,
    MAX_TRAVERSAL_ROWS,
    TRAVERSAL_VALUES,
    BackgroundDrawing,
    step_images,
    step_images_bytes,
    z_mean_and_kl,
)

SIZE = 8


class FakeModel:
    """Encodes every image to z_mean = 0 with a log-variance per latent that
    depends on whether the image is bright: bright and dark images rank the
    latents by KL differently. Decodes z to a picture saying which latent is
    non-zero: top half (40 + 30k, 0, 255) for latent k, bottom half grey by its
    value. Records the size of every call."""

    def __init__(self, log_var_bright, log_var_dark, size=SIZE):
        self.log_var = {True: np.asarray(log_var_bright, np.float32),
                        False: np.asarray(log_var_dark, np.float32)}  # fmt: skip
        self.latent_size, self.size = len(log_var_bright), size
        self.encoded, self.decoded = [], []

    def encoder(self, images, training=False):
        images = np.asarray(images)
        self.encoded.append(len(images))
        bright = images.mean(axis=(1, 2, 3)) > 0.5
        log_var = np.stack([self.log_var[bool(b)] for b in bright])
        return np.zeros_like(log_var), log_var

    def posterior(self, images):
        z_mean, log_var = self.encoder(images)
        return z_mean, 0.5 * (np.exp(log_var) - 1.0 - log_var)  # μ = 0

    def decode(self, z):
        z = np.asarray(z)
        self.decoded.append(len(z))
        latent = np.abs(z).argmax(axis=1)
        swept = np.abs(z).max(axis=1) > 0
        value = z[np.arange(len(z)), latent]
        half = self.size // 2
        images = np.zeros((len(z), self.size, self.size, 3), np.float32)
        images[swept, :half, :, 0] = (40 + 30 * latent[swept, None, None]) / 255
        images[swept, :half, :, 2] = 1.0
        images[:, half:] = ((value + 3) / 6)[:, None, None, None]
        return images


def flat(n, level, size=SIZE):
    return np.full((n, size, size, 3), level, np.float32)


def kl_order(log_var):
    # z_mean = 0: KL = ½(σ² − 1 − log σ²) grows as log σ² goes below 0.
    log_var = np.asarray(log_var, np.float32)
    kl = np.asarray(kl_per_latent(np.zeros_like(log_var), log_var))
    return list(np.argsort(-kl, kind="stable"))


# The two rankings disagree: bright images rank z1 first, dark ones z0.
LOG_VAR_BRIGHT = [-1.0, -5.0, -2.0, -4.0, -3.0, -0.5]
LOG_VAR_DARK = [-5.0, -0.5, -4.0, -1.0, -3.0, -2.0]


def test_traversal_rows_are_latents_by_kl_on_kl_images_and_say_so(tmp_path):
    model = FakeModel(LOG_VAR_BRIGHT, LOG_VAR_DARK)
    expected = kl_order(LOG_VAR_BRIGHT)
    assert expected != kl_order(LOG_VAR_DARK)
    # The composite's test images are dark; the order must come from kl_images.
    draw = step_images(model, flat(16, 0.2), flat(40, 0.8), tmp_path, 3)
    assert [label.split()[0] for label in draw.row_labels] == [
        f"z{i}" for i in expected
    ]
    assert draw.notes[0] == "latents sorted by KL on 40 test images; all 6 latents"
    draw()
    page = iio.imread(tmp_path / "traversals" / "traversal_0000003.png")
    first_y = []
    for latent in expected:  # the first pixel row showing latent k's colour
        color = (page == (40 + 30 * latent, 0, 255)).all(axis=-1)
        first_y.append(np.nonzero(color.any(axis=1))[0].min())
    assert first_y == sorted(first_y)  # row r sweeps the r-th latent by KL


def test_step_images_for_1000_latents_bounds_rows_and_model_calls(tmp_path):
    log_var = -np.random.default_rng(0).uniform(0, 5, 1000)
    model = FakeModel(log_var, log_var, size=64)
    draw = step_images(model, flat(16, 0.8, 64), flat(300, 0.8, 64), tmp_path, 1)
    rows = MAX_TRAVERSAL_ROWS
    assert draw.traversals.shape[:2] == (rows, len(TRAVERSAL_VALUES))
    assert [label.split()[0] for label in draw.row_labels] == [
        f"z{i}" for i in kl_order(log_var)[:rows]
    ]
    assert "top 32 of 1000 latents" in draw.notes[0]
    assert sum(model.decoded) == 16 + 4 * 16 + rows * len(TRAVERSAL_VALUES)
    assert sum(model.encoded) == 300 + 16
    assert max(model.decoded) * 64 * 64 <= DECODE_PIXELS and len(model.decoded) > 1
    assert max(model.encoded) * 64 * 64 <= ENCODE_PIXELS and len(model.encoded) > 2


def peak_bytes(model, test_images, kl_images, folder):
    tracemalloc.start()
    try:
        step_images(model, test_images, kl_images, folder, 1)()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_with_latent_size_only_by_the_latent_arrays(tmp_path):
    # NumPy's and Pillow's memory, traced; the fake decoder has no activations.
    peaks, estimates = {}, {}
    for latents in (32, 2000):
        log_var = -np.random.default_rng(0).uniform(0, 5, latents)
        model = FakeModel(log_var, log_var, size=32)
        peaks[latents] = peak_bytes(
            model, flat(16, 0.8, 32), flat(64, 0.8, 32), tmp_path
        )
        estimates[latents] = step_images_bytes((32, 32, 3), latents, 64)
        assert peaks[latents] < estimates[latents]
    # (16 + 64 + 32 · 11 latents of 2000 float32, twice: 6.9 MB); the images drawn
    # do not grow (every latent's row would add 11 images: 3 MB per 100 latents).
    assert peaks[2000] - peaks[32] < estimates[2000] - estimates[32] + 1e6


def test_nothing_is_written_until_drawn_then_the_files_are_returned(tmp_path):
    draw = step_images(FakeModel(LOG_VAR_BRIGHT, LOG_VAR_DARK), flat(16, 0.8),
                       flat(8, 0.8), tmp_path, 12)  # fmt: skip
    assert not list(tmp_path.iterdir())  # the model's part only, so far
    encoded = draw()
    assert encoded == {
        "images/composite": (tmp_path / "composites/step_0000012.jpg").read_bytes(),
        "images/traversal": (
            tmp_path / "traversals/traversal_0000012.png"
        ).read_bytes(),
    }


def test_background_drawing_runs_draw_then_its_consumer_in_the_worker(tmp_path):
    seen = []

    def draw():
        seen.append(("draw", threading.current_thread()))
        return {"images/x": b"123"}

    drawing = BackgroundDrawing()
    drawing.submit(draw, then=lambda result: seen.append((result, None)))
    drawing.close()
    assert seen[0][0] == "draw" and seen[0][1] is not threading.main_thread()
    assert seen[1] == ({"images/x": b"123"}, None)


def test_drawing_and_consumer_errors_reach_the_loop_at_submit_or_close():
    def full_disk():
        raise OSError(28, "No space left on device")

    drawing = BackgroundDrawing()
    drawing.submit(full_disk)
    with pytest.raises(OSError, match="No space left"):
        drawing.submit(dict)  # the next images: the failure is raised first
    drawing.submit(dict, then=lambda result: full_disk())
    with pytest.raises(OSError, match="No space left"):
        drawing.close()


def test_real_model_kl_in_batches_matches_one_call_and_draws(tmp_path):
    model = BetaVAE((32, 32, 3), [[8, 4, 2]] * 4, [[16]], 3)
    images = np.random.default_rng(0).uniform(size=(38, 32, 32, 3))
    images = images.astype(np.float32)
    z_mean, kl = z_mean_and_kl(model, images, batch_size=16)
    whole_mean, whole_log_var = model.encoder(images, training=False)
    np.testing.assert_allclose(z_mean, whole_mean, rtol=1e-4, atol=1e-6)
    expected_kl = kl_per_latent(whole_mean, whole_log_var)
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-4, atol=1e-6)
    step_images(model, images[:16], images, tmp_path, 7)()
    traversal = iio.imread(tmp_path / "traversals" / "traversal_0000007.png")
    assert traversal.shape[0] > 3 * 64  # three rows, 32² shown at 64²
