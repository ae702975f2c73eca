"""The pictures the model draws of itself every plot_step: the composite (test
images, reconstructions, interpolations) and the latent traversal. The model's
part (encoder and decoder calls) runs in the training loop, with the current
weights; the drawing and the files run in a BackgroundDrawing meanwhile.

Memory is bounded whatever latent_size: each model call sees a bounded number of
pixels and the traversal shows at most MAX_TRAVERSAL_ROWS latents
(step_images_bytes estimates the peak).
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.outputs import images
from utils.outputs.plots import kl_order_note, latents_by_kl, shown_note

TRAVERSAL_VALUES = np.linspace(-3.0, 3.0, 11)  # ±3 prior standard deviations
MAX_TRAVERSAL_ROWS = 32  # the most informative latents; the rest carry less
# Model calls get a number of pixels, not of images, so that memory is bounded at
# any image size: the decoder's working memory is ~4·F bytes per output pixel
# (F: the first conv's filters; 0.4 MiB per 64² image at F = 32), the encoder's
# ~12 bytes per input pixel. Fewer, larger calls are faster (~15 ms per call).
DECODE_PIXELS = 128 * 64 * 64  # 128 images at 64², 32 at 128²: ~64 MiB at F = 32
ENCODE_PIXELS = 256 * 64 * 64  # 256 images at 64²: ~12 MiB
NUM_INTERPOLATIONS = (4, 16)  # rows, columns of the composite's interpolation grid


def images_per_call(image_shape, pixels) -> int:
    return max(1, pixels // (image_shape[0] * image_shape[1]))


def step_images_bytes(
    image_shape, latent_size, num_kl_images, num_test_images=16, filters=32
):
    """Estimated peak memory of one set of step images (model part and drawing),
    in bytes, beyond the model and the images themselves; within ±25 % of the
    measured. `filters`: the first encoder conv's, whose full-size twin
    dominates the decoder's working memory."""
    h, w, c = image_shape
    rows = min(latent_size, MAX_TRAVERSAL_ROWS)
    decoded = num_test_images + np.prod(NUM_INTERPOLATIONS)
    decoded += rows * len(TRAVERSAL_VALUES)
    return int(
        40 * 2**20  # TensorFlow's own on the first calls (allocator pools, oneDNN)
        + 4 * filters * images_per_call(image_shape, DECODE_PIXELS) * h * w
        + 2 * decoded * h * w * c * 4  # float32 images, and their concatenation
        + decoded * h * w * 3 * 5  # drawn: as float32 RGB, then uint8
        + 2 * num_kl_images * latent_size * 4  # z_mean and KL of the KL images
        + 2 * decoded * latent_size * 4  # the latents to decode, and concatenated
    )


def z_mean_and_kl(model, images, batch_size=None):
    """Encoder means and KL per latent (nats) of each image: two (n, L) arrays,
    computed a few images at a time (ENCODE_PIXELS)."""
    batch_size = batch_size or images_per_call(np.shape(images)[1:], ENCODE_PIXELS)
    means, kls = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        z_mean, kl = model.posterior(batch)
        means.append(np.asarray(z_mean))
        kls.append(np.asarray(kl))
    return np.concatenate(means), np.concatenate(kls)


def decode_in_batches(model, z, batch_size):
    parts = [model.decode(z[i : i + batch_size]) for i in range(0, len(z), batch_size)]
    return np.concatenate([np.asarray(part) for part in parts])


def interpolation_latents(z_mean, rows=4, cols=16):
    """The original's grid: latents spanning the plane through three encoded test
    images — along a row from image 0 towards image 1, down the rows towards 2."""
    a, b, c = z_mean[0], z_mean[1], z_mean[2]
    u = np.linspace(0, 1, cols)[None, :, None]
    v = np.linspace(0, 1, rows)[:, None, None]
    return (a + u * (b - a) + v * (c - a)).reshape(rows * cols, -1)


