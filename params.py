# Hyperparameters of a run, in pipeline order. Edit them here, or override any one
# on the command line: `python main.py --beta=4 --dataset=dsprites`.
# `python main.py --help` lists them all. None means "the dataset's default",
# given in `dataset_defaults` at the bottom.

# --- run
run_name = None  # folder under predictions/; None: named from the parameters, never reusing one; an existing name resumes that run
mode = "train"  # train | evaluate (disentanglement metrics, dSprites) | analyze (what each latent does) | compare (runs side by side)
seed = 0  # seeds weights, sampling and data order: the same seed gives the same run
predictions_dir = "predictions"  # where run folders are written, relative to this repo unless absolute

# --- data
dataset = "celeba"  # celeba | dsprites (dsprites needs no download: it is generated when absent)
data_dir = "data"  # where the dataset lives, relative to this repo unless absolute
image_size = (
    None  # pixels per side; must be divisible by the product of the conv strides
)
crop_size = 128  # CelebA: centre crop of the aligned 178×218 image before resizing, as the original

# --- model (Burgess et al. 2018 architecture; the original's default spec)
conv_layers = (
    [[32, 4, 2]] * 4
)  # encoder convs as [filters, kernel, stride], 'same' padding; the decoder mirrors them
dense_layers = [
    [256],
    [256],
]  # encoder dense layers after the convs, as [units]; mirrored in the decoder
latent_size = None  # number of latent dimensions
activation = (
    "leaky_relu"  # hidden activation: leaky_relu (the original) | relu (Burgess et al.)
)

# --- objective
reconstruction_loss = None  # squared_error | bernoulli | absolute_error; summed over pixels, averaged over the batch
objective = "beta"  # beta: recon + β·KL (Higgins et al. 2017) | capacity: recon + γ·|KL − C| (Burgess et al. 2018)
beta = 1.0  # β weighting the KL term; with a schedule, the value it reaches
beta_schedule = "constant"  # constant | warmup (0 → beta over beta_steps) | decrease (beta_start → beta over beta_steps)
beta_start = 100.0  # first β of the decrease schedule
beta_steps = 40_000  # steps the warmup or decrease schedule takes
gamma = 1000.0  # capacity objective: weight of |KL − C|
capacity_max = None  # capacity objective: final C in nats
capacity_steps = (
    100_000  # capacity objective: steps for C to rise linearly from 0 to capacity_max
)

# --- optimisation
batch_size = 64  # global batch, split across devices when there are several
learning_rate = 5e-4  # Adam step size
adam_beta_1 = 0.5  # Adam's first-moment decay, as the original
num_steps = 100_000  # training steps in total; raise it and rerun the same run_name to train longer

# --- devices and speed (none changes what is learnt, except precision a little)
strategy = "auto"  # auto: one device, or all local GPUs when several | mirrored: all local GPUs | multi_worker: the machines in TF_CONFIG
steps_per_call = 10  # train steps per call into TensorFlow, looped in the graph: less Python per step (matters on a GPU); logs, validation, checkpoints and images still come at their exact steps
jit_compile = "auto"  # XLA-compile the train step: auto (on with one GPU; off on CPU, where it is 2× slower, and with several devices) | on | off
precision = "float32"  # float32 | mixed_float16 (GPUs with tensor cores; loss scaling) | mixed_bfloat16 (TPUs, recent CPUs): 16-bit compute, float32 weights and losses

# --- validation, checkpoints and logs
validation_step = 500  # steps between validation losses on the held-out split
validation_batches = 20  # batches per validation (batch_size images each)
early_stopping_patience = (
    20  # stop after this many validations without improvement; 0 never stops
)
checkpoint_step = (
    500  # steps between checkpoints of the latest state (resume starts from the last)
)
metrics_at_end = True  # dSprites: compute the disentanglement metrics when training ends
plot_step = 1000  # steps between composite images and latent traversals
log_step = 1  # steps between rows of log.csv and TensorBoard scalars

# --- per-dataset defaults, used for each value above that is None
dataset_defaults = {
    "celeba": {
        "image_size": 64,
        "latent_size": 32,
        "reconstruction_loss": "squared_error",
        "capacity_max": 50.0,
    },
    "dsprites": {
        "image_size": 64,
        "latent_size": 10,
        "reconstruction_loss": "bernoulli",
        "capacity_max": 25.0,
    },
}
