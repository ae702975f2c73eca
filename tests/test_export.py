"""utils/outputs/export.py: an export loads in a clean process (no repo on its path, no
custom objects, no GPU, one device) and computes what the model that was exported
computes; a failed or killed export leaves the previous one whole.

Two subprocesses serve all the tests. WRITER builds a model on two mirrored
logical devices (which must be configured before TensorFlow initialises), exports
it, and is killed in the middle of a second export. This process exports four
more models, one of them over what the killed export left. LOADER loads every
export, runs it and saves what it got."""

import hashlib
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import utils.outputs.export
from models import BetaVAE
from utils.outputs.export import EXPORTS, export_model, remove_unfinished_exports

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds for a subprocess: a hang fails, not blocks CI
QUIET = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
WITH_REPO = {**os.environ, **QUIET, "PYTHONPATH": str(REPO)}
WITHOUT_REPO = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | QUIET
LAYERS = ([[8, 4, 2]] * 4, [[16]], 3)  # conv_layers, dense_layers, latent_size
BATCH = 5
CASES = {  # exported in this process; a discriminator is never exported
    "gray": dict(image_shape=(32, 32, 1), discriminator=True),
    "rgb": dict(image_shape=(32, 32, 3)),  # over the killed export's folder
    "mixed_float16": dict(image_shape=(32, 32, 3), precision="mixed_float16"),
    "mixed_bfloat16": dict(image_shape=(32, 32, 1), precision="mixed_bfloat16"),
}
MIRRORED = ("mirrored/model", "mirrored/model_killed")


def with_random_biases(model, seed):
    """`model` with non-zero biases, which fresh layers lack: an export that lost
    them must show."""
    rng = np.random.default_rng(seed)
    weights = model.get_weights()
    model.set_weights(
        [
            w if w.ndim > 1 else rng.normal(0, 0.1, w.shape).astype(w.dtype)
            for w in weights
        ]
    )
    return model


def build(seed, image_shape, precision="float32", discriminator=False):
    keras.utils.set_random_seed(seed)
    model = BetaVAE(
        image_shape, *LAYERS, precision=precision, discriminator=discriminator
    )
    return with_random_biases(model, seed)


def expected_outputs(model, images, z):
    """What every export must give for uint8 `images` and latents `z`, computed
    by `model` in the process that built it."""
    z_mean, z_log_var = model.encoder(images.astype(np.float32) / 255)
    return {
        "z_mean": np.asarray(z_mean),
        "z_log_var": np.asarray(z_log_var),
        "decoded": np.asarray(tf.sigmoid(model.decoder(z))),
        "reconstructed": np.asarray(tf.sigmoid(model.decoder(z_mean))),
    }


def write_inputs(folder, image_shape, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (BATCH, *image_shape), np.uint8)
    z = 2 * rng.standard_normal((BATCH, LAYERS[2])).astype(np.float32)
    folder.mkdir(parents=True)
    np.savez(folder / "inputs.npz", images=images, z=z)
    return images, z


def snapshot(folder):
    """Every file under `folder`, hidden ones too, with a hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- the exports: two in WRITER, four in this process, all loaded by LOADER


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def exported(root, mirrored):
    """Each case's model, exported into <case>/model/, with its inputs and
    expected outputs. A mixed-precision model's exports compute in float32, so
    they must equal its float32 twin; they should be near the model itself."""
    models = {}
    for seed, (name, case) in enumerate(CASES.items()):
        models[name] = model = build(seed, **case)
        images, z = write_inputs(root / name, case["image_shape"], seed)
        if name == "rgb":  # an older export, and what a killed export left
            shutil.copytree(root / "mirrored/model_killed", root / name / "model")
        twin = model
        if "precision" in case:
            twin = build(seed, case["image_shape"])
            twin.set_weights(model.get_weights())
            in_16_bits = expected_outputs(model, images, z)
            np.savez(root / name / "expected_in_16_bits.npz", **in_16_bits)
        np.savez(root / name / "expected.npz", **expected_outputs(twin, images, z))
        paths = export_model(model, root / name / "model")
        assert paths == [root / name / "model" / export for export in EXPORTS]
    return models


WRITER = """
import json, os, shutil, signal, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
from models import BetaVAE
from utils.outputs.export import export_model

