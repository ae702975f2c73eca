"""The maths against hand-computed or NumPy values, the schedules, and the
architecture."""

import math
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import objective_settings
from scipy.special import logsumexp, softmax

import params
from models import (
    LOSSES,
    BatchView,
    BetaVAE,
    ObjectiveSettings,
    beta_at,
    build_decoder,
    build_encoder,
    build_model,
    build_optimizers,
    capacity_at,
    compute_losses,
    covariance,
    dip_penalties,
    kl_per_latent,
    permute_dims,
    reconstruction_loss,
    total_correlation,
)
from utils.objectives import OBJECTIVES
from utils.settings import cli

SPEC = [[32, 4, 2]] * 4
DENSE = [[256], [256]]
REPO = Path(__file__).resolve().parents[1]


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
    """2 images of 2×2 pixels × 3 channels. Image 0 is black but for one pixel of
    channel 0; image 1 is white; sigmoid(logits) is 0.5 everywhere but 0.75 at
    one pixel of image 1's channel 2 (a loss summing channel 0 alone misses it)."""
    images = np.zeros((2, 2, 2, 3), np.float32)
    images[0, 0, 0, 0] = 1.0
    images[1] = 1.0
    logits = np.zeros((2, 2, 2, 3), np.float32)
    logits[1, 0, 0, 2] = math.log(3.0)  # sigmoid = 0.75
    return tf.constant(images), tf.constant(logits)


def test_squared_error_is_summed_over_pixels_and_channels():
    images, logits = _images_and_logits()
    loss = reconstruction_loss(images, logits, "squared_error").numpy()
    np.testing.assert_allclose(loss, [12 * 0.25, 11 * 0.25 + 0.0625], rtol=1e-6)


def test_absolute_error_is_summed_over_pixels_and_channels():
    images, logits = _images_and_logits()
    loss = reconstruction_loss(images, logits, "absolute_error").numpy()
    np.testing.assert_allclose(loss, [12 * 0.5, 11 * 0.5 + 0.25], rtol=1e-6)


def test_bernoulli_is_cross_entropy_summed_over_pixels_and_channels():
    images, logits = _images_and_logits()
    loss = reconstruction_loss(images, logits, "bernoulli").numpy()
    # −log 0.5 per pixel; the 0.75 pixel of an all-ones image costs −log 0.75
    np.testing.assert_allclose(
        loss, [12 * math.log(2), 11 * math.log(2) - math.log(0.75)], rtol=1e-6
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


# --- the objectives' estimators, against NumPy on tiny inputs


def _latents(seed=0, n=5, latents=3):
    rng = np.random.default_rng(seed)
    z_mean, z_log_var = rng.normal(size=(2, n, latents))
    z = z_mean + np.exp(0.5 * z_log_var) * rng.normal(size=(n, latents))
    return z, z_mean, z_log_var


def _log_density(x, mean, log_var):
    return -0.5 * ((x - mean) ** 2 / np.exp(log_var) + log_var + np.log(2 * np.pi))


def test_total_correlation_is_disentanglement_libs_minibatch_estimate():
    z, z_mean, z_log_var = _latents()
    expected = []
    for j in range(len(z)):
        # log q(z_j|x_i) per latent, for every example i of the batch: (N, L)
        log_q = _log_density(z[j], z_mean, z_log_var)
        joint = logsumexp(log_q.sum(axis=1))
        marginals = sum(logsumexp(log_q[:, k]) for k in range(z.shape[1]))
        expected.append(joint - marginals)
    tc = total_correlation(
        *(tf.constant(a, tf.float32) for a in (z, z_mean, z_log_var))
    )
    np.testing.assert_allclose(tc, expected, rtol=1e-5)


def test_total_correlation_of_independent_latents_is_lower():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(200, 2)).astype(np.float32)
    log_vars = np.full_like(means, -4.0)  # near-deterministic codes
    correlated = np.stack([means[:, 0], means[:, 0]], axis=1)
    tc = [
        float(tf.reduce_mean(total_correlation(m, m, log_vars)))
        for m in (means, correlated)
    ]
    assert tc[0] < tc[1] - 1.0


