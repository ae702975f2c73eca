"""The ground-truth dataset interface (after disentanglement_lib's
`GroundTruthData`, Locatello et al. ICML 2019, data/ground_truth/ground_truth_data.py).

A ground-truth dataset holds one image per combination of discrete factor values,
indexed in row-major order over `factor_sizes` (the last factor varies fastest), as
dSprites' official file is. Factors with one value (dSprites' colour) are part of
the index but are not scored: `scored_factors` are the others.

Sampling follows disentanglement_lib draw for draw: with the same
`np.random.RandomState`, `sample_factors(n, rs)` returns the factors its
`sample_factors` would (one `rs.randint(size, size=n)` per scored factor, in order),
so a metric driven by the same seed sees the same points as the reference code.
"""

import numpy as np


class NoGroundTruth(Exception):
    """The dataset has no ground-truth factors (CelebA, a folder of images)."""


class GroundTruthData:
    """Subclasses set `name`, `factor_names`, `factor_sizes`, `image_shape`, `splits`
    and implement `read(indices) -> (n, H, W, C) uint8`."""

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int]
    splits: dict[str, np.ndarray]
    has_factors = True

    def read(self, indices) -> np.ndarray:
        raise NotImplementedError

    @property
    def num_images(self) -> int:
        return int(np.prod(self.factor_sizes))

    @property
    def scored_factors(self) -> np.ndarray:
        """Positions (in factor_names) of the factors a metric scores: every factor
        with more than one value (disentanglement_lib's `latent_factor_indices`)."""
        return np.flatnonzero(np.asarray(self.factor_sizes) > 1)

    @property
    def scored_names(self) -> list[str]:
        return [self.factor_names[i] for i in self.scored_factors]

    @property
    def scored_sizes(self) -> list[int]:
        return [int(self.factor_sizes[i]) for i in self.scored_factors]

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """(n, K) classes of the K scored factors, uniform and independent, drawn in
        disentanglement_lib's order."""
        factors = np.zeros((n, len(self.scored_factors)), dtype=np.int64)
        for column, size in enumerate(self.scored_sizes):
            factors[:, column] = random_state.randint(size, size=n)
        return factors

    def index_of(self, scored_classes: np.ndarray) -> np.ndarray:
        """(n, K) scored-factor classes → (n,) image indices (unscored factors at 0)."""
        scored_classes = np.asarray(scored_classes, dtype=np.int64)
        full = np.zeros((len(scored_classes), len(self.factor_sizes)), dtype=np.int64)
        full[:, self.scored_factors] = scored_classes
        return np.ravel_multi_index(tuple(full.T), self.factor_sizes).astype(np.int64)

    def classes_of(self, indices: np.ndarray) -> np.ndarray:
        """(n,) image indices → (n, F) classes of every factor."""
        classes = np.unravel_index(np.asarray(indices), self.factor_sizes)
        return np.stack(classes, axis=-1).astype(np.int64)

    def describe(self) -> dict:
        """What metrics.json records about the data a number was measured on."""
        return {
            "name": self.name,
            "factors": dict(
                zip(self.factor_names, map(int, self.factor_sizes), strict=True)
            ),
            "scored": self.scored_names,
            "source": getattr(self, "source", "unknown"),
            "version": getattr(self, "version", None),
        }


def seeded_splits(num_images: int, num_holdout: int, seed: int = 0) -> dict:
    """dSprites' kind of splits: one permutation seeded `seed` (not the training
    seed, so every run holds out the same images); its first `num_holdout` indices
    validate, the next `num_holdout` test, the rest train; each sorted."""
    order = np.random.default_rng(seed).permutation(num_images)
    return {
        "train": np.sort(order[2 * num_holdout :]),
        "validation": np.sort(order[:num_holdout]),
        "test": np.sort(order[num_holdout : 2 * num_holdout]),
    }


def require_factors(source) -> GroundTruthData:
    """`source` if it has ground-truth factors, else NoGroundTruth naming the fix."""
    if not getattr(source, "has_factors", False):
        raise NoGroundTruth(
            f"the dataset {getattr(source, 'name', source)!r} has no ground-truth "
            "factors, so no supervised disentanglement metric can be computed on it: "
            "evaluate a run trained on a ground-truth dataset (dsprites and its "
            "variants, shapes3d, mpi3d, ...), or compare runs by UDR, which needs no "
            "labels (--mode=evaluate --run_name=a,b,c)"
        )
    return source