LAYERS = {layers}
{with_random_biases}
{expected_outputs}
folder = sys.argv[1]
inputs = np.load(os.path.join(folder, "inputs.npz"))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
keras.utils.set_random_seed(7)
with strategy.scope():
    model = with_random_biases(BetaVAE((32, 32, 3), *LAYERS), 7)
expected = expected_outputs(model, inputs["images"], inputs["z"])
np.savez(os.path.join(folder, "expected.npz"), **expected)
export_model(model, os.path.join(folder, "model"))  # outside the scope, as main.py
with open(os.path.join(folder, "writer.json"), "w") as file:
    json.dump({{
        "replicas": strategy.num_replicas_in_sync,
        "variable": type(model.encoder.weights[0].value).__name__,
    }}, file)

# Killed while replacing a copy of that export with another model's: the .keras
# files staged, the SavedModel half-written.
def write_half_and_die(trackable, path, **kwargs):
    os.makedirs(path)
    with open(os.path.join(path, "saved_model.pb"), "wb") as file:
        file.write(b"half")
    os.kill(os.getpid(), signal.SIGKILL)

tf.saved_model.save = write_half_and_die
shutil.copytree(os.path.join(folder, "model"), os.path.join(folder, "model_killed"))
other = BetaVAE((32, 32, 3), *LAYERS)
export_model(other, os.path.join(folder, "model_killed"))
"""


@pytest.fixture(scope="module")
def mirrored(root):
    """The WRITER's exports under mirrored/, and what it said."""
    folder = root / "mirrored"
    write_inputs(folder, (32, 32, 3), seed=7)
    script = WRITER.format(
        layers=LAYERS,
        with_random_biases=inspect.getsource(with_random_biases),
        expected_outputs=inspect.getsource(expected_outputs),
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder)], cwd=folder, env=WITH_REPO,
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    return json.loads((folder / "writer.json").read_text())


