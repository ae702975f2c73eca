"""Factor structure as an experiment axis: which training images a ground-truth
dataset gives. Pure NumPy. train.py hands `training_indices` to the pipeline in
place of the train split: an array fixed before the first step and rebuilt alike
on a resume, so the data order stays a pure function of the step.

- factor_correlation [a, b, σ] (Träuble et al., ICML 2021, "On Disentangled
  Representations Learned from Correlated Data"; Roth et al., ICLR 2023,
  "Disentanglement of Correlated Factors via Hausdorff Factorized Support"):
  training pairs follow
  p(c_a, c_b) ∝ exp(−(ĉ_a − ĉ_b)² / (2σ²)), with Träuble et al.'s normalised
  factors ĉ = class / (size − 1) in [0, 1]; every other factor stays uniform and
  independent. Small σ: strongly correlated; σ → ∞: uniform.
- holdout {factor: [classes]} (Montero et al., ICLR 2021, "The role of
  Disentanglement in Generalisation"): an image whose factors ALL fall in the given
  sets is a held-out combination, removed from the train split; the run's end
  scores those images apart (utils/outputs/metrics_file.py).

Only training changes. Validation, the test images, the step images and the
metrics read the dataset's own splits: uncorrelated, and the validation and test
splits keep the held-out combinations.
"""

import math

import numpy as np

# The resampled array is drawn from the run's seed (params.py: the seed seeds the
# data order), mixed with this salt so that it is not the stream of another use of
# the same seed: runs of several seeds average over the draw of the data too.
CORRELATION_SALT = 0xC022_E1A7
HOLDOUT_SAMPLE = 2048  # held-out (and in-distribution test) images scored at the end
HOLDOUT_SEED = 1234  # of those samples: the same images in every run
EXAMPLES = "e.g. ['x', 'y', 0.2]", "e.g. {'x': [0, 1, 2], 'scale': [4]}"


# --- the parameters alone, before any work


def parameter_problems(correlation, holdout, dataset=None, has_factors=True):
    """Messages for a factor_correlation or holdout of the wrong shape or type,
    or asked of a dataset without ground-truth factors; empty when usable."""
    problems = _correlation_problems(correlation) + _holdout_problems(holdout)
    given = {"factor_correlation": correlation, "holdout": holdout}
    asked = [name for name, value in given.items() if value is not None]
    if asked and not has_factors:
        problems.append(
            f"{' and '.join(asked)} need ground-truth factors, which {dataset} does "
            "not have: use a ground-truth dataset (dsprites, xy_object, shapes3d, "
            f"...), or leave {' and '.join(f'--{n}=None' for n in asked)}"
        )
    return problems


def _is_whole(value):
    """A class index: a whole number ≥ 0 (not a bool)."""
    return (
        isinstance(value, int | np.integer)
        and not isinstance(value, bool)
        and (value >= 0)
    )


def _is_sigma(value):
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _correlation_problems(value):
    if value is None:
        return []
    if not (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(name, str) for name in value[:2])
        and _is_sigma(value[2])
    ):
        return [
            f"factor_correlation={value!r} must be [factor_a, factor_b, sigma]: two "
            f"factor names and a finite sigma > 0, {EXAMPLES[0]}"
        ]
    if value[0] == value[1]:
        return [
            f"factor_correlation={value!r} correlates {value[0]!r} with itself: "
            "name two different factors"
        ]
    return []


def _holdout_problems(value):
    if value is None:
        return []
    if not isinstance(value, dict) or not value:
        return [
            f"holdout={value!r} must be a non-empty dict {{factor name: [classes]}}, "
            f"{EXAMPLES[1]}"
        ]
    problems = []
    for name, classes in value.items():
        if not isinstance(name, str):
            problems.append(f"holdout key {name!r} must be a factor name (a string)")
        elif not (
            isinstance(classes, list | tuple)
            and classes
            and all(map(_is_whole, classes))
        ):
            problems.append(
                f"holdout[{name!r}]={classes!r} must be a non-empty list of class "
                f"indices (whole numbers ≥ 0), {EXAMPLES[1]}"
            )
        elif len(set(classes)) < len(classes):
            problems.append(f"holdout[{name!r}]={classes!r} lists a class twice")
    return problems


# --- the parameters against the loaded dataset, before the model is built


def dataset_problems(source, correlation, holdout):
    """Messages for factor names the dataset does not score, classes out of range,
    or a holdout that leaves no training (or no in-distribution test) image."""
    if correlation is None and holdout is None:
        return []
    if not getattr(source, "has_factors", False):  # main.py's --data_dir, say
        return parameter_problems(correlation, holdout, source.name, False)
    scored = dict(zip(source.scored_names, source.scored_sizes, strict=True))
    listed = ", ".join(f"{n} ({size} classes)" for n, size in scored.items())
    where = f"not a scored factor of {source.name} ({listed})"
    problems = [
        f"factor_correlation names {name!r}, {where}"
        for name in (correlation or [])[:2]
        if name not in scored
    ]
    for name, classes in (holdout or {}).items():
        if name not in scored:
            problems.append(f"holdout names {name!r}, {where}")
        elif any(c >= scored[name] for c in classes):
            bad = [c for c in classes if c >= scored[name]]
            problems.append(
                f"holdout[{name!r}] has classes {bad} out of range: {name} has "
                f"classes 0 … {scored[name] - 1}"
            )
    return problems or _empty_split_problems(source, holdout)


