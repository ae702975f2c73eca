"""A trained model where TensorFlow users look for it. `export_model` writes, into
a run's `model/` folder (B: any batch size, S: image size, C: channels, L: latents):

    encoder.keras  images (B, S, S, C) float32 in [0, 1] → [z_mean, z_log_var],
                   each (B, L) float32
    decoder.keras  z (B, L) float32 → images (B, S, S, C) float32 in [0, 1]
                   (its layer "logits" gives the logits the losses use)
    saved_model/   the whole pipeline; each signature returns a dict of float32:
        encode             images float32 in [0, 1] → z_mean, z_log_var (B, L)
        encode_uint8       images uint8 in 0..255   → z_mean, z_log_var (B, L)
        decode             z (B, L)                 → images in [0, 1]
        reconstruct        images float32 in [0, 1] → images: decode(z_mean)
        reconstruct_uint8  images uint8 in 0..255   → images: decode(z_mean)

Standard Keras layers only: `keras.saving.load_model` and `tf.saved_model.load`
need neither this repo nor custom objects. Everything computes in float32 whatever
the training precision: mixed precision trains float32 weights anyway, and a
float32 model runs on any device (16-bit convolutions are slow on most CPUs).
"""

import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from utils.data.pipeline import to_float
from utils.files import TEMPORARY_NAME, temporary_path

# In the order they are moved into place: see discard.
EXPORTS = ("saved_model", "encoder.keras", "decoder.keras")
OLDER_SAVED_MODEL = "older_saved_model"  # in the staging folder, while replaced


def export_model(model, folder) -> list[Path]:
    """Write the exports of `model` (a models.BetaVAE, of any precision, built on
    any tf.distribute strategy) into `folder`, replacing older ones only once all
    the new ones are complete. → their paths. One export per folder at a time."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_unfinished_exports(folder)
    encoder = float32_copy(model.encoder)
    decoder = image_decoder(float32_copy(model.decoder))
    staging = temporary_path(folder / "export")
    staging.mkdir()
    try:
        write_exports(encoder, decoder, staging)
        for path in [*staging.rglob("*"), staging]:
            fsync(path)
        return move_into_place(staging, folder)
    finally:
        discard(staging, folder)


# --- the models users get


def float32_copy(model):
    """A functional `model` again with every layer computing in float32, and the
    same weights in new variables: plain ones, if this runs outside the scope of
    the strategy that mirrored the model's."""
    copy = keras.models.clone_model(model, clone_function=as_float32)
    copy.set_weights(model.get_weights())
    return copy


def as_float32(layer):
    return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})


def image_decoder(decoder):
    """The decoder ending in a sigmoid, so that it gives images, as every picture
    of this repo shows them."""
    images = keras.layers.Activation("sigmoid", dtype="float32", name="images")
    return keras.Model(decoder.input, images(decoder.output), name="decoder")


def saved_model_archive(encoder, decoder):
    """The signatures over `encoder` and the image `decoder`. They return dicts,
    so that their outputs have names in the SavedModel too."""
    image_shape = tuple(encoder.input.shape[1:])
    latent_size = decoder.input.shape[-1]

    def encode(images):
        z_mean, z_log_var = encoder(images, training=False)
        return {"z_mean": z_mean, "z_log_var": z_log_var}

    def decode(z):
        return {"images": decoder(z, training=False)}

    def reconstruct(images):
        return decode(encode(images)["z_mean"])

    def from_uint8(function):
        return lambda images: function(to_float(images))  # as training reads them

    floats = tf.TensorSpec((None, *image_shape), tf.float32, name="images")
    uint8s = tf.TensorSpec((None, *image_shape), tf.uint8, name="images")
    latents = tf.TensorSpec((None, latent_size), tf.float32, name="z")
    # No track(model): the endpoints track the variables they use, and track()
    # would store every weight a second time (keras-team/keras#23553).
    archive = keras.export.ExportArchive()
    # The first endpoint is also TF Serving's "serving_default".
    archive.add_endpoint("encode", encode, [floats])
    archive.add_endpoint("encode_uint8", from_uint8(encode), [uint8s])
    archive.add_endpoint("decode", decode, [latents])
    archive.add_endpoint("reconstruct", reconstruct, [floats])
    archive.add_endpoint("reconstruct_uint8", from_uint8(reconstruct), [uint8s])
    return archive


# --- writing: everything into a hidden staging folder, then renamed into place


def write_exports(encoder, decoder, folder):
    keras.saving.save_model(encoder, folder / "encoder.keras")
    keras.saving.save_model(decoder, folder / "decoder.keras")
    archive = saved_model_archive(encoder, decoder)
    archive.write_out(str(folder / "saved_model"), verbose=False)


def move_into_place(staging, folder):
    """Rename each staged export over its older version. The renames take
    microseconds, after all the writing: a kill leaves the new or the old version
    of each. An older saved_model/ moves into `staging` first (a folder cannot be
    renamed over a non-empty one), and is deleted with it."""
    written = []
    for name in EXPORTS:
        target = folder / name
        if target.is_dir():
            os.replace(target, staging / OLDER_SAVED_MODEL)
        os.replace(staging / name, target)
        written.append(target)
    fsync(folder)  # the renames themselves
    return written


def fsync(path):
    """Flush a file or a folder's entries to the disk: without it a power cut
    could leave a renamed export whose contents never got there."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_unfinished_exports(folder):
    """Discard what killed exports left: their staging folders, hidden so that
    nobody mistakes them for an export."""
    for path in folder.glob(".export.*.tmp"):
        if TEMPORARY_NAME.fullmatch(path.name) and path.is_dir():
            discard(path, folder)


def discard(staging, folder):
    """Delete a staging folder. An export stopped between its first two renames
    left the older saved_model/ in it: that goes back, to match the older .keras
    files still in `folder`."""
    older = staging / OLDER_SAVED_MODEL
    if older.is_dir() and not (folder / "saved_model").exists():
        os.replace(older, folder / "saved_model")
    shutil.rmtree(staging, ignore_errors=True)
