"""The β-VAE: its losses and schedules, then the encoder/decoder, then the model.

Shapes use B for the batch, L for `latent_size`, S for `image_size`, C for channels.
"""

from dataclasses import dataclass, fields

import keras
import tensorflow as tf

# --- losses: each returns one value per example; the caller averages over the batch

RECONSTRUCTION_LOSSES = ("squared_error", "bernoulli", "absolute_error")


def reconstruction_loss(images, logits, kind):
    """Summed over pixels and channels, so that the papers' β, γ and C keep their
    meaning (Higgins et al. 2017; Burgess et al. 2018). `logits` are the decoder's
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
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent = ½(σ² + μ² − 1 − log σ²), in nats. (B, L)."""
    return 0.5 * (tf.exp(z_log_var) + tf.square(z_mean) - 1.0 - z_log_var)


# --- schedules: pure functions of the training step, so a resumed run continues them

BETA_SCHEDULES = ("constant", "warmup", "decrease")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OBJECTIVES = ("beta", "capacity")


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


def objective(reconstruction, kl, step, cfg):
    """Per-example loss and the schedule value (β or C) at `step`.

    β-VAE (Higgins et al. 2017):   reconstruction + β(step)·KL
    capacity (Burgess et al. 2018): reconstruction + γ·|KL − C(step)|
    `cfg` holds the plain schedule settings (see `ObjectiveSettings`)."""
    if cfg.objective == "capacity":
        capacity = capacity_at(step, cfg.capacity_max, cfg.capacity_steps)
        return reconstruction + cfg.gamma * tf.abs(kl - capacity), capacity
    beta = beta_at(step, cfg.beta_schedule, cfg.beta, cfg.beta_start, cfg.beta_steps)
    return reconstruction + beta * kl, beta


@dataclass(frozen=True)
class ObjectiveSettings:
    """The plain numbers `objective` needs; field names match params.py."""

    objective: str = "beta"
    beta: float = 1.0
    beta_schedule: str = "constant"
    beta_start: float = 1.0
    beta_steps: int = 1
    gamma: float = 1000.0
    capacity_max: float = 25.0
    capacity_steps: int = 100_000
    reconstruction_loss: str = "squared_error"

    @classmethod
    def of(cls, values):
        """The settings among a larger dict of parameters."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})

    @property
    def schedule_name(self):
        """Log column of the scheduled value: "beta" or "capacity"."""
        return "capacity" if self.objective == "capacity" else "beta"


# --- encoder and decoder, built from the layer spec without mutating it


def check_image_size(image_size, conv_layers):
    """The decoder mirrors the encoder's strides, so it can only produce sizes that
    the strides divide exactly. Returns an error message or None."""
    total_stride = 1
    for _, _, stride in conv_layers:
        total_stride *= stride
    if image_size % total_stride:
        return (
            f"image_size {image_size} is not divisible by {total_stride}, the "
            f"product of the conv strides in conv_layers {conv_layers}; the "
            f"decoder could not mirror it. Use a multiple of {total_stride} "
            f"(e.g. 32, 64, 128) or change conv_layers."
        )
    return None


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
            filters,
            kernel,
            stride,
            padding="same",
            activation=activation,
            name=f"conv{i}",
            dtype=dtype,
        )(x)
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
    """The encoder's mirror image: dense layers reversed, then transposed convs in
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
            filters,
            kernel,
            stride,
            padding="same",
            activation=None if last else activation,
            name=f"deconv{i}",
            dtype=dtype,
        )(x)
    # The losses are summed over thousands of pixels: in float32 whatever the policy.
    x = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(z, x, name="decoder")  # (B, S, S, C) logits


# --- the model


class BetaVAE(keras.Model):
    """Encoder q(z|x), reparameterised sample, decoder p(x|z) as logits."""

    def __init__(
        self,
        image_shape,
        conv_layers,
        dense_layers,
        latent_size,
        activation="leaky_relu",
        precision="float32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.latent_size = latent_size
        layers = (image_shape, conv_layers, dense_layers, latent_size, activation)
        # Mixed precision (Micikevicius et al. 2018): the hidden layers compute in
        # 16 bits on float32 variables; the heads, logits and losses stay float32.
        policy = None if precision == "float32" else precision
        self.encoder = build_encoder(*layers, dtype=policy)
        self.decoder = build_decoder(*layers, dtype=policy)

    def call(self, images, training=False, epsilon=None):
        """`epsilon` (B, L): the standard-normal noise of the sample, given by the
        caller so that it can be a function of the step (reproducible resumes)."""
        z_mean, z_log_var = self.encoder(images, training=training)
        if epsilon is None:
            epsilon = tf.random.normal(tf.shape(z_mean))
        # Reparameterisation trick (Kingma & Welling 2014): z = μ + σ·ε.
        z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
        return self.decoder(z, training=training), z_mean, z_log_var

    def decode(self, z):
        """Images in [0, 1] from latents (B, L)."""
        return tf.sigmoid(self.decoder(z, training=False))


def compute_losses(model, images, step, cfg, epsilon=None):
    """Everything the train and validation steps log, per example: (B,) values and
    the (B, L) KL per latent; the scheduled β or C is a scalar."""
    logits, z_mean, z_log_var = model(images, training=True, epsilon=epsilon)
    reconstruction = reconstruction_loss(images, logits, cfg.reconstruction_loss)
    kl_latents = kl_per_latent(z_mean, z_log_var)  # (B, L)
    kl = tf.reduce_sum(kl_latents, axis=1)  # (B,)
    loss, schedule_value = objective(reconstruction, kl, step, cfg)
    return {
        "loss": loss,
        "reconstruction_loss": reconstruction,
        "kl": kl,
        "kl_per_latent": kl_latents,
        cfg.schedule_name: schedule_value,
    }