def test_covariance_and_dip_penalties_by_numpy():
    _, z_mean, z_log_var = _latents(seed=2, n=7, latents=4)
    cov = covariance(tf.constant(z_mean))
    np.testing.assert_allclose(cov, np.cov(z_mean.T, bias=True), rtol=1e-6)
    off, diagonal = dip_penalties(cov)
    c = np.cov(z_mean.T, bias=True)
    assert float(off) == pytest.approx((c**2).sum() - (np.diag(c) ** 2).sum(), 1e-6)
    assert float(diagonal) == pytest.approx(((np.diag(c) - 1) ** 2).sum(), 1e-6)


def test_permute_dims_permutes_each_latent_on_its_own():
    rows = np.arange(20, dtype=np.float32)
    z = tf.constant(np.stack([rows, 100 + rows], axis=1))  # each value names its row
    shuffled = permute_dims(z, (3, 4)).numpy()
    order = [shuffled[:, 0], shuffled[:, 1] - 100]  # the row each value came from
    for k in range(2):  # each latent keeps its values, in another order
        np.testing.assert_array_equal(np.sort(order[k]), rows)
        assert not np.array_equal(order[k], rows)
    assert not np.array_equal(order[0], order[1])  # one permutation per latent


class FixedNoise(BatchView):
    """One device, with the sampling noise given: losses can be recomputed."""

    def __init__(self, epsilon):
        self.epsilon = tf.constant(epsilon, tf.float32)


SETTINGS = dict(
    beta=6.0, gamma=100.0, capacity_max=5.0, capacity_steps=10, factor_gamma=35.0,
    lambda_od=2.0, lambda_d=7.0, reconstruction_loss="bernoulli",
)  # fmt: skip


@pytest.fixture(scope="module")
def factor_model():
    return BetaVAE((32, 32, 1), [[8, 4, 2]] * 4, [[16]], 3, discriminator=True)


def numpy_total_correlation(z, mean, log_var):
    """disentanglement_lib's minibatch estimate, written again in NumPy (float64):
    log q(z_i) ≈ logsumexp_j log q(z_i | x_j), the same per dimension for the
    product of the marginals, no log(N·M) correction (REFERENCE.md)."""
    from scipy.special import logsumexp

    z, mean, log_var = (np.asarray(a, np.float64) for a in (z, mean, log_var))
    diff = z[:, None, :] - mean[None, :, :]
    log_density = -0.5 * (
        np.log(2 * np.pi) + log_var[None] + diff**2 / np.exp(log_var[None])
    )
    log_qz = logsumexp(log_density.sum(axis=2), axis=1)
    log_product = logsumexp(log_density, axis=1).sum(axis=1)
    return np.mean(log_qz - log_product)


@pytest.mark.parametrize("objective", sorted(LOSSES))
def test_each_objective_is_its_formula(objective, factor_model):
    rng = np.random.default_rng(3)
    images = tf.constant(rng.random((6, 32, 32, 1)), tf.float32)
    epsilon = rng.normal(size=(6, 3))
    cfg = objective_settings(objective=objective, **SETTINGS)
    out = {
        k: np.asarray(v)
        for k, v in compute_losses(
            factor_model, images, 5, cfg, FixedNoise(epsilon)
        ).items()
    }
    z_mean, z_log_var = (np.asarray(a) for a in factor_model.encoder(images))
    z = (z_mean + np.exp(0.5 * z_log_var) * epsilon).astype(np.float32)
    recon, kl = out["reconstruction_loss"], out["kl"]
    # KL(N(μ, σ²) ‖ N(0, 1)) in closed form, in NumPy: not the code under test.
    kl_numpy = 0.5 * (z_mean**2 + np.exp(z_log_var) - 1 - z_log_var).sum(axis=1)
    np.testing.assert_allclose(kl, kl_numpy, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["negative_elbo"], recon + kl, rtol=1e-6)
    if objective == "beta":
        expected = recon + 6.0 * kl
    elif objective == "capacity":  # C(5) = 5 · 5/10
        expected = recon + 100.0 * np.abs(kl - 2.5)
    elif objective == "tc":
        tc = numpy_total_correlation(z, z_mean, z_log_var)
        np.testing.assert_allclose(out["tc"], tc, rtol=1e-4, atol=1e-4)
        expected = recon + kl + 5.0 * tc
    elif objective == "factor":
        logits = np.asarray(factor_model.discriminator(z))
        tc = logits[:, 0] - logits[:, 1]
        np.testing.assert_allclose(out["tc"], tc, rtol=1e-4, atol=1e-5)
        shuffled = permute_dims(tf.constant(z), (0, 0))
        fake = softmax(np.asarray(factor_model.discriminator(shuffled)), axis=1)
        real = softmax(logits, axis=1)
        d_loss = -0.5 * (np.log(real[:, 0]) + np.log(fake[:, 1]))
        np.testing.assert_allclose(out["discriminator_loss"], d_loss, rtol=1e-4)
        expected = recon + kl + 35.0 * tc
    else:
        c = np.cov(z_mean.T, bias=True)
        if objective == "dip2":
            c += np.diag(np.exp(z_log_var).mean(axis=0))
        off = (c**2).sum() - (np.diag(c) ** 2).sum()
        diagonal = ((np.diag(c) - 1) ** 2).sum()
        assert float(out["dip_off_diagonal"]) == pytest.approx(off, rel=1e-4)
        assert float(out["dip_diagonal"]) == pytest.approx(diagonal, rel=1e-4)
        expected = recon + kl + 2.0 * off + 7.0 * diagonal
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-4)


