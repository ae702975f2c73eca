"""What a metric module declares, and the sampling every metric shares.

Each metric is one module holding `METRIC = Metric(...)`: its name, paper, the keys
it writes into metrics.json, the settings of its two protocols and how many steps
its progress bar takes. `reference` follows disentanglement_lib (Locatello et al.,
ICML 2019; its `config/unsupervised_study_v1/metric_configs/`), or for a metric it
lacks (InfoMEC) the authors' own code, so that a number
stored under the metric's name means what that name means in a paper; `fast` is a
smaller variant whose numbers are stored under names ending in `_fast`.

Metric modules import scikit-learn inside their functions: the registry is read
by `--mode=compare` and `--help`, which must start in a fraction of a second.

`compute(ds, represent, settings, random_state, progress) -> details` takes a
ground-truth dataset (utils/data/ground_truth.py), `represent(indices) -> (n, d)`
codes of those images, a dict of settings, a fresh `np.random.RandomState(seed)`
(disentanglement_lib seeds each metric's evaluation alike) and a tqdm bar.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Represent = Callable[[np.ndarray], np.ndarray]
FACTOR_CODE_BATCH = 16  # disentanglement_lib's generate_batch_factor_code batch size
CHUNK_IMAGES = 8192  # images per represent() call: bounds memory, moves the bar


@dataclass(frozen=True)
class Metric:
    name: str  # module and results name
    title: str  # for tables, bars and the compare page
    paper: str
    headlines: dict  # key in metrics.json -> key in the details compute returns
    reference: dict  # disentanglement_lib's settings (or the metric's authors')
    fast: dict  # a smaller variant's
    compute: Callable
    progress_total: Callable  # (settings, num_factors) -> steps of the bar
    # Only with ground-truth factors; UDR (a group of runs) is computed elsewhere.
    needs_factors: bool = True
    notes: dict = field(default_factory=dict)  # estimator variants, for provenance

    def settings(self, protocol: str) -> dict:
        return dict(self.reference if protocol == "reference" else self.fast)


def suffix(protocol: str) -> str:
    """What a protocol's numbers are stored under: `mig`, `mig_fast`."""
    return "" if protocol == "reference" else f"_{protocol}"


def codes_of(represent: Represent, indices: np.ndarray) -> np.ndarray:
    return np.asarray(represent(np.asarray(indices)), dtype=np.float64)


def factor_codes(ds, represent, num_points, random_state, progress=None,
                 batch_size=FACTOR_CODE_BATCH):  # fmt: skip
    """disentanglement_lib's `generate_batch_factor_code`, draw for draw: batches of
    16 points, each batch's factors drawn factor by factor. Returns codes (n, d)
    and the scored factors' classes (n, K), one row per point."""
    factors = []
    for start in range(0, num_points, batch_size):
        size = min(batch_size, num_points - start)
        factors.append(ds.sample_factors(size, random_state))
    factors = np.concatenate(factors)
    indices = ds.index_of(factors)
    codes = []
    for start in range(0, num_points, CHUNK_IMAGES):
        codes.append(codes_of(represent, indices[start : start + CHUNK_IMAGES]))
        if progress is not None:
            progress.update(len(codes[-1]))
    return np.concatenate(codes), factors


def histogram_discretize(codes: np.ndarray, bins: int) -> np.ndarray:
    """Per code dimension (column), equal-width bins over its observed range:
    disentanglement_lib's `_histogram_discretize`."""
    return np.stack(
        [np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T], axis=1
    )


def discrete_mutual_info(binned: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(d, K) mutual information in nats between each binned code dimension and
    each factor, from samples (scikit-learn's plug-in estimate, as dlib)."""
    from sklearn.metrics import mutual_info_score

    return np.array(
        [[mutual_info_score(f, c) for f in factors.T] for c in binned.T]
    ).reshape(binned.shape[1], factors.shape[1])


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """(K,) entropy in nats of each factor column, from samples."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(f, f) for f in factors.T])
