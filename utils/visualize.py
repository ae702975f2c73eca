"""What the model shows of itself: reconstructions, interpolations and traversals,
computed from a few fixed test images and written by utils.images."""

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


def save_step_images(model, test_images, folder, step):
    """The composite (originals, reconstructions, interpolations) and the latent
    traversal for `step`, into `folder`/composites and `folder`/traversals."""
    z_mean, z_log_var = encode_means(model, test_images)
    reconstructions = np.asarray(model.decode(z_mean))
    interpolations = np.asarray(model.decode(interpolation_latents(z_mean)))
    composites = folder / "composites"
    composites.mkdir(exist_ok=True)
    image_files.save_composite(
        composites / image_files.step_filename("step", step, "jpg"),
        step,
        np.asarray(test_images),
        reconstructions,
        interpolations,
    )
    kl = kl_per_latent_of(z_mean, z_log_var)
    save_traversal(
        model,
        z_mean[0],
        kl,
        folder / "traversals",
        image_files.step_filename("traversal", step, "png"),
        step,
    )
    return kl


def save_traversal(model, z, kl, folder, filename, step=None, max_latents=None):
    """One row per latent, sorted by KL (most informative first)."""
    order = np.argsort(-kl)[:max_latents]
    decoded = np.asarray(model.decode(traversal_latents(z, order)))
    folder.mkdir(exist_ok=True)
    image_files.save_traversal(
        folder / filename,
        step,
        decoded.reshape(len(order), len(TRAVERSAL_VALUES), *decoded.shape[1:]),
        kl,
        TRAVERSAL_VALUES,
        order,
    )
