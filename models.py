"""The β-VAE family: the loss terms a reader checks against the papers, each
objective's loss (`LOSSES`), then the encoder, decoder and discriminator, then the
model and its optimizers.

Shapes use B for the batch, N for the *global* batch (all replicas), L for
`latent_size`, S for `image_size`, C for channels. Losses are per example (B,),
summed over pixels and latents; the caller averages over the global batch, so the
papers' β, γ, C and λ keep their meaning (Higgins et al. 2017; Burgess et al. 2018).
"""

import math
from dataclasses import dataclass, fields
from itertools import pairwise

import keras
import tensorflow as tf

from utils.objectives import (
    BETA_SCHEDULES,
    RECONSTRUCTION_LOSSES,
    dip_lambda_d,
    objective_of,
)

# FactorVAE's discriminator (Kim & Mnih 2018, appendix; disentanglement_lib):
# 6 dense layers of 1000 units, leaky ReLU, 2 logits; its own Adam.
DISCRIMINATOR_LAYERS = (1000,) * 6
DISCRIMINATOR_ADAM = dict(learning_rate=1e-4, beta_1=0.5, beta_2=0.9)

# --- the terms of the ELBO and of the regularisers: pure functions


def reconstruction_loss(images, logits, kind):
    """−log p(x|z), summed over pixels and channels. `logits` are the decoder's
    pre-sigmoid outputs; the image is sigmoid(logits). Returns (B,)."""
    if kind == "bernoulli":
        # Cross-entropy on logits: stable where sigmoid would round to 0 or 1.
        per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=images, logits=logits
        )
    elif kind == "squared_error":
        per_pixel = tf.square(tf.sigmoid(logits) - images)
    elif kind == "absolute_error":
        per_pixel = tf.abs(tf.sigmoid(logits) - images)
    else:
        raise ValueError(
            f"unknown reconstruction loss {kind!r}; "
            f"choose one of {RECONSTRUCTION_LOSSES}"
        )
    return tf.reduce_sum(per_pixel, axis=[1, 2, 3])


def kl_per_latent(z_mean, z_log_var):
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent = ½(σ² + μ² − 1 − log σ²), in nats. Works
    on NumPy arrays too (`tf` ops accept them). (B, L)."""
    return 0.5 * (tf.exp(z_log_var) + tf.square(z_mean) - 1.0 - z_log_var)


def gaussian_log_density(samples, mean, log_var):
    """log N(samples; mean, exp(log_var)), element-wise."""
    return -0.5 * (
        tf.square(samples - mean) * tf.exp(-log_var) + log_var + math.log(2 * math.pi)
    )


def total_correlation(z, z_mean, z_log_var):
    """TC = KL(q(z) ‖ ∏_l q(z_l)) per example j, estimated on the minibatch (Chen et
    al. 2018), as disentanglement_lib's `total_correlation`:
        log q(z_j)      ≈ logsumexp_i Σ_l log q(z_jl | x_i)
        log ∏_l q(z_jl) ≈ Σ_l logsumexp_i log q(z_jl | x_i)
    with the dataset-size constants omitted (they shift the value, not the
    gradient). z: this replica's samples (B, L); z_mean, z_log_var: the whole
    global batch's (N, L). Returns (B,)."""
    log_q = gaussian_log_density(z[:, None], z_mean[None], z_log_var[None])  # B,N,L
    log_q_z = tf.reduce_logsumexp(tf.reduce_sum(log_q, axis=2), axis=1)
    log_product = tf.reduce_sum(tf.reduce_logsumexp(log_q, axis=1), axis=1)
    return log_q_z - log_product


def covariance(x):
    """Cov over the batch, E[x xᵀ] − E[x] E[x]ᵀ (biased, as disentanglement_lib).
    (N, L) → (L, L)."""
    mean = tf.reduce_mean(x, axis=0)
    return tf.reduce_mean(x[:, :, None] * x[:, None, :], axis=0) - (
        mean[:, None] * mean[None, :]
    )


def dip_penalties(cov):
    """DIP-VAE's two penalties on a latent covariance C (Kumar et al. 2018, eq. 6):
    Σ_i≠j C_ij² (decorrelate) and Σ_i (C_ii − 1)² (unit variance)."""
    diagonal = tf.linalg.diag_part(cov)
    off_diagonal = cov - tf.linalg.diag(diagonal)
    return tf.reduce_sum(tf.square(off_diagonal)), tf.reduce_sum(
        tf.square(diagonal - 1.0)
    )


