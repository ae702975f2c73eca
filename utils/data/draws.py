"""Per-image random draws that are a pure function of (dataset seed, image index),
for the generated datasets' nuisances (colour, noise, background crop) and
smallNORB's instance, and painting images a piece at a time.

disentanglement_lib samples an image's nuisance from the metric's `random_state`
each time the image is read, so the same factors give another image on every read.
Here it is fixed per image: draw `j` of image `i` is output number `i · stride + j`
of SplitMix64 (Steele, Lea & Flood 2014, the generator that seeds xoshiro; it
passes BigCrush) started at the dataset's seed. That output can be computed
directly from its number, with no state, so a batch is one vectorised hash of its
counters: every metric, resume, process and batching sees the same pixels for an
index, and the seed (a constant of each dataset, not the training seed) is
recorded in the dataset's `version`.
"""

import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment (2^64 / golden ratio)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed: int, counters) -> np.ndarray:
    """Outputs number `counters` (0 = the first) of SplitMix64 seeded with `seed`,
    as uint64, the shape of `counters`."""
    counters = np.asarray(counters, dtype=np.uint64)
    z = (counters + np.uint64(1)) * GAMMA + np.uint64(seed)
    return mix(z, np.empty_like(z))


def mix(z: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on states `z` (uint64), in place; `scratch` is
    an array of z's shape it may overwrite. Returns z."""
    for shift, multiplier in ((30, MIX_1), (27, MIX_2), (31, None)):
        np.right_shift(z, np.uint64(shift), out=scratch)
        np.bitwise_xor(z, scratch, out=z)
        if multiplier is not None:
            np.multiply(z, multiplier, out=z)
    return z


def first_states(seed: int, indices, stride: int) -> np.ndarray:
    """(n,) uint64: the SplitMix64 state of each image's first draw (output number
    index · stride); its draw j has state first + j · GAMMA."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and indices.min() < 0:
        raise IndexError(f"negative image index {int(indices.min())}")
    counters = indices.astype(np.uint64) * np.uint64(stride) + np.uint64(1)
    return counters * GAMMA + np.uint64(seed)


def of_images(seed: int, indices, stride: int, count: int | None = None) -> np.ndarray:
    """(n, count) uint64: the first `count` (default `stride`) of the `stride`
    outputs that belong to each image index."""
    count = stride if count is None else count
    steps = np.arange(count, dtype=np.uint64) * GAMMA
    z = first_states(seed, indices, stride)[:, None] + steps
    return mix(z, np.empty_like(z))


def uniform(bits: np.ndarray) -> np.ndarray:
    """uint64 outputs → float64 uniform in [0, 1), from their top 53 bits."""
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def below(bits: np.ndarray, bound: int) -> np.ndarray:
    """uint64 outputs → int64 uniform in [0, bound) (floor of bound · uniform)."""
    return np.floor(uniform(bits) * bound).astype(np.int64)


def in_pieces(paint, indices, image_shape, size: int = 256) -> np.ndarray:
    """(n, *image_shape) uint8 images, `paint(indices, out)` writing `size` of them
    at a time: a piece's temporaries stay in cache, several times faster than one
    pass over a batch of thousands."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    images = np.empty((len(indices), *image_shape), np.uint8)
    for start in range(0, len(indices), size):
        paint(indices[start : start + size], images[start : start + size])
    return images