def traversal_latents(z, latents, values=TRAVERSAL_VALUES):
    """For each of `latents`, copies of `z` with that latent swept over `values`:
    (len(latents) · len(values), L)."""
    grid = np.repeat(z[None, None, :], len(latents), 0).repeat(len(values), 1)
    for row, latent in enumerate(latents):
        grid[row, :, latent] = values
    return grid.reshape(-1, z.shape[-1])


@dataclass
class StepImages:
    """What step_images computed with the model; calling it draws the files and
    returns them encoded: {"images/composite": JPEG, "images/traversal": PNG}."""

    folder: Path
    step: int
    originals: np.ndarray
    reconstructions: np.ndarray
    interpolations: np.ndarray
    traversals: np.ndarray  # (rows, len(TRAVERSAL_VALUES), H, W, C)
    row_labels: list[str]  # "z7  KL 2.31", one per row, largest KL first
    notes: list[str]  # under the traversal's title: on what data, how many rows

    def __call__(self) -> dict[str, bytes]:
        composite_path, traversal_path = step_image_paths(self.folder, self.step)
        step = self.step
        composite = images.save_composite(
            composite_path, step, self.originals, self.reconstructions,
            self.interpolations,
        )  # fmt: skip
        traversal = images.save_labelled_grid(
            traversal_path,
            self.traversals,
            self.row_labels,
            [f"{v:.3g}" for v in TRAVERSAL_VALUES],
            f"Latent traversals at step {step}",
            self.notes,
        )
        return {"images/composite": composite, "images/traversal": traversal}


def step_image_paths(folder, step) -> list[Path]:
    """The files StepImages draws for `step`."""
    return [
        Path(folder) / "composites" / images.step_filename("step", step, "jpg"),
        Path(folder) / "traversals" / images.step_filename("traversal", step, "png"),
    ]


def step_images(
    model, test_images, kl_images, folder, step, max_rows=MAX_TRAVERSAL_ROWS
):
    """The composite of `test_images` and the traversal around the first one's
    code, rows sorted by KL on `kl_images` (the same fixed set for every figure
    of the run), at most `max_rows`. Runs the model now; returns the drawing."""
    _, kl_each = z_mean_and_kl(model, kl_images)
    kl = kl_each.mean(axis=0)
    shown = latents_by_kl(kl)[:max_rows]
    z_mean, _ = z_mean_and_kl(model, test_images)
    latents = [
        z_mean,
        interpolation_latents(z_mean, *NUM_INTERPOLATIONS),
        traversal_latents(z_mean[0], shown),
    ]
    batch_size = images_per_call(np.shape(test_images)[1:], DECODE_PIXELS)
    z = np.concatenate(latents, dtype=np.float32)  # the decoder's dtype
    decoded = decode_in_batches(model, z, batch_size)
    reconstructions, interpolations, traversals = np.split(
        decoded, np.cumsum([len(part) for part in latents[:2]])
    )
    shape = (len(shown), len(TRAVERSAL_VALUES), *decoded.shape[1:])
    return StepImages(
        folder=Path(folder),
        step=step,
        originals=np.asarray(test_images),
        reconstructions=reconstructions,
        interpolations=interpolations,
        traversals=traversals.reshape(shape),
        row_labels=[f"z{i}  KL {kl[i]:.2f}" for i in shown],
        notes=[
            f"{kl_order_note(len(kl_images))}; {shown_note(len(shown), len(kl))}",
            "each row sweeps one latent around the first test image's code",
        ],
    )


class BackgroundDrawing:
    """Runs the step images' drawing (PNG and JPEG encoding, the files), and then
    `then` of its result, in one worker thread, overlapping the next training
    steps. One at a time; an error (a full disk, say) is raised in the training
    loop at the next submit or at close()."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="step-images")
        self.pending = None

    def submit(self, draw, then=None):
        self.wait()
        self.pending = self.pool.submit(_draw_then, draw, then)

    def wait(self):
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()  # re-raises the drawing's error here

    def close(self):
        try:
            self.wait()
        finally:
            self.pool.shutdown()


def _draw_then(draw, then):
    result = draw()
    if then is not None:
        then(result)
    return result