def permute_dims(z, seed):
    """Each latent dimension permuted independently across the batch, which samples
    ∏_l q(z_l) (Kim & Mnih 2018, Algorithm 1). `seed`: a stateless seed pair."""
    order = tf.argsort(tf.random.stateless_uniform(tf.shape(z), seed), axis=0)
    return tf.transpose(
        tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1)
    )  # (N, L)


# --- schedules: pure functions of the training step, so a resumed run continues them


def beta_at(step, schedule, beta, beta_start, beta_steps):
    """β(step) for the original repo's three kinds of experiment:
    constant β; warm-up 0 → β over `beta_steps` (its min(10, step/4000));
    decrease `beta_start` → β over `beta_steps` (its max(1, 100 − step/400))."""
    progress = tf.minimum(tf.cast(step, tf.float32) / float(max(beta_steps, 1)), 1.0)
    if schedule == "constant":
        return tf.constant(float(beta))
    if schedule == "warmup":
        return beta * progress
    if schedule == "decrease":
        return beta_start + (beta - beta_start) * progress
    raise ValueError(
        f"unknown beta_schedule {schedule!r}; choose one of {BETA_SCHEDULES}"
    )


def capacity_at(step, capacity_max, capacity_steps):
    """C(step) = min(C_max, C_max·step/C_steps) nats (Burgess et al. 2018, §4)."""
    progress = tf.cast(step, tf.float32) / float(max(capacity_steps, 1))
    return capacity_max * tf.minimum(progress, 1.0)


# --- the objectives: per-example loss and the terms each logs (utils/objectives.py)


@dataclass(frozen=True)
class ObjectiveSettings:
    """The plain numbers the losses need; field names and values are params.py's
    (its one source of defaults: no defaults here)."""

    objective: str
    beta: float
    beta_schedule: str
    beta_start: float
    beta_steps: int
    gamma: float
    capacity_max: float
    capacity_steps: int
    factor_gamma: float
    lambda_od: float
    lambda_d: float  # resolved: never None here
    reconstruction_loss: str

    @classmethod
    def of(cls, values):
        """The settings among a larger dict of parameters."""
        settings = {f.name: values[f.name] for f in fields(cls)}
        return cls(**{**settings, "lambda_d": float(dip_lambda_d(settings))})


class BatchView:
    """What an objective may need beyond its own examples. On one device the batch
    is the whole batch, as here; on several replicas each sees B of the global
    batch's N examples, and train.ReplicaBatch gives the same answers as one
    device would, for its share."""

    epsilon = None  # (B, L) sampling noise; None: drawn by the model

    def gather(self, x):
        """The global batch's values of x (B, …) → (N, …)."""
        return x

    def shuffle(self, z):
        """This replica's share of z with each dimension permuted across the
        global batch."""
        return permute_dims(z, (0, 0))

    def mean(self, per_example):
        """This replica's share of the mean over the global batch."""
        return tf.reduce_mean(per_example, axis=0)


@dataclass(frozen=True)
class ElboTerms:
    """What every objective builds on, per example: the two ELBO terms and the
    samples and posterior parameters they came from."""

    reconstruction_loss: tf.Tensor  # (B,)
    kl: tf.Tensor  # (B,) summed over latents
    negative_elbo: tf.Tensor  # (B,) −ELBO = reconstruction + KL
    z: tf.Tensor  # (B, L) the reparameterised sample
    z_mean: tf.Tensor
    z_log_var: tf.Tensor


def beta_vae_loss(t, step, s, model, batch):
    """β-VAE (Higgins et al. 2017): recon + β(step)·KL."""
    beta = beta_at(step, s.beta_schedule, s.beta, s.beta_start, s.beta_steps)
    return t.reconstruction_loss + beta * t.kl, {"beta": beta}


def capacity_loss(t, step, s, model, batch):
    """Capacity (Burgess et al. 2018): recon + γ·|KL − C(step)|."""
    capacity = capacity_at(step, s.capacity_max, s.capacity_steps)
    loss = t.reconstruction_loss + s.gamma * tf.abs(t.kl - capacity)
    return loss, {"capacity": capacity}


