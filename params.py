# Hyperparameters of a run, in pipeline order. Edit them here, or override any one
# on the command line: `python main.py --beta=4 --dataset=dsprites`.
# `python main.py --help` lists them all. None means "the dataset's default",
# given in `dataset_defaults` at the bottom. One name per line, with its comment;
# a long comment continues on the lines above its name.

# --- run
# None: named from the parameters, never reusing a name; an existing name resumes that run
run_name = None  # folder under predictions/
mode = "train"  # train | evaluate (disentanglement metrics) | analyze (what each latent does) | compare (runs side by side) | export (.keras and SavedModel)
seed = 0  # seeds weights, sampling and data order: the same seed gives the same run
predictions_dir = "predictions"  # where run folders go; relative to this repo unless absolute
# A named configuration from the literature; the command line still beats it (--help lists
# what each sets). locatello: disentanglement_lib's unsupervised_study_v1 model and
# training; locatello_grid: that, and its six values of the objective's parameter, swept
preset = None
# A sweep (--beta=1,4,16): runs trained at once, each in its own process on its share of
# the cores, or on a GPU of its own; the same command again resumes a stopped sweep
jobs = 1
print_commands = False  # a sweep: print one command per run (for a cluster's scheduler), train none

# --- data
dataset = "celeba"  # celeba | folder | dsprites | color_dsprites | …: README's dataset table
data_dir = "data"  # where the dataset lives; relative to this repo unless absolute
image_size = None  # pixels per side; divisible by the product of the conv strides
crop_size = 128  # CelebA: centre crop of the aligned 178×218 image, as the original
# Ground-truth data: correlate two factors in the training images only (Träuble et al. 2021)
factor_correlation = None  # [factor_a, factor_b, σ], e.g. ["x", "y", 0.2]: p(c_a, c_b) ∝ exp(−(ĉ_a − ĉ_b)²/2σ²), ĉ = class/(size − 1) ∈ [0, 1]; validation, test, metrics stay uncorrelated
# Ground-truth data: combinations left out of the train split, scored apart (Montero et al. 2021)
holdout = None  # {factor: [classes]}, e.g. {"x": [0, 1, 2], "y": [0, 1, 2]}: every image whose factors all fall in these sets

# --- model (Burgess et al. 2018 architecture; the original's default spec)
# [filters, kernel, stride], 'same' padding; the decoder mirrors them
conv_layers = [[32, 4, 2]] * 4  # encoder convs
dense_layers = [[256], [256]]  # encoder dense layers after the convs, as [units]; mirrored
# A decoder that is not the encoder's mirror: the convs and dense layers whose mirror it
# is, in the encoder's order (e.g. the preset locatello's: kernels 4 where its encoder has 2)
decoder_conv_layers = None  # [filters, kernel, stride] as conv_layers; None: conv_layers
decoder_dense_layers = None  # [units] as dense_layers; None: dense_layers
latent_size = None  # number of latent dimensions
activation = "leaky_relu"  # hidden activation: leaky_relu (the original) | relu (Burgess et al.)

# --- objective: beta | capacity | tc | factor | dip1 | dip2 (README, "Objectives")
reconstruction_loss = None  # squared_error | bernoulli | absolute_error; summed over pixels
# beta: recon + β·KL (Higgins et al. 2017); capacity: recon + γ·|KL − C| (Burgess et al. 2018);
# tc: recon + KL + (β − 1)·TC (β-TCVAE, Chen et al. 2018); factor: recon + KL + γ·TC from a
# discriminator (FactorVAE, Kim & Mnih 2018); dip1, dip2: recon + KL + covariance penalties
# (DIP-VAE-I/II, Kumar et al. 2018)
objective = "beta"
beta = 1.0  # β of beta (the value a schedule reaches) and of tc (typical: 4 and 6 on dSprites)
beta_schedule = "constant"  # objective=beta: constant | warmup (0 → beta) | decrease (beta_start → beta)
beta_start = 100.0  # first β of the decrease schedule
beta_steps = 40_000  # steps the warmup or decrease schedule takes
gamma = 1000.0  # capacity: weight of |KL − C|
capacity_max = None  # capacity: final C in nats
capacity_steps = 100_000  # capacity: steps for C to rise linearly from 0 to capacity_max
factor_gamma = 35.0  # factor: weight of the discriminator's TC (the paper's 35 on dSprites)
lambda_od = 10.0  # dip1, dip2: weight of the off-diagonal covariance penalty (dlib: 1–50)
# None: disentanglement_lib's choice, 10·lambda_od for dip1 and lambda_od for dip2
lambda_d = None  # dip1, dip2: weight of the diagonal penalty