LOADER = """
import importlib.util, json, os, sys
import numpy as np
import keras
import tensorflow as tf

def specs(structure):
    return {k: [list(s.shape), s.dtype.name] for k, s in structure.items()}

report = {
    "repo_importable": importlib.util.find_spec("models") is not None,
    "devices": [d.name for d in tf.config.list_logical_devices()],
    "exports": {},
}
for folder in sys.argv[1:]:
    inputs = np.load(os.path.join(folder, "..", "inputs.npz"))
    images, z = inputs["images"], inputs["z"]
    floats = images.astype(np.float32) / 255
    encoder = keras.saving.load_model(os.path.join(folder, "encoder.keras"))
    decoder = keras.saving.load_model(os.path.join(folder, "decoder.keras"))
    pipeline = tf.saved_model.load(os.path.join(folder, "saved_model"))
    got = {}
    got["keras.z_mean"], got["keras.z_log_var"] = encoder(floats)
    got["keras.decoded"] = decoder(z)
    for name, given in [("encode", floats), ("encode_uint8", images)]:
        for key, value in getattr(pipeline, name)(given).items():
            got[f"{name}.{key}"] = value
    got["decode.decoded"] = pipeline.decode(z)["images"]
    got["reconstruct.reconstructed"] = pipeline.reconstruct(floats)["images"]
    reconstructed = pipeline.reconstruct_uint8(images)["images"]
    got["reconstruct_uint8.reconstructed"] = reconstructed
    # As TF Serving calls it: by signature, with named inputs.
    serve = pipeline.signatures["reconstruct_uint8"]
    got["signature.reconstructed"] = serve(images=tf.constant(images))["images"]
    got["first_two.reconstructed"] = pipeline.reconstruct(floats[:2])["images"]
    np.savez(folder + ".loaded.npz", **got)  # beside the export, not in it
    report["exports"][folder] = {
        "dtypes": {k: np.asarray(v).dtype.name for k, v in got.items()},
        "layer_dtypes": sorted(
            {layer.dtype_policy.name for m in (encoder, decoder) for layer in m.layers}
        ),
        "signatures": {
            name: [specs(f.structured_input_signature[1]), specs(f.structured_outputs)]
            for name, f in pipeline.signatures.items()
        },
    }
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def loaded(root, exported, mirrored, tmp_path_factory):
    """LOADER's report; what it got is in <export>.loaded.npz."""
    folders = [root / name / "model" for name in CASES] + [root / m for m in MIRRORED]
    result = subprocess.run(
        [sys.executable, "-c", LOADER, *map(str, folders)],
        cwd=tmp_path_factory.mktemp("elsewhere"), env=WITHOUT_REPO,
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["exports"] = {
        str(Path(folder).relative_to(root)): value
        for folder, value in report["exports"].items()
    }
    return report


def assert_computes_like_the_model(export, expected, tolerance):
    """Every output LOADER got from `export`, against `expected`."""
    got = dict(np.load(f"{export}.loaded.npz"))
    for key, value in got.items():
        name = key.split(".")[1]
        want = expected[name][:2] if key.startswith("first_two") else expected[name]
        np.testing.assert_allclose(value, want, **tolerance, err_msg=key)


FLOAT32 = dict(rtol=1e-5, atol=1e-6)
EXPORTED_MODELS = [f"{name}/model" for name in CASES] + list(MIRRORED)

# --- what a user loads


def test_a_clean_process_is_clean(loaded):
    assert not loaded["repo_importable"]
    assert [d.split(":")[-2] for d in loaded["devices"]] == ["CPU"]


@pytest.mark.parametrize("export", EXPORTED_MODELS)
def test_every_export_computes_what_the_model_computes(root, loaded, export):
    expected = np.load(root / export / ".." / "expected.npz")
    assert expected["z_mean"].std() > 0.01  # the images give different codes
    assert_computes_like_the_model(root / export, expected, FLOAT32)
    assert set(loaded["exports"][export]["dtypes"].values()) == {"float32"}


def test_signatures_their_names_shapes_and_dtypes(loaded):
    signatures = loaded["exports"]["rgb/model"]["signatures"]
    images = [None, 32, 32, 3]
    float_images = {"images": [images, "float32"]}
    uint8_images = {"images": [images, "uint8"]}
    codes = {"z_mean": [[None, 3], "float32"], "z_log_var": [[None, 3], "float32"]}
    reconstructions = {"images": [images, "float32"]}
    assert signatures == {
        "encode": [float_images, codes],
        "encode_uint8": [uint8_images, codes],
        "decode": [{"z": [[None, 3], "float32"]}, reconstructions],
        "reconstruct": [float_images, reconstructions],
        "reconstruct_uint8": [uint8_images, reconstructions],
        "serving_default": [float_images, codes],  # TF Serving's: encode
    }


@pytest.fixture(scope="module")
def gray(root, exported):
    """The gray model's SavedModel, loaded here, and its uint8 images and z."""
    inputs = np.load(root / "gray/inputs.npz")
    pipeline = tf.saved_model.load(str(root / "gray/model/saved_model"))
    return pipeline, inputs["images"], inputs["z"]


def floats_only(function, dtype):
    return (
        f"{function} expects float32 images in [0, 1]; got {dtype}: "
        f"use {function}_uint8, or divide by 255"
    )


def uint8_only(function, dtype):
    return (
        f"{function}_uint8 expects uint8 images in 0..255; got {dtype}: "
        f"use {function} for float images in [0, 1]"
    )


WRONG_DTYPES = {  # function: [(what a user passes, the error)], and what it gave
    "encode": [
        ("uint8 images", floats_only("encode", "uint8")),  # codes of 0..255
        ("int64 images", floats_only("encode", "int64")),
        ("bool images", floats_only("encode", "bool")),
    ],
    "reconstruct": [("uint8 images", floats_only("reconstruct", "uint8"))],
    "encode_uint8": [
        ("float64 images", uint8_only("encode", "float64")),  # codes of 0s
        ("float32 images", uint8_only("encode", "float32")),
        ("300.0 images", uint8_only("encode", "float64")),  # codes of 44s
        ("int64 images", uint8_only("encode", "int64")),
    ],
    "reconstruct_uint8": [("float64 images", uint8_only("reconstruct", "float64"))],
    "decode": [("bool z", "decode expects float32 latents z; got bool")],
}


def as_a_user_might(kind, images, z):
    """`images` or `z` as the NumPy array `kind` names."""
    return {
        "uint8 images": images,
        "int64 images": images.astype(np.int64),
        "bool images": images > 127,
        "float64 images": images / 255,  # as NumPy divides
        "float32 images": images.astype(np.float32) / 255,
        "300.0 images": np.full(images.shape, 300.0),  # beyond uint8
        "bool z": z > 0,
    }[kind]


@pytest.mark.parametrize(
    "function, kind, error",
    [
        pytest.param(function, kind, error, id=f"{function}({kind})")
        for function, cases in WRONG_DTYPES.items()
        for kind, error in cases
    ],
)
def test_each_function_refuses_another_dtype_and_says_what_to_use(
    gray, function, kind, error
):
    pipeline, images, z = gray
    value = as_a_user_might(kind, images, z)
    for passed in [value, tf.constant(value)]:  # as README's notebook, as TF
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(error)):
            getattr(pipeline, function)(passed)


