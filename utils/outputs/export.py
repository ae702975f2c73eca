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
    export.json    {"step": the step the model was trained to}, written last

Each function takes its own dtype, casts other floats to float32 (decode integers
too), and refuses other dtypes, and float images outside [0, 1], with an error
saying what to use instead: TF would cast a NumPy array to a function's one dtype
unseen (uint8 images to floats in 0..255, floats to uint8 0s). A signature
(`.signatures[name]`) still gets that cast: its float images are checked to be in
[0, 1], but give it uint8 ones as tensors (`tf.constant` keeps their dtype). The
.keras models, as any Keras model, cast every input to float32: give them floats.

Standard Keras layers only: `keras.saving.load_model` and `tf.saved_model.load`
need neither this repo nor custom objects. Everything computes in float32 whatever
the training precision: mixed precision trains float32 weights anyway, and a
float32 model runs on any device (16-bit convolutions are slow on most CPUs).
"""

import json
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from utils.data.pipeline import to_float
from utils.files import TEMPORARY_NAME, temporary_path

# In the order they are moved into place: see discard. The record (the step the
# model was trained to) comes last: it names a step only once all three are whole.
MODELS = ("saved_model", "encoder.keras", "decoder.keras")
RECORD = "export.json"
EXPORTS = (*MODELS, RECORD)
OLDER_SAVED_MODEL = "older_saved_model"  # in the staging folder, while replaced


def export_model(model, folder, step=None) -> list[Path]:
    """Write the exports of `model` (a models.BetaVAE, of any precision, built on
    any tf.distribute strategy, trained `step` steps) into `folder`, replacing older
    ones only once all the new ones are complete. → their paths. OSError if they
    cannot be written (a full disk, say). One export per folder at a time."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_unfinished_exports(folder)
    encoder = float32_copy(model.encoder)
    decoder = image_decoder(float32_copy(model.decoder))
    staging = temporary_path(folder / "export")
    staging.mkdir()
    try:
        write_exports(encoder, decoder, staging)
        (staging / RECORD).write_text(json.dumps({"step": step}) + "\n")
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
    """The functions over `encoder` and the image `decoder`. They return dicts,
    so that their outputs have names in the SavedModel too."""
    images = (None, *encoder.input.shape[1:])
    latents = (None, decoder.input.shape[-1])

    def encode(images):
        z_mean, z_log_var = encoder(images, training=False)
        return {"z_mean": z_mean, "z_log_var": z_log_var}

    def decode(z):
        return {"images": decoder(z, training=False)}

    def reconstruct(images):
        return decode(encode(images)["z_mean"])

    # No track(model): the endpoints track the variables they use, and track()
    # would store every weight a second time (keras-team/keras#23553).
    archive = keras.export.ExportArchive()
    # The first endpoint is also TF Serving's "serving_default".
    archive.add_endpoint("encode", of_floats("encode", encode, images))
    archive.add_endpoint("encode_uint8", of_uint8s("encode", encode, images))
    archive.add_endpoint("decode", of_latents(decode, latents))
    archive.add_endpoint("reconstruct", of_floats("reconstruct", reconstruct, images))
    archive.add_endpoint(
        "reconstruct_uint8", of_uint8s("reconstruct", reconstruct, images)
    )
    return archive


# --- what each function accepts: its own dtype; other dtypes cast, or refused

REAL_DTYPES = (
    tf.bool, tf.uint8, tf.uint16, tf.uint32, tf.uint64, tf.int8, tf.int16,
    tf.int32, tf.int64, tf.bfloat16, tf.float16, tf.float32, tf.float64,
)  # fmt: skip
OTHER_FLOATS = (tf.bfloat16, tf.float16, tf.float64)
INTEGERS = tuple(dtype for dtype in REAL_DTYPES if dtype.is_integer)


def of_floats(name, function, shape):
    """`function` as the function `name` of float32 images in [0, 1]."""

    def checked(images):
        return function(in_unit_range(images, name))

    refusal = (
        f"{name} expects float32 images in [0, 1]; got {{}}: "
        f"use {name}_uint8, or divide by 255"
    )
    spec = tf.TensorSpec(shape, tf.float32, name="images")
    return typed(checked, spec, OTHER_FLOATS, refusal)


def of_uint8s(name, function, shape):
    """`function` as the function `name`_uint8 of uint8 images in 0..255."""

    def scaled(images):
        return function(to_float(images))  # as training reads them

    refusal = (
        f"{name}_uint8 expects uint8 images in 0..255; got {{}}: use {name} for"
        " float images in [0, 1], or cast integers in 0..255 to uint8"
    )
    spec = tf.TensorSpec(shape, tf.uint8, name="images")
    return typed(scaled, spec, (), refusal)


def of_latents(function, shape):
    """`function` as the function decode of float32 latents."""
    refusal = "decode expects float32 latents z; got {}"
    spec = tf.TensorSpec(shape, tf.float32, name="z")
    return typed(function, spec, OTHER_FLOATS + INTEGERS, refusal)


def typed(function, spec, converted, refusal):
    """`function` as a tf.function traced for every real dtype: for `spec`'s
    first (the signature), then for those `converted` (cast to it), and for the
    others, which fail with the error `refusal`.format(dtype). Traced for one
    dtype, it would let TF cast a NumPy array of another to it unseen: images in
    [0, 1] to uint8 zeros, uint8 images to floats in 0..255."""

    def call(tensor):
        if tensor.dtype == spec.dtype:
            return function(tensor)
        if tensor.dtype in converted:  # calls the first trace, not a copy of it
            return first(tf.cast(tensor, spec.dtype))
        tf.debugging.Assert(False, [refusal.format(tensor.dtype.name)])
        return {}  # never returned: the assertion fails first

    traced = tf.function(call, autograph=False)
    first = traced.get_concrete_function(spec)
    for dtype in REAL_DTYPES:
        traced.get_concrete_function(tf.TensorSpec(spec.shape, dtype, spec.name))
    return traced


def in_unit_range(images, name):
    """`images`, once checked to be in [0, 1]: the function `name` refuses
    images in 0..255, such as uint8 ones a signature cast to float32."""
    message = tf.strings.format(
        f"{name} expects float32 images in [0, 1]; got values from {{}} to {{}}:"
        f" divide images in 0..255 by 255, or pass uint8 ones to {name}_uint8",
        (tf.reduce_min(images), tf.reduce_max(images)),
    )
    within = tf.reduce_all((images >= 0) & (images <= 1))  # NaN is not
    with tf.control_dependencies([tf.debugging.Assert(within, [message])]):
        return tf.identity(images)


# --- writing: everything into a hidden staging folder, then renamed into place


def write_exports(encoder, decoder, folder):
    keras.saving.save_model(encoder, folder / "encoder.keras")
    keras.saving.save_model(decoder, folder / "decoder.keras")
    archive = saved_model_archive(encoder, decoder)
    try:
        archive.write_out(str(folder / "saved_model"), verbose=False)
    except tf.errors.OpError as error:  # a full disk is RESOURCE_EXHAUSTED, …
        raise OSError(
            f"the SavedModel could not be written ({error.message or error})"
        ) from None


def exported_step(folder):
    """The step of the exports in `folder` by their record; None if it has no
    whole export of a known step (exports written before the record existed)."""
    try:
        step = json.loads((Path(folder) / RECORD).read_text()).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


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