def test_every_objective_has_a_loss_a_description_and_a_readme_row():
    assert set(LOSSES) == set(OBJECTIVES)
    readme = (REPO / "README.md").read_text()
    for name, objective in OBJECTIVES.items():
        row = re.search(rf"^\| `{name}` \| (.+?) \|", readme, re.MULTILINE)
        assert row, f"README's objectives table has no row for {name}"
        assert objective.paper in row.group(1)


def test_dip_lambda_d_defaults_to_disentanglement_libs_ratio():
    for objective, ratio in (("dip1", 10.0), ("dip2", 1.0)):
        p = {**SETTINGS, "objective": objective, "lambda_d": None}
        p.update(beta_schedule="constant", beta_start=1.0, beta_steps=1)
        assert ObjectiveSettings.of(p).lambda_d == ratio * 2.0


def test_the_discriminator_trains_on_its_own_loss_only(factor_model):
    from train import train_step

    p = {
        "learning_rate": 1e-3,
        "adam_beta_1": 0.5,
        "adam_beta_2": 0.999,
        "adam_epsilon": 1e-7,
        "precision": "float32",
    }
    optimizer, discriminator_optimizer = build_optimizers(p, factor_model)
    # Each optimizer holds state for its own network's variables only.
    assert len(optimizer.variables) > 1 and len(discriminator_optimizer.variables) > 1
    vae = {id(v) for v in factor_model.vae_variables}
    critic = {id(v) for v in factor_model.discriminator.trainable_variables}
    assert not vae & critic
    before = [v.numpy().copy() for v in factor_model.discriminator.variables]
    images = tf.constant(np.random.default_rng(4).random((8, 32, 32, 1)), tf.float32)
    cfg = objective_settings(objective="factor", **SETTINGS)
    for _ in range(3):
        train_step(
            factor_model, optimizer, discriminator_optimizer, images, 0, cfg,
            FixedNoise(np.zeros((8, 3))),
        )  # fmt: skip
    after = factor_model.discriminator.variables
    assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    # Adam's discriminator settings are the paper's, not the VAE's.
    assert float(discriminator_optimizer.learning_rate) == pytest.approx(1e-4)
    assert float(discriminator_optimizer.beta_2) == pytest.approx(0.9)


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