@pytest.mark.parametrize("function", ["encode", "reconstruct"])
def test_float_functions_refuse_images_in_0_255(gray, function):
    pipeline, images, z = gray
    error = (
        f"{function} expects float32 images in [0, 1]; "
        f"got values from {images.min()} to {images.max()}"
    )
    for passed in [
        images.astype(np.float32),  # not divided by 255
        images.astype(np.float64),  # cast to float32, then refused
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(error)):
            getattr(pipeline, function)(passed)
    # By signature, as TF Serving calls it: TF casts NumPy uint8 to its float32.
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(error)):
        pipeline.signatures[function](images=images)


def test_other_floats_and_integer_latents_are_cast_to_float32(root, gray):
    pipeline, images, z = gray
    expected = np.load(root / "gray/expected.npz")
    floats = images / 255  # float64, as NumPy divides
    for passed in [floats, tf.constant(floats)]:
        z_mean = pipeline.encode(passed)["z_mean"]
        np.testing.assert_allclose(z_mean, expected["z_mean"], **FLOAT32)
        decoded = pipeline.reconstruct(passed)["images"]
        np.testing.assert_allclose(decoded, expected["reconstructed"], **FLOAT32)
    decoded = pipeline.decode(tf.constant(z, tf.float64))["images"]
    np.testing.assert_allclose(decoded, expected["decoded"], **FLOAT32)
    integers = np.rint(z).astype(np.int64)
    want = pipeline.decode(integers.astype(np.float32))["images"]
    for passed in [integers, tf.constant(integers)]:
        np.testing.assert_allclose(pipeline.decode(passed)["images"], want, **FLOAT32)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_exports_are_float32_and_near_the_16_bit_model(
    root, loaded, precision
):
    report = loaded["exports"][f"{precision}/model"]
    assert report["layer_dtypes"] == ["float32"]
    for inputs, outputs in report["signatures"].values():
        dtypes = {dtype for _, dtype in [*inputs.values(), *outputs.values()]}
        assert dtypes <= {"float32", "uint8"}
    # The 16-bit forward pass rounds to 2⁻¹¹ (float16) or 2⁻⁸ (bfloat16).
    in_16_bits = np.load(root / precision / "expected_in_16_bits.npz")
    bits_tolerance = dict(rtol=0, atol=0.01)  # measured: 2e-4 and 1.3e-3
    assert_computes_like_the_model(
        root / precision / "model", in_16_bits, bits_tolerance
    )