def beta_tc_vae_loss(t, step, s, model, batch):
    """β-TCVAE (Chen et al. 2018): recon + KL + (β − 1)·TC, as disentanglement_lib
    (KL in full, TC weighted by β − 1)."""
    tc = total_correlation(t.z, batch.gather(t.z_mean), batch.gather(t.z_log_var))
    return t.negative_elbo + (s.beta - 1.0) * tc, {"tc": tc}


def factor_vae_loss(t, step, s, model, batch):
    """FactorVAE (Kim & Mnih 2018): recon + KL + γ·TC, TC ≈ D(z)₀ − D(z)₁, the
    log density ratio that a discriminator D (class 0: samples of q(z), class 1:
    samples of ∏ q(z_l)) estimates. D's own loss is logged too; it trains D alone
    (the train step applies each loss to its own networks' variables)."""
    logits = model.discriminator(t.z)  # (B, 2)
    tc = logits[:, 0] - logits[:, 1]
    shuffled = model.discriminator(batch.shuffle(tf.stop_gradient(t.z)))
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits
    discriminator_loss = 0.5 * (
        cross_entropy(tf.zeros_like(tc, tf.int32), logits)
        + cross_entropy(tf.ones_like(tc, tf.int32), shuffled)
    )
    loss = t.negative_elbo + s.factor_gamma * tc
    return loss, {"tc": tc, "discriminator_loss": discriminator_loss}


def dip_vae_loss(t, step, s, model, batch):
    """DIP-VAE (Kumar et al. 2018): recon + KL + λ_od·Σ_i≠j C_ij² + λ_d·Σ_i
    (C_ii − 1)², with C = Cov[μ(x)] (I) or Cov[μ(x)] + E[diag σ²(x)] (II) over
    the global batch. The penalty is the batch's: every example carries it whole,
    so the mean over the batch adds it once."""
    cov = covariance(batch.gather(t.z_mean))
    if s.objective == "dip2":
        cov += tf.linalg.diag(tf.reduce_mean(tf.exp(batch.gather(t.z_log_var)), 0))
    off_diagonal, diagonal = dip_penalties(cov)
    penalty = s.lambda_od * off_diagonal + s.lambda_d * diagonal
    terms = {"dip_off_diagonal": off_diagonal, "dip_diagonal": diagonal}
    return t.negative_elbo + penalty, terms


LOSSES = {
    "beta": beta_vae_loss,
    "capacity": capacity_loss,
    "tc": beta_tc_vae_loss,
    "factor": factor_vae_loss,
    "dip1": dip_vae_loss,
    "dip2": dip_vae_loss,
}


def compute_losses(model, images, step, settings, batch=None, training=True):
    """Everything the train and validation steps log: per-example (B,) values, the
    (B, L) KL per latent, and the objective's terms, of which the scheduled β or C
    and the DIP penalties are scalars (global-batch values). `training=False`:
    validation, the layers in inference mode."""
    batch = batch or BatchView()
    logits, z, z_mean, z_log_var = model(
        images, training=training, epsilon=batch.epsilon
    )
    reconstruction = reconstruction_loss(images, logits, settings.reconstruction_loss)
    kl_latents = kl_per_latent(z_mean, z_log_var)  # (B, L)
    kl = tf.reduce_sum(kl_latents, axis=1)  # (B,)
    # −ELBO: what validation selects on
    vae = ElboTerms(reconstruction, kl, reconstruction + kl, z, z_mean, z_log_var)
    loss, terms = LOSSES[settings.objective](vae, step, settings, model, batch)
    return {
        "loss": loss,
        "reconstruction_loss": reconstruction,
        "kl": kl,
        "negative_elbo": vae.negative_elbo,
        **terms,
        "kl_per_latent": kl_latents,
    }


# --- encoder, decoder and discriminator, built from the layer spec without mutating it


