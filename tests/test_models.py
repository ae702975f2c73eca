"""The maths against hand-computed values, the schedules, and the architecture."""

import math

import numpy as np
import pytest
import tensorflow as tf

from models import (
    BetaVAE,
    ObjectiveSettings,
    beta_at,
    build_decoder,
    build_encoder,
    capacity_at,
    check_image_size,
    compute_losses,
    kl_per_latent,
    objective,
    reconstruction_loss,
)

SPEC = [[32, 4, 2]] * 4
DENSE = [[256], [256]]


def test_kl_per_latent_hand_computed():
    z_mean = tf.constant([[0.0, 1.0, -2.0]])
    z_log_var = tf.constant([[0.0, 0.0, math.log(4.0)]])
    # ½(σ² + μ² − 1 − log σ²): 0; ½(1 + 1 − 1 − 0) = 0.5; ½(4 + 4 − 1 − ln 4)
    expected = [0.0, 0.5, 0.5 * (7.0 - math.log(4.0))]
    np.testing.assert_allclose(kl_per_latent(z_mean, z_log_var)[0], expected, rtol=1e-6)


def test_kl_is_zero_only_at_the_prior_and_positive_elsewhere():
    rng = np.random.default_rng(0)
    mu = tf.constant(rng.normal(size=(5, 4)), tf.float32)
    log_var = tf.constant(rng.normal(size=(5, 4)), tf.float32)
    assert float(tf.reduce_min(kl_per_latent(mu, log_var))) > 0
    assert float(tf.reduce_max(kl_per_latent(mu * 0, log_var * 0))) == 0


def _images_and_logits():
    images = np.zeros((2, 2, 2, 1), np.float32)
    images[0, 0, 0, 0] = 1.0
    images[1] = 1.0
    logits = np.zeros((2, 2, 2, 1), np.float32)  # sigmoid = 0.5 everywhere
    logits[1, 0, 0, 0] = math.log(3.0)  # sigmoid = 0.75
    return tf.constant(images), tf.constant(logits)


def test_squared_error_is_summed_over_pixels():
    images, logits = _images_and_logits()
    loss = reconstruction_loss(images, logits, "squared_error").numpy()
    np.testing.assert_allclose(loss, [4 * 0.25, 3 * 0.25 + 0.0625], rtol=1e-6)


def test_absolute_error_is_summed_over_pixels():
    images, logits = _images_and_logits()
    loss = reconstruction_loss(images, logits, "absolute_error").numpy()
    np.testing.assert_allclose(loss, [4 * 0.5, 3 * 0.5 + 0.25], rtol=1e-6)


def test_bernoulli_is_cross_entropy_summed_over_pixels():
    images, logits = _images_and_logits()
    loss = reconstruction_loss(images, logits, "bernoulli").numpy()
    # −log 0.5 per pixel; the 0.75 pixel of an all-ones image costs −log 0.75
    np.testing.assert_allclose(
        loss, [4 * math.log(2), 3 * math.log(2) - math.log(0.75)], rtol=1e-6
    )


def test_bernoulli_is_stable_for_confident_logits():
    images = tf.ones((1, 1, 1, 1))
    loss = reconstruction_loss(images, tf.fill((1, 1, 1, 1), -200.0), "bernoulli")
    np.testing.assert_allclose(loss.numpy(), [200.0], rtol=1e-6)


def test_unknown_loss_names_the_choices():
    images, logits = _images_and_logits()
    with pytest.raises(ValueError, match="bernoulli"):
        reconstruction_loss(images, logits, "l2")


@pytest.mark.parametrize("step, expected", [(0, 4.0), (10_000, 4.0)])
def test_constant_beta(step, expected):
    assert float(beta_at(step, "constant", 4.0, 100.0, 100)) == expected


def test_warmup_matches_the_original_anneal_run():
    # KLD_Anneal_40000_steps-10: β = min(10, step/4000)
    for step in (0, 1000, 20_000, 40_000, 90_000):
        assert float(beta_at(step, "warmup", 10.0, 0.0, 40_000)) == pytest.approx(
            min(10, step / 4000)
        )


def test_decrease_matches_the_original_decrease_run():
    # KLD_Decrease_40000_steps-100to1: β = max(1, 100 − step/400) reaches 1 at 39,600
    for step in (0, 400, 20_000, 39_600, 50_000):
        assert float(beta_at(step, "decrease", 1.0, 100.0, 39_600)) == pytest.approx(
            max(1, 100 - step / 400), rel=1e-5
        )


def test_capacity_rises_linearly_then_holds():
    assert float(capacity_at(0, 25.0, 100_000)) == 0.0
    assert float(capacity_at(50_000, 25.0, 100_000)) == pytest.approx(12.5)
    assert float(capacity_at(200_000, 25.0, 100_000)) == pytest.approx(25.0)