# --- optimisation
batch_size = 64  # global batch, split across devices when there are several
learning_rate = 5e-4  # Adam step size
adam_beta_1 = 0.5  # Adam's first-moment decay, as the original
adam_beta_2 = 0.999  # Adam's second-moment decay
adam_epsilon = 1e-7  # Adam's ε: Keras' default (TF1's, the original's and disentanglement_lib's: 1e-8)
num_steps = 100_000  # training steps; raise it and rerun the same run_name to train longer

# --- devices and speed (none changes what is learnt, except precision a little)
# auto: one device, or all local GPUs when several | mirrored: all local GPUs |
# multi_worker: the machines in TF_CONFIG
strategy = "auto"
# multi_worker: seconds to wait for every worker of TF_CONFIG to come up, then give up
cluster_timeout = 600
# Steps looped in the graph per call into TensorFlow: less Python per step (matters on a
# GPU); logs, validation, checkpoints and images still come at their exact steps
steps_per_call = 10
# XLA-compile the train step: auto (on with one GPU; off on CPU, where it is 2× slower,
# and with several devices) | on | off
jit_compile = "auto"
# float32 | mixed_float16 (GPUs with tensor cores; loss scaling) | mixed_bfloat16 (TPUs,
# recent CPUs): 16-bit compute, float32 weights and losses
precision = "float32"

# --- validation, checkpoints, logs and results
validation_step = 500  # steps between validations on the held-out split
validation_batches = 20  # batches per validation (batch_size images each)
# Stop after this many validations without a lower negative ELBO; 0: never stop early
early_stopping_patience = 20
checkpoint_step = 500  # steps between checkpoints of the latest state (a resume starts there)
plot_step = 1000  # steps between composite images and latent traversals
log_step = 1  # steps between rows of log.csv and TensorBoard scalars
metrics_at_end = True  # ground-truth datasets: compute the disentanglement metrics when training ends
# Ground-truth datasets: steps between the fast protocol's metrics during training (~30 s
# each on a CPU core), into metrics_during_training.csv, TensorBoard and loss_curves.png
metrics_step = 0  # 0: off; the end of the run still scores with metrics_protocol
# reference: disentanglement_lib's protocols (minutes on a CPU); fast: smaller samples and
# extra-trees DCI (~30 s), stored under names ending in _fast
metrics_protocol = "reference"
metrics_representation = "mean"  # what the metrics score: mean (encoder mean) | sampled (z ~ q(z|x))
checkpoint = "latest"  # which checkpoint evaluate, analyze and export read: latest | best

# --- per-dataset defaults, used for each value above that is None
_photographs = {  # CelebA, and any folder of images (Higgins et al. 2017's CelebA)
    "image_size": 64,
    "latent_size": 32,
    "reconstruction_loss": "squared_error",
    "capacity_max": 50.0,
}
_ground_truth = {  # Locatello et al. 2019: 10 latents, Bernoulli likelihood
    "image_size": 64,
    "latent_size": 10,
    "reconstruction_loss": "bernoulli",
    "capacity_max": 25.0,
}
dataset_defaults = {
    "celeba": _photographs,
    "folder": _photographs,
    **dict.fromkeys(
        ("dsprites", "color_dsprites", "noisy_dsprites", "scream_dsprites",
         "dsprites_noshape", "xy_object", "xy_squares", "shapes3d", "mpi3d_toy",
         "mpi3d_realistic", "mpi3d_real", "smallnorb", "cars3d"),
        _ground_truth,
    ),
}  # fmt: skip