def build_encoder(
    image_shape, conv_layers, dense_layers, latent_size, activation, dtype=None
):
    """Convs then dense layers, then *linear* μ and log σ² heads (the original
    passed them through leaky ReLU, which forbids negative means). `dtype`: the
    hidden layers' Keras dtype policy, e.g. "mixed_float16"; the heads stay
    float32 so that the KL (exp of log σ²) is computed in float32."""
    images = keras.Input(image_shape, name="images")  # (B, S, S, C)
    x = images
    for i, (filters, kernel, stride) in enumerate(conv_layers):
        x = keras.layers.Conv2D(
            filters, kernel, stride, padding="same", activation=activation,
            name=f"conv{i}", dtype=dtype,
        )(x)  # fmt: skip
    x = keras.layers.Flatten(dtype=dtype)(x)  # (B, S/16 · S/16 · 32), default spec
    for i, (units,) in enumerate(dense_layers):
        x = keras.layers.Dense(
            units, activation=activation, name=f"dense{i}", dtype=dtype
        )(x)
    z_mean = keras.layers.Dense(latent_size, name="z_mean", dtype="float32")(x)
    z_log_var = keras.layers.Dense(latent_size, name="z_log_var", dtype="float32")(x)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(
    image_shape, conv_layers, dense_layers, latent_size, activation, dtype=None
):
    """The mirror image of the encoder that `conv_layers` and `dense_layers` spell
    (the run's encoder, unless decoder_spec says otherwise): dense layers reversed,
    a dense layer to the last conv's S/stride² · filters, then transposed convs in
    reverse order, each giving the channel count its encoder twin received, so the
    last one gives the image's channels. Outputs float32 logits (B, S, S, C)."""
    size, channels = image_shape[0], image_shape[-1]
    for _, _, stride in conv_layers:
        size //= stride
    in_channels = [channels] + [filters for filters, _, _ in conv_layers[:-1]]
    z = keras.Input((latent_size,), name="z")  # (B, L)
    x = z
    for i, (units,) in enumerate(reversed(dense_layers)):
        x = keras.layers.Dense(
            units, activation=activation, name=f"dense{i}", dtype=dtype
        )(x)
    last_filters = conv_layers[-1][0]
    x = keras.layers.Dense(
        size * size * last_filters, activation=activation, name="to_conv", dtype=dtype
    )(x)
    # dtype: a float32 layer here would cast the 16-bit activations up and back.
    x = keras.layers.Reshape((size, size, last_filters), dtype=dtype)(x)
    mirrored = list(zip(reversed(conv_layers), reversed(in_channels), strict=True))
    for i, ((_, kernel, stride), filters) in enumerate(mirrored):
        last = i == len(mirrored) - 1
        x = keras.layers.Conv2DTranspose(
            filters, kernel, stride, padding="same",
            activation=None if last else activation, name=f"deconv{i}", dtype=dtype,
        )(x)  # fmt: skip
    # The losses are summed over thousands of pixels: in float32 whatever the policy.
    x = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(z, x, name="decoder")  # (B, S, S, C) logits


def build_discriminator(latent_size):
    """FactorVAE's D: z (B, L) → 2 logits (q(z) vs ∏ q(z_l)). float32 whatever the
    VAE's precision: it is small, and its loss needs no scaling then."""
    z = keras.Input((latent_size,), name="z")
    x = z
    for i, units in enumerate(DISCRIMINATOR_LAYERS):
        x = keras.layers.Dense(units, activation="leaky_relu", name=f"dense{i}")(x)
    logits = keras.layers.Dense(2, name="logits")(x)
    return keras.Model(z, logits, name="discriminator")  # (B, 2)


# --- the model and its optimizers