def test_objectives_combine_the_terms():
    recon, kl = tf.constant([10.0]), tf.constant([3.0])
    beta = ObjectiveSettings(beta=4.0)
    loss, value = objective(recon, kl, 0, beta)
    assert float(loss[0]) == 22.0 and float(value) == 4.0
    capacity = ObjectiveSettings(
        objective="capacity", gamma=100.0, capacity_max=5.0, capacity_steps=10
    )
    loss, value = objective(recon, kl, 10, capacity)  # |3 − 5| · 100
    assert float(loss[0]) == 210.0 and float(value) == 5.0
    assert capacity.schedule_name == "capacity" and beta.schedule_name == "beta"


@pytest.mark.parametrize("size, channels", [(32, 3), (64, 1), (64, 3), (128, 3)])
def test_encoder_decoder_shapes(size, channels):
    encoder = build_encoder((size, size, channels), SPEC, DENSE, 10, "leaky_relu")
    decoder = build_decoder((size, size, channels), SPEC, DENSE, 10, "leaky_relu")
    z_mean, z_log_var = encoder(tf.zeros((2, size, size, channels)))
    assert z_mean.shape == (2, 10) and z_log_var.shape == (2, 10)
    assert decoder(tf.zeros((2, 10))).shape == (2, size, size, channels)


def test_first_conv_has_the_spec_filters_and_spec_is_not_mutated():
    spec = [[32, 4, 2]] * 4
    encoder = build_encoder((64, 64, 3), spec, DENSE, 10, "relu")
    build_decoder((64, 64, 3), spec, DENSE, 10, "relu")
    assert encoder.get_layer("conv0").filters == 32  # the original got 3 here
    assert spec == [[32, 4, 2]] * 4


def test_heads_are_linear():
    encoder = build_encoder((32, 32, 1), SPEC, DENSE, 6, "leaky_relu")
    assert encoder.get_layer("z_mean").activation.__name__ == "linear"
    assert encoder.get_layer("z_log_var").activation.__name__ == "linear"
    # so means can be strongly negative, which leaky ReLU would squash
    rng = np.random.default_rng(0)
    z_mean, _ = encoder(tf.constant(rng.normal(size=(64, 32, 32, 1)), tf.float32) * 50)
    assert float(tf.reduce_min(z_mean)) < -0.1


def test_decoder_mirrors_encoder_channels():
    spec = [[16, 4, 2], [32, 4, 2], [64, 4, 2]]
    decoder = build_decoder((32, 32, 3), spec, [[128]], 4, "relu")
    filters = [layer.filters for layer in decoder.layers if hasattr(layer, "filters")]
    assert filters == [32, 16, 3]


def test_image_size_check():
    assert check_image_size(64, SPEC) is None
    assert "divisible by 16" in check_image_size(40, SPEC)


def test_compute_losses_per_example_and_per_latent():
    model = BetaVAE((32, 32, 1), SPEC, DENSE, 5)
    images = tf.random.uniform((3, 32, 32, 1), seed=1)
    out = compute_losses(
        model,
        images,
        0,
        ObjectiveSettings(beta=2.0, reconstruction_loss="bernoulli"),
        tf.zeros((3, 5)),
    )
    assert out["loss"].shape == (3,) and out["kl_per_latent"].shape == (3, 5)
    np.testing.assert_allclose(
        out["kl"], tf.reduce_sum(out["kl_per_latent"], 1), rtol=1e-5
    )
    np.testing.assert_allclose(
        out["loss"], out["reconstruction_loss"] + 2.0 * out["kl"], rtol=1e-5
    )
    assert model.decode(tf.zeros((2, 5))).shape == (2, 32, 32, 1)


@pytest.mark.parametrize(
    "precision, compute", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")]
)
def test_mixed_precision_computes_in_16_bits_and_trains_in_float32(precision, compute):
    import keras

    from main import build_optimizer
    from utils.steps import make_steps

    model = BetaVAE((32, 32, 1), SPEC, DENSE, 5, precision=precision)
    assert model.encoder.get_layer("conv0").compute_dtype == compute
    assert model.decoder.get_layer("deconv0").compute_dtype == compute
    assert model.encoder.get_layer("z_mean").compute_dtype == "float32"
    casts = [layer for layer in model.decoder.layers if layer.name == "logits"]
    assert casts and casts[0].compute_dtype == "float32"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    cfg = ObjectiveSettings(reconstruction_loss="bernoulli")
    out = compute_losses(model, tf.zeros((2, 32, 32, 1)), 0, cfg, tf.zeros((2, 5)))
    assert {v.dtype for v in out.values()} == {tf.float32}  # losses, KL, β

    p = {"learning_rate": 1e-3, "adam_beta_1": 0.5, "precision": precision}
    optimizer = build_optimizer(p)
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")  # bfloat16 needs no scaling
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    train_steps, _ = make_steps(
        tf.distribute.get_strategy(), model, optimizer, step, cfg, 8, 0
    )
    rng = np.random.default_rng(0)
    images = (rng.random((8, 32, 32, 1)) < 0.3).astype(np.uint8) * 255
    batches = iter(tf.data.Dataset.from_tensors(images).repeat())
    before = [w.copy() for w in model.get_weights()]
    losses = train_steps(batches, tf.constant(20, tf.int32))["loss"].numpy()
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert int(step.numpy()) == 20
    after = model.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