def _empty_split_problems(source, holdout):
    if not holdout:
        return []
    problems = []
    for split in ("train", "test"):
        indices = source.splits[split]
        if len(indices) and holdout_mask(source, indices, holdout).all():
            problems.append(
                f"holdout {describe_holdout(holdout)} removes every {split} image "
                f"({len(indices):,}): hold out fewer classes"
            )
    return problems


# --- what training reads


def pair_law(size_a, size_b, sigma):
    """(size_a, size_b) target p(c_a, c_b) ∝ exp(−(ĉ_a − ĉ_b)² / (2σ²)), ĉ = class /
    (size − 1), Träuble et al. 2021's normalised factors; sums to 1."""
    log_weight = _pair_log_weights(size_a, size_b, sigma)
    weight = np.exp(log_weight - log_weight.max())
    return (weight / weight.sum()).reshape(size_a, size_b)


def _pair_log_weights(size_a, size_b, sigma):
    """(size_a · size_b,) log-weights, c_b fastest: logs, since exp underflows to 0
    off the diagonal at a small σ."""
    gap = np.subtract.outer(
        np.arange(size_a) / (size_a - 1), np.arange(size_b) / (size_b - 1)
    )
    return (-(gap**2) / (2 * float(sigma) ** 2)).ravel()


def correlated_sample(source, indices, correlation, seed):
    """len(indices) images drawn from `indices` with replacement, seeded by the
    run's seed, sorted: the pair (c_a, c_b) follows `pair_law` exactly (over the
    pairs the indices hold) and, given the pair, the image is uniform among the
    indices with that pair, so the other factors stay as the split has them
    (uniform and independent)."""
    name_a, name_b, sigma = correlation
    a, b = (source.factor_names.index(name) for name in (name_a, name_b))
    size_a, size_b = source.factor_sizes[a], source.factor_sizes[b]
    classes = source.classes_of(indices)
    pair = classes[:, a] * size_b + classes[:, b]
    count = np.bincount(pair, minlength=size_a * size_b)  # the split's images a pair
    log_weight = _pair_log_weights(size_a, size_b, sigma)
    log_weight -= log_weight[count > 0].max()
    per_image = np.exp(log_weight[pair]) / count[pair]
    rng = np.random.default_rng([CORRELATION_SALT, seed])
    chosen = rng.choice(len(indices), size=len(indices), p=per_image / per_image.sum())
    return np.sort(np.asarray(indices)[chosen])


def holdout_mask(source, indices, holdout):
    """(n,) bool: whether each image is a held-out combination, every factor named
    in `holdout` taking one of its classes (Montero et al. 2021)."""
    classes = source.classes_of(np.asarray(indices))
    held = np.ones(len(classes), dtype=bool)
    for name, chosen in holdout.items():
        held &= np.isin(classes[:, source.factor_names.index(name)], list(chosen))
    return held


def training_indices(source, correlation=None, holdout=None, seed=0):
    """The image indices training permutes epoch by epoch: the train split without
    its held-out combinations, then resampled under the correlation. The train
    split itself when neither is asked (a run without them is unchanged)."""
    train = source.splits["train"]
    if holdout:
        train = train[~holdout_mask(source, train, holdout)]
    if correlation and len(train):
        train = correlated_sample(source, train, correlation, seed)
    return train


def training_summary(source, correlation, holdout, train):
    """One line for the terminal on what training reads (`train`, from
    training_indices), or None when it is the train split as it is."""
    if not (correlation or holdout):
        return None
    parts = []
    if holdout:
        removed = holdout_mask(source, source.splits["train"], holdout).sum()
        parts.append(
            f"{removed:,} images of held-out combinations ({describe_holdout(holdout)};"
            " Montero et al. 2021) left out"
        )
    if correlation:
        a, b, sigma = correlation
        parts.append(
            f"drawn with replacement with {a} and {b} correlated (σ = {sigma:g}; "
            "Träuble et al. 2021)"
        )
    return f"Training images: {len(train):,} of the train split, " + "; ".join(parts)


# --- the held-out combinations, scored apart at the end


def holdout_samples(source, holdout, count=HOLDOUT_SAMPLE, seed=HOLDOUT_SEED):
    """(held-out images, in-distribution test images, counts): fixed samples of up
    to `count` of the held-out combinations (from every split: none was trained
    on) and of the test split's other images, the same in every run."""
    splits = {name: np.asarray(indices) for name, indices in source.splits.items()}
    held = {name: holdout_mask(source, idx, holdout) for name, idx in splits.items()}
    every = np.unique(np.concatenate([splits[n][held[n]] for n in splits]))
    test = splits["test"][~held["test"]]
    counts = {
        "held_out_images": len(every),
        **{f"held_out_in_{name}": int(mask.sum()) for name, mask in held.items()},
        "in_distribution_test_images": len(test),
    }
    return _fixed_sample(every, count, seed), _fixed_sample(test, count, seed), counts


def _fixed_sample(indices, count, seed):
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(indices, size=min(count, len(indices)), replace=False))


def describe_holdout(holdout):
    """ "x ∈ {0–4}, scale ∈ {2, 4}": runs of consecutive classes as ranges."""
    return ", ".join(
        f"{name} ∈ {{{_ranges(sorted(classes))}}}" for name, classes in holdout.items()
    )


def _ranges(classes):
    runs, start = [], 0
    for i in range(1, len(classes) + 1):
        if i == len(classes) or classes[i] != classes[i - 1] + 1:
            first, last = classes[start], classes[i - 1]
            runs.append(f"{first}" if first == last else f"{first}–{last}")
            start = i
    return ", ".join(runs)
