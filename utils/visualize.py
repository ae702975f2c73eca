"""What the model shows of itself: reconstructions, interpolations and traversals,
computed from a few fixed test images and written by utils.images."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from utils import images as image_files

TRAVERSAL_VALUES = np.linspace(-3.0, 3.0, 11)  # ±3 prior standard deviations


def encode_means(model, images):
    z_mean, z_log_var = model.encoder(images, training=False)
    return np.asarray(z_mean), np.asarray(z_log_var)


def interpolation_latents(z_mean, rows=4, cols=16):
    """The original's grid: latents spanning the plane through three encoded test
    images — along a row from image 0 towards image 1, down the rows towards 2."""
    a, b, c = z_mean[0], z_mean[1], z_mean[2]
    u = np.linspace(0, 1, cols)[None, :, None]
    v = np.linspace(0, 1, rows)[:, None, None]
    return (a + u * (b - a) + v * (c - a)).reshape(rows * cols, -1)


def kl_per_latent_of(z_mean, z_log_var):
    """Mean KL per latent over the images, in nats (numpy twin of models')."""
    return np.mean(0.5 * (np.exp(z_log_var) + z_mean**2 - 1 - z_log_var), axis=0)


def traversal_latents(z, order, values=TRAVERSAL_VALUES):
    """For each latent in `order`, copies of `z` with that latent swept over
    `values`: (len(order) · len(values), L)."""
    grid = np.repeat(z[None, None, :], len(order), 0).repeat(len(values), 1)
    for row, latent in enumerate(order):
        grid[row, :, latent] = values
    return grid.reshape(-1, z.shape[-1])


def step_images(model, test_images, folder, step):
    """The composite (originals, reconstructions, interpolations) and the latent
    traversal (one row per latent, by KL) for `step`. The model's part runs now,
    with the current weights, in one decoder call; the drawing and the files are
    returned as a function, for a BackgroundDrawing to run while training goes on."""
    z_mean, z_log_var = encode_means(model, test_images)
    kl = kl_per_latent_of(z_mean, z_log_var)
    order = np.argsort(-kl)  # most informative first
    latents = [
        z_mean,
        interpolation_latents(z_mean),
        traversal_latents(z_mean[0], order),
    ]
    decoded = np.asarray(model.decode(np.concatenate(latents)))
    reconstructions, interpolations, traversals = np.split(
        decoded, np.cumsum([len(z) for z in latents[:2]])
    )
    originals = np.asarray(test_images)

    def draw():
        for name in ("composites", "traversals"):
            (folder / name).mkdir(exist_ok=True)
        image_files.save_composite(
            folder / "composites" / image_files.step_filename("step", step, "jpg"),
            step, originals, reconstructions, interpolations,
        )  # fmt: skip
        image_files.save_traversal(
            folder / "traversals" / image_files.step_filename("traversal", step, "png"),
            step,
            traversals.reshape(len(order), len(TRAVERSAL_VALUES), *decoded.shape[1:]),
            kl, TRAVERSAL_VALUES, order,
        )  # fmt: skip

    return draw


class BackgroundDrawing:
    """Runs the step images' drawing (matplotlib, PNG and JPEG encoding, the files)
    in one worker thread, overlapping the next training steps. One at a time; an
    error (a full disk, say) is raised in the training loop at the next submit or
    at close()."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="step-images")
        self.pending = None

    def submit(self, draw):
        self.wait()
        self.pending = self.pool.submit(draw)

    def wait(self):
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()  # re-raises the drawing's error here

    def close(self):
        try:
            self.wait()
        finally:
            self.pool.shutdown()