class BetaVAE(keras.Model):
    """Encoder q(z|x), reparameterised sample, decoder p(x|z) as logits; and
    FactorVAE's discriminator when `discriminator`."""

    def __init__(
        self,
        image_shape,
        conv_layers,
        dense_layers,
        latent_size,
        activation="leaky_relu",
        precision="float32",
        discriminator=False,
        decoder_layers=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.latent_size = latent_size
        # decoder_layers: (convs, dense layers) whose mirror the decoder is; None:
        # the encoder's own.
        decoder_conv, decoder_dense = decoder_layers or (conv_layers, dense_layers)
        # Mixed precision (Micikevicius et al. 2018): the hidden layers compute in
        # 16 bits on float32 variables; the heads, logits and losses stay float32.
        policy = None if precision == "float32" else precision
        self.encoder = build_encoder(
            image_shape, conv_layers, dense_layers, latent_size, activation, policy
        )
        self.decoder = build_decoder(
            image_shape, decoder_conv, decoder_dense, latent_size, activation, policy
        )
        self.discriminator = build_discriminator(latent_size) if discriminator else None

    @property
    def vae_variables(self):
        """What the VAE's optimizer trains: not the discriminator."""
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    def call(self, images, training=False, epsilon=None):
        """→ (logits, z, z_mean, z_log_var). `epsilon` (B, L): the standard-normal
        noise of the sample, given by the caller so that it can be a function of
        the step (reproducible resumes)."""
        z_mean, z_log_var = self.encoder(images, training=training)
        if epsilon is None:
            epsilon = tf.random.normal(tf.shape(z_mean))
        # Reparameterisation trick (Kingma & Welling 2014): z = μ + σ·ε.
        z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
        return self.decoder(z, training=training), z, z_mean, z_log_var

    def posterior(self, images):
        """→ (z_mean, KL per latent in nats), both (B, L), in inference mode: what
        the pictures and the analysis rank latents by."""
        z_mean, z_log_var = self.encoder(images, training=False)
        return z_mean, kl_per_latent(z_mean, z_log_var)

    def decode(self, z):
        """Images in [0, 1] from latents (B, L)."""
        return tf.sigmoid(self.decoder(z, training=False))


def decoder_spec(p):
    """(convs, dense layers) whose mirror the decoder is: decoder_conv_layers and
    decoder_dense_layers, each None for the encoder's (params.py)."""
    conv = p.get("decoder_conv_layers")
    dense = p.get("decoder_dense_layers")
    return (
        p["conv_layers"] if conv is None else conv,
        p["dense_layers"] if dense is None else dense,
    )


def _network_size(conv_layers, dense_layers, image_shape, outputs):
    """(weights, activations per image) of convs then dense layers ending in
    `outputs` units; a decoder, its mirror, has the same counts."""
    size, channels = image_shape[0], image_shape[-1]
    activations, weights = size * size * channels, 0
    for filters, kernel, stride in conv_layers:
        weights += kernel * kernel * channels * filters
        size, channels = -(-size // stride), filters  # 'same' padding
        activations += size * size * filters
    dense = [size * size * channels, *(u for (u,) in dense_layers), outputs]
    weights += sum(a * b for a, b in pairwise(dense))
    return weights, activations + sum(dense)


def training_bytes(p, image_shape):
    """Rough peak memory of training this model, in bytes, from its parameters
    alone (no TensorFlow). A guide within a factor of 2 or so, to refuse absurd
    settings before any work."""
    return sum(training_bytes_by_part(p, image_shape).values())


def training_bytes_by_part(p, image_shape):
    """{"weights": the weights with their gradients and Adam's two moments,
    "activations": every layer's activations for the batch, kept for the backward
    pass with their gradients}, in bytes, in the encoder and the decoder."""
    latents = p["latent_size"]
    encoder = _network_size(
        p["conv_layers"], p["dense_layers"], image_shape, 2 * latents
    )
    decoder = _network_size(*decoder_spec(p), image_shape, latents)
    weights, activations = encoder[0] + decoder[0], encoder[1] + decoder[1] + latents
    if objective_of(p).discriminator:
        layers = [latents, *DISCRIMINATOR_LAYERS, 2]
        weights += sum(a * b for a, b in pairwise(layers))
        activations += 2 * sum(layers)  # q(z) and permuted samples
    # float32: 4 bytes each
    return {
        "weights": 4 * 4 * weights,
        "activations": 4 * 2 * p["batch_size"] * activations,
    }


def build_model(p, image_shape, training=True):
    """The run's model; FactorVAE's discriminator only to train (evaluate, analyze
    and export need the VAE alone)."""
    return BetaVAE(
        image_shape, p["conv_layers"], p["dense_layers"], p["latent_size"],
        p["activation"], p["precision"],
        discriminator=training and objective_of(p).discriminator,
        decoder_layers=decoder_spec(p),
    )  # fmt: skip


def build_optimizers(p, model):
    """The VAE's Adam, and the discriminator's own (None without one), built for
    their variables so that a checkpoint restores their state."""
    optimizer = keras.optimizers.Adam(
        p["learning_rate"], beta_1=p["adam_beta_1"], beta_2=p["adam_beta_2"],
        epsilon=p["adam_epsilon"],
    )  # fmt: skip
    if p["precision"] == "mixed_float16":
        # float16 gradients underflow below 6e-8: scale the loss up and the
        # gradients back down, dynamically (Micikevicius et al. 2018). bfloat16
        # has float32's range and needs no scaling.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.vae_variables)
    if model.discriminator is None:
        return optimizer, None
    discriminator_optimizer = keras.optimizers.Adam(**DISCRIMINATOR_ADAM)
    discriminator_optimizer.build(model.discriminator.trainable_variables)
    return optimizer, discriminator_optimizer