def test_a_mirrored_export_loads_on_one_device(root, loaded, mirrored):
    assert mirrored == {"replicas": 2, "variable": "MirroredVariable"}
    assert len(loaded["devices"]) == 1
    expected = np.load(root / "mirrored/expected.npz")
    assert_computes_like_the_model(root / "mirrored/model", expected, FLOAT32)


def test_the_saved_model_holds_each_weight_once_and_no_discriminator(root, exported):
    model = exported["gray"]
    assert model.discriminator is not None
    stored = tf.train.list_variables(
        str(root / "gray/model/saved_model/variables/variables")
    )
    values = sum(int(np.prod(shape)) for name, shape in stored if shape)
    assert values == model.encoder.count_params() + model.decoder.count_params()


# --- failures


def test_an_export_leaves_only_the_exports(root, exported):
    for name in CASES:
        assert sorted(os.listdir(root / name / "model")) == sorted(EXPORTS)


def test_a_failed_export_leaves_the_previous_one_intact(
    root, exported, tmp_path, monkeypatch
):
    folder = shutil.copytree(root / "gray/model", tmp_path / "model")
    before = snapshot(folder)
    staged = []

    def write_half_and_fail(trackable, path, **kwargs):
        staged.extend(sorted(os.listdir(Path(path).parent)))
        Path(path).mkdir()
        (Path(path) / "saved_model.pb").write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", write_half_and_fail)
    with pytest.raises(OSError, match="No space"):
        export_model(build(99, (32, 32, 1)), folder)
    assert staged == ["decoder.keras", "encoder.keras"]  # it failed mid-export
    assert snapshot(folder) == before


def test_a_killed_export_leaves_the_previous_one_intact(root, loaded, mirrored):
    folder = root / "mirrored/model_killed"
    visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert visible == sorted(EXPORTS)
    [staging] = folder.glob(".export.*.tmp")  # where the killed export wrote
    assert (staging / "saved_model/saved_model.pb").read_bytes() == b"half"
    expected = np.load(root / "mirrored/expected.npz")
    assert_computes_like_the_model(folder, expected, FLOAT32)


def test_the_next_export_clears_a_killed_ones_leftovers(root, loaded):
    folder = root / "rgb/model"  # exported over mirrored/model_killed's copy
    assert sorted(os.listdir(folder)) == sorted(EXPORTS)
    expected = np.load(root / "rgb/expected.npz")  # not the older export's
    assert_computes_like_the_model(folder, expected, FLOAT32)


def fail_to_rename_the_new_saved_model(monkeypatch):
    """os.replace as a full disk or a kill would interrupt export_model: once the
    older saved_model/ has moved aside, before the new one takes its place."""
    replace = os.replace

    def replace_or_fail(source, target):
        if Path(source).name == Path(target).name == "saved_model":
            raise OSError("Input/output error")
        replace(source, target)

    monkeypatch.setattr(os, "replace", replace_or_fail)


def test_killed_between_renames_the_older_saved_model_goes_back(
    root, exported, tmp_path, monkeypatch
):
    folder = shutil.copytree(root / "gray/model", tmp_path / "model")
    before = snapshot(folder)
    fail_to_rename_the_new_saved_model(monkeypatch)
    monkeypatch.setattr(utils.outputs.export, "discard", lambda staging, folder: None)
    with pytest.raises(OSError, match="Input/output"):
        export_model(build(99, (32, 32, 1)), folder)  # "killed": nothing cleaned
    assert not (folder / "saved_model").exists()
    monkeypatch.undo()
    remove_unfinished_exports(folder)  # as the next export starts
    assert snapshot(folder) == before
