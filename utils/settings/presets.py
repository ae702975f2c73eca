"""Named configurations from the literature: `--preset=NAME` sets these values.

Precedence (README, "Parameters"): the command line beats a preset, a preset beats
params.py, and params.py's None still means the dataset's default. A preset that
names a grid sweeps it for the run's objective, unless the command line gives that
parameter: `--preset=locatello_grid --objective=tc --seed=0,1,2` is 18 runs.
"""

# disentanglement_lib's unsupervised_study_v1 (Locatello et al. 2019, "Challenging
# Common Assumptions in the Unsupervised Learning of Disentangled Representations"):
# model_configs/shared.gin and methods/shared/architectures.py.
LOCATELLO = {
    # conv_encoder: conv 32, 32, 64, 64 (kernels 4, 4, 2, 2; stride 2), dense 256.
    "conv_layers": [[32, 4, 2], [32, 4, 2], [64, 2, 2], [64, 2, 2]],
    "dense_layers": [[256]],
    # deconv_decoder: dense 256, dense 1024 = 4×4×64, transposed convs 64, 32, 32,
    # channels, all kernel 4, stride 2: the mirror of convs 32, 32, 64, 64 of
    # kernel 4, which is how this repo writes a decoder (params.py).
    "decoder_conv_layers": [[32, 4, 2], [32, 4, 2], [64, 4, 2], [64, 4, 2]],
    "decoder_dense_layers": [[256]],
    "activation": "relu",
    "image_size": 64,
    "latent_size": 10,
    "reconstruction_loss": "bernoulli",
    "batch_size": 64,
    "learning_rate": 1e-4,
    "adam_beta_1": 0.9,
    "adam_beta_2": 0.999,
    "adam_epsilon": 1e-8,
    "num_steps": 300_000,
    # AnnealedVAE: C rises over annealed_vae.iteration_threshold = 100,000 steps, γ
    # 1000; it trains the same 300,000 steps.
    "capacity_steps": 100_000,
    "gamma": 1000.0,
}
# sweep.py's get_default_models: six values per objective, each over 50 seeds there.
# DIP-VAE's λ_d follows from λ_od as there (lambda_d=None: 10·λ_od, λ_od).
LOCATELLO_GRIDS = {
    "beta": {"beta": (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)},
    "capacity": {"capacity_max": (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)},
    "factor": {"factor_gamma": (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)},
    "dip1": {"lambda_od": (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)},
    "dip2": {"lambda_od": (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)},
    "tc": {"beta": (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)},
}

PRESETS = {"locatello": LOCATELLO, "locatello_grid": LOCATELLO}
GRIDS = {"locatello_grid": LOCATELLO_GRIDS}
DESCRIPTIONS = {
    "locatello": "disentanglement_lib's unsupervised_study_v1 model and training",
    "locatello_grid": "locatello, and its six values of the objective's parameter "
    "swept",
}


def grid_of(preset, objective) -> dict[str, tuple]:
    """The sweep a preset adds for `objective`: {name: values}, or {}."""
    return dict(GRIDS.get(preset, {}).get(objective, {}))