def test_compute_losses_per_example_and_per_latent():
    model = BetaVAE((32, 32, 1), SPEC, DENSE, 5)
    images = tf.random.uniform((3, 32, 32, 1), seed=1)
    cfg = objective_settings(beta=2.0, reconstruction_loss="bernoulli")
    out = compute_losses(model, images, 0, cfg, FixedNoise(np.zeros((3, 5))))
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

    from train import make_steps

    model = BetaVAE((32, 32, 1), SPEC, DENSE, 5, precision=precision)
    assert model.encoder.get_layer("conv0").compute_dtype == compute
    assert model.decoder.get_layer("deconv0").compute_dtype == compute
    assert model.encoder.get_layer("z_mean").compute_dtype == "float32"
    casts = [layer for layer in model.decoder.layers if layer.name == "logits"]
    assert casts and casts[0].compute_dtype == "float32"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    cfg = objective_settings(reconstruction_loss="bernoulli")
    batch = FixedNoise(np.zeros((2, 5)))
    out = compute_losses(model, tf.zeros((2, 32, 32, 1)), 0, cfg, batch)
    assert {v.dtype for v in out.values()} == {tf.float32}  # losses, KL, β

    p = {
        "learning_rate": 1e-3,
        "adam_beta_1": 0.5,
        "adam_beta_2": 0.999,
        "adam_epsilon": 1e-7,
        "precision": precision,
    }
    optimizers = build_optimizers(p, model)
    scaled = isinstance(optimizers[0], keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")  # bfloat16 needs no scaling
    step = tf.Variable(0, dtype=tf.int64)
    train_steps, _ = make_steps(
        tf.distribute.get_strategy(), model, optimizers, step, cfg, 8, 0
    )
    rng = np.random.default_rng(0)
    images = (rng.random((8, 32, 32, 1)) < 0.3).astype(np.uint8) * 255
    batches = iter(tf.data.Dataset.from_tensors(images).repeat())
    before = [w.copy() for w in model.get_weights()]
    losses = train_steps(batches, 20)["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert int(step.numpy()) == 20
    after = model.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_the_training_path_permutes_each_latent_column_on_its_own():
    """FactorVAE's ∏ q(z_j) samples: train.ReplicaBatch.shuffle (what the train
    step calls) permutes every column of z across the batch independently. Without
    the permutation, or with one permutation for all columns, the discriminator
    would see q(z) itself."""
    from train import ReplicaBatch

    n, latents = 64, 4
    z = np.arange(n * latents, dtype=np.float32).reshape(latents, n).T  # distinct
    images = tf.zeros((n, 8, 8, 1))

    def shuffled():
        return ReplicaBatch(images, latents, n, seed=3, salt=7).shuffle(tf.constant(z))

    out = tf.distribute.get_strategy().run(shuffled).numpy()
    for j in range(latents):  # each column a permutation of its own values …
        assert sorted(out[:, j]) == sorted(z[:, j])
        assert not np.array_equal(out[:, j], z[:, j])
    rows = [np.argsort(np.argsort(out[:, j])) for j in range(latents)]
    assert len({tuple(r) for r in rows}) == latents  # … and not the same one


def test_the_factor_vae_discriminator_learns_to_tell_q_z_from_its_marginals():
    """With correlated latents (the same noise in every dimension), the
    discriminator's loss falls below log 2 (chance) within a few dozen steps."""
    from train import train_step

    model = BetaVAE((16, 16, 1), [[8, 4, 2]] * 2, [[16]], 3, discriminator=True)
    p = {
        "learning_rate": 1e-4,
        "adam_beta_1": 0.5,
        "adam_beta_2": 0.999,
        "adam_epsilon": 1e-7,
        "precision": "float32",
    }
    optimizer, _ = build_optimizers(p, model)
    critic_optimizer = tf.keras.optimizers.Adam(1e-3)
    rng = np.random.default_rng(5)
    images = tf.constant(rng.random((64, 16, 16, 1)), tf.float32)
    cfg = objective_settings(objective="factor", **SETTINGS)

    class SharedNoise(FixedNoise):
        def shuffle(self, z):  # the training path's permutation, one device
            from models import permute_dims

            return permute_dims(z, (0, self.step))

    losses = []
    for step in range(60):
        noise = SharedNoise(np.repeat(rng.normal(size=(64, 1)), 3, axis=1))
        noise.step = step
        out = train_step(model, optimizer, critic_optimizer, images, step, cfg, noise)
        losses.append(float(np.mean(out["discriminator_loss"])))
    assert np.mean(losses[-10:]) < np.log(2) - 0.05, losses[::10]


# disentanglement_lib's conv_encoder and deconv_decoder (methods/shared/
# architectures.py), layer by layer as written there: (name, kind, kernel, stride or
# None, filters or units, activation, output shape for a 64×64×C image).
def reference_layers(channels, latents=10):
    return [
        ("e1", "conv", 4, 2, 32, "relu", (32, 32, 32)),
        ("e2", "conv", 4, 2, 32, "relu", (16, 16, 32)),
        ("e3", "conv", 2, 2, 64, "relu", (8, 8, 64)),
        ("e4", "conv", 2, 2, 64, "relu", (4, 4, 64)),
        ("e5", "dense", None, None, 256, "relu", (256,)),
        ("means", "dense", None, None, latents, "linear", (latents,)),
        ("log_var", "dense", None, None, latents, "linear", (latents,)),
        ("d1", "dense", None, None, 256, "relu", (256,)),
        ("d2", "dense", None, None, 1024, "relu", (1024,)),  # reshaped to 4×4×64
        ("d3", "deconv", 4, 2, 64, "relu", (8, 8, 64)),
        ("d4", "deconv", 4, 2, 32, "relu", (16, 16, 32)),
        ("d5", "deconv", 4, 2, 32, "relu", (32, 32, 32)),
        ("d6", "deconv", 4, 2, channels, "linear", (64, 64, channels)),
    ]


def reference_parameter_count(channels, latents=10):
    """Weights and biases of each layer above, from its kernel and the channels or
    units it receives."""
    # Where a layer's input is not the previous layer's output:
    # e4 flattened, e5 (beside means), z, d2 reshaped to 4×4×64.
    jumps = {"e5": 4 * 4 * 64, "log_var": 256, "d1": latents, "d3": 64}
    counts, inputs = [], channels
    for name, kind, kernel, _, width, _, _ in reference_layers(channels, latents):
        inputs = jumps.get(name, inputs)
        fan_in = kernel * kernel * inputs if kind != "dense" else inputs
        counts.append(fan_in * width + width)
        inputs = width
    return sum(counts), counts


@pytest.mark.parametrize("channels", [1, 3])
def test_the_locatello_preset_builds_disentanglement_libs_networks(channels):
    p = cli.resolve(
        cli.read_params(params), {"preset": "locatello", "dataset": "dsprites"}
    )
    model = build_model(p, (64, 64, channels), training=False)
    layers = [
        layer
        for network in (model.encoder, model.decoder)
        for layer in network.layers
        if layer.count_params()
    ]
    reference = reference_layers(channels)
    assert len(layers) == len(reference)
    kinds = {"conv": keras.layers.Conv2D, "deconv": keras.layers.Conv2DTranspose}
    for layer, (name, kind, kernel, stride, _, activation, shape) in zip(
        layers, reference, strict=True
    ):
        assert type(layer) is kinds.get(kind, keras.layers.Dense), name
        assert layer.output.shape[1:] == shape, name
        assert layer.activation.__name__ == activation, name
        if kind != "dense":
            assert layer.kernel_size == (kernel, kernel), name
            assert layer.strides == (stride, stride), name
            assert layer.padding == "same", name
    total, per_layer = reference_parameter_count(channels)
    assert [layer.count_params() for layer in layers] == per_layer
    assert model.encoder.count_params() + model.decoder.count_params() == total
    optimizer, _ = build_optimizers(p, model)
    assert float(optimizer.learning_rate) == pytest.approx(1e-4)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 1e-8)


def test_a_decoder_that_is_not_the_encoders_mirror():
    model = BetaVAE(
        (32, 32, 1), [[8, 4, 2]] * 2, [[16]], 3,
        decoder_layers=([[4, 3, 1], [8, 5, 2], [6, 4, 2]], [[12], [20]]),
    )  # fmt: skip
    decoder = model.decoder
    assert [decoder.get_layer(f"dense{i}").units for i in (0, 1)] == [20, 12]
    assert decoder.get_layer("to_conv").units == 8 * 8 * 6
    kernels = [decoder.get_layer(f"deconv{i}").kernel_size[0] for i in range(3)]
    assert kernels == [4, 5, 3]
    assert [decoder.get_layer(f"deconv{i}").filters for i in range(3)] == [8, 4, 1]
    assert decoder(tf.zeros((2, 3))).shape == (2, 32, 32, 1)
    assert model.encoder.get_layer("conv1").kernel_size == (4, 4)  # its own spec
