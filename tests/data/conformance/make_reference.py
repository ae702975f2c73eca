"""Builds the conformance fixtures and disentanglement_lib's own values on them.

Run with a Python that has disentanglement_lib's dependencies at the repo's
numpy/scipy/scikit-learn versions (requirements.lock), NOT the repo's venv, and the
path of a disentanglement_lib checkout (its source is run, never copied here):

    python -m venv /work/ref/dlib-venv
    /work/ref/dlib-venv/bin/pip install numpy==2.4.6 scipy==1.17.1 \\
        scikit-learn==1.9.1 six absl-py gin-config==0.3.0
    taskset -c 1 /work/ref/dlib-venv/bin/python \\
        tests/data/conformance/make_reference.py /work/ref/dlib

It writes, next to itself, `codes.npz` (the toy grid's code tables, one per case)
and `reference_values.json` (every value each dlib `compute_*` returns, per case),
and `python tests/test_conformance.py` (the repo's venv) writes TABLE.md.

gin-config 0.3.0 (the release of dlib's time): 0.5.0 no longer accepts the
`blacklist=` dlib's configurables pass. TensorFlow is not needed: dlib's metric
modules only `import gin.tf` to register their configurables, so a stub module
stands in for it.
"""

import argparse
import hashlib
import inspect
import json
import platform
import sys
import time
import types
from importlib import metadata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DLIB_COMMIT = "86a644d4ed35c771560dc3360756363d35477357"  # 2020-08-27

# The toy ground truth: a constant first factor (as dSprites' colour), then four
# scored factors; 720 images indexed row-major like dSprites' file.
FACTOR_SIZES = (1, 3, 5, 6, 8)
CODE_DIM = 10
FIXTURE_SEED = 20200827

# Reduced sizes (dlib's are in GIN_FILES' numbers), the same on both sides.
SETTINGS = {
    "beta_vae": {"batch_size": 64, "num_train": 1000, "num_eval": 500},
    "factor_vae": {
        "batch_size": 64,
        "num_train": 1000,
        "num_eval": 500,
        "num_variance_estimate": 1000,
        "prune_threshold": 0.05,
    },
    "mig": {"num_train": 2000, "num_bins": 20},
    # Boosting is the slow part (about 10 s a case on one core at these sizes).
    "dci": {"num_train": 1000, "num_test": 500, "classifier": "gradient_boosting"},
    "sap": {"num_train": 2000, "num_test": 1000, "continuous_factors": False},
    "modularity_explicitness": {"num_train": 2000, "num_test": 1000, "num_bins": 20},
    "irs": {"num_train": 2000, "batch_size": 16, "num_bins": 20, "diff_quantile": 0.99},
    "unsupervised": {"num_train": 2000, "num_bins": 20},
}

# Runs beside those, under their own names: a metric with other settings.
VARIANTS = {
    # On this grid 20 bins keep every factor value apart; dSprites' 32 positions
    # share 20 bins. With 5 bins the factors' discretisation shows here too.
    "irs_5_bins": {"metric": "irs", "settings": {**SETTINGS["irs"], "num_bins": 5}},
}

# dlib's reference protocol (Locatello et al. 2019): the gin file each metric's
# sizes come from, relative to the checkout's disentanglement_lib/config/.
GIN_FILES = {
    "beta_vae": ("unsupervised_study_v1/metric_configs/beta_vae_sklearn.gin",
                 "beta_vae_sklearn"),
    "factor_vae": ("unsupervised_study_v1/metric_configs/factor_vae_metric.gin",
                   "factor_vae_score"),
    "mig": ("unsupervised_study_v1/metric_configs/mig.gin", "mig"),
    "dci": ("unsupervised_study_v1/metric_configs/dci.gin", "dci"),
    "sap": ("unsupervised_study_v1/metric_configs/sap_score.gin", "sap_score"),
    "modularity_explicitness": (
        "unsupervised_study_v1/metric_configs/modularity_explicitness.gin",
        "modularity_explicitness"),
    # No IRS file in unsupervised_study_v1: the sample config is the one dlib has.
    "irs": ("sample/irs/irs.gin", "irs"),
    "unsupervised": ("unsupervised_study_v1/metric_configs/unsupervised.gin",
                     "unsupervised_metrics"),
}  # fmt: skip
# Bindings of other configurables in those files that a metric's setting mirrors.
GIN_EXTRA = {
    "discretizer.num_bins": "num_bins",
    "prune_dims.threshold": "prune_threshold",
}


def grid_classes():
    """(720, 5) classes of every factor, row-major (the last varies fastest)."""
    return np.stack(
        np.unravel_index(np.arange(np.prod(FACTOR_SIZES)), FACTOR_SIZES), axis=-1
    )


def standardised(classes, sizes):
    """Each scored factor's class, centred and scaled to unit variance over the grid."""
    sizes = np.asarray(sizes, dtype=np.float64)
    return (classes - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)


def make_cases():
    """The code tables, (720, 10) float32 each, by case name."""
    rs = np.random.RandomState(FIXTURE_SEED)
    scored = [i for i, s in enumerate(FACTOR_SIZES) if s > 1]
    classes = grid_classes()[:, scored]
    z = standardised(classes, [FACTOR_SIZES[i] for i in scored])  # (720, 4)
    n, k = z.shape
    perfect = np.concatenate([z, 0.01 * rs.randn(n, CODE_DIM - k)], axis=1)
    q, r = np.linalg.qr(rs.randn(CODE_DIM, CODE_DIM))
    rotation = q * np.sign(np.diag(r))
    joint = classes[:, 0] * FACTOR_SIZES[scored[1]] + classes[:, 1]  # 15 values
    cases = {
        # one dimension per factor, the rest near-constant
        "perfect": perfect,
        # no information about any factor
        "random": rs.randn(n, CODE_DIM),
        # all the information, spread over every dimension
        "rotated": perfect @ rotation,
        # two factors encoded, the others lost; unused dims small but not constant
        "partly_collapsed": np.concatenate(
            [z[:, :2], 1e-3 * rs.randn(n, CODE_DIM - 2)], axis=1
        ),
        # the perfect code with noise on every dimension
        "noisy": perfect + 0.3 * rs.randn(n, CODE_DIM),
        # dimension 0 encodes factors 0 and 1 together, no dimension has 1 alone
        "entangled": np.concatenate(
            [
                standardised(joint, 15)[:, None],
                0.01 * rs.randn(n, 1),
                z[:, 2:],
                0.01 * rs.randn(n, CODE_DIM - 4),
            ],
            axis=1,
        ),
    }
    return {name: table.astype(np.float32) for name, table in cases.items()}


def import_dlib(dlib_path):
    sys.path.insert(0, str(dlib_path))
    import gin

    stub = types.ModuleType("gin.tf")  # dlib imports gin.tf only to register
    sys.modules["gin.tf"] = stub
    gin.tf = stub
    from disentanglement_lib.data.ground_truth import ground_truth_data
    from disentanglement_lib.evaluation.metrics import (
        beta_vae,
        dci,
        factor_vae,
        irs,
        mig,
        modularity_explicitness,
        sap_score,
        unsupervised_metrics,
    )

    fns = {
        "beta_vae": beta_vae.compute_beta_vae_sklearn,
        "factor_vae": factor_vae.compute_factor_vae,
        "mig": mig.compute_mig,
        "dci": dci.compute_dci,
        "sap": sap_score.compute_sap,
        "modularity_explicitness": (
            modularity_explicitness.compute_modularity_explicitness
        ),
        "irs": irs.compute_irs,
        "unsupervised": unsupervised_metrics.unsupervised_metrics,
    }
    return gin, ground_truth_data.GroundTruthData, fns, dci


def record_importance(dci_module):
    """Keeps the importance matrix dlib's compute_dci builds (an internal value,
    recorded so that the scoring can be checked apart from the boosting)."""
    recorded = {}
    build = dci_module.compute_importance_gbt

    def recording(*args):
        out = build(*args)
        recorded["importance"] = out[0]
        return out

    dci_module.compute_importance_gbt = recording
    return recorded


def make_grid_class(base):
    class Grid(base):
        """The toy grid as a dlib GroundTruthData: factors drawn like dlib's
        SplitDiscreteStateSpace (one randint per scored factor, in order),
        observations are image indices (drawn with no randomness)."""

        def __init__(self, sizes):
            self.sizes = tuple(sizes)
            self.scored = [i for i, s in enumerate(sizes) if s > 1]

        @property
        def num_factors(self):
            return len(self.scored)

        @property
        def factors_num_values(self):
            return [self.sizes[i] for i in self.scored]

        @property
        def observation_shape(self):
            return [1]

        def sample_factors(self, num, random_state):
            factors = np.zeros((num, len(self.scored)), dtype=np.int64)
            for pos, i in enumerate(self.scored):
                factors[:, pos] = random_state.randint(self.sizes[i], size=num)
            return factors

        def sample_observations_from_factors(self, factors, random_state):
            full = np.zeros((len(factors), len(self.sizes)), dtype=np.int64)
            full[:, self.scored] = factors
            return np.ravel_multi_index(tuple(full.T), self.sizes)

    return Grid


def dci_ties_broken_like_project(dci_module, fn, grid, represent, kwargs):
    """dlib's compute_dci with one change: each factor's GradientBoostingClassifier()
    gets random_state = the next randint(2**31 - 1) of the metric's RandomState(0),
    drawn after the sampling (the first classifier is made once sampling is done),
    factor by factor: the seeds the repo's dci gives its classifiers. The seed
    only orders the features a split tries, so it decides ties between equally
    good splits and nothing else; with it the two sides break ties alike."""
    from sklearn import ensemble

    random_state = np.random.RandomState(0)

    def seeded():
        seed = int(random_state.randint(2**31 - 1))
        return ensemble.GradientBoostingClassifier(random_state=seed)

    dci_module.ensemble = types.SimpleNamespace(GradientBoostingClassifier=seeded)
    try:
        return fn(grid, represent, random_state, **kwargs)
    finally:
        dci_module.ensemble = ensemble


def dlib_kwargs(metric, s):
    """The explicit arguments of dlib's compute function for our settings."""
    if metric == "beta_vae":
        return dict(batch_size=s["batch_size"], num_train=s["num_train"],
                    num_eval=s["num_eval"])  # fmt: skip
    if metric == "factor_vae":
        return dict(batch_size=s["batch_size"], num_train=s["num_train"],
                    num_eval=s["num_eval"],
                    num_variance_estimate=s["num_variance_estimate"])  # fmt: skip
    if metric in ("mig", "unsupervised"):
        return dict(num_train=s["num_train"], batch_size=16)
    if metric in ("dci", "modularity_explicitness"):
        return dict(num_train=s["num_train"], num_test=s["num_test"], batch_size=16)
    if metric == "sap":
        return dict(num_train=s["num_train"], num_test=s["num_test"], batch_size=16,
                    continuous_factors=s["continuous_factors"])  # fmt: skip
    if metric == "irs":
        return dict(num_train=s["num_train"], batch_size=s["batch_size"],
                    diff_quantile=s["diff_quantile"])  # fmt: skip
    raise KeyError(metric)


def plain(value):
    value = np.asarray(value)
    if value.dtype.kind in "iub":
        return int(value)
    return float(value)


def read_gin_sizes(dlib_path):
    """Each metric's reference sizes as dlib's gin files bind them."""
    config = Path(dlib_path) / "disentanglement_lib" / "config"
    out = {}
    for metric, (relative, scope) in GIN_FILES.items():
        text = (config / relative).read_text()
        values = {}
        for line in text.splitlines():
            line = line.split("#")[0].strip()
            if "=" not in line:
                continue
            key, value = (part.strip() for part in line.split("=", 1))
            name, _, param = key.rpartition(".")
            if name == scope or key in GIN_EXTRA:
                param = GIN_EXTRA.get(key, param)
                if value in ("True", "False"):
                    values[param] = value == "True"
                elif value.startswith("@") or value.startswith('"'):
                    continue
                else:
                    values[param] = float(value) if "." in value else int(value)
        out[metric] = {"file": f"disentanglement_lib/config/{relative}", **values}
    return out


def reference_settings(dlib_path, fns):
    """read_gin_sizes, with each compute function's own defaults beside (the
    sizes no gin file binds, such as the sampling batch of 16)."""
    out = read_gin_sizes(dlib_path)
    for metric, fn in fns.items():
        out[metric]["function_defaults"] = {
            name: p.default
            for name, p in inspect.signature(fn).parameters.items()
            if isinstance(p.default, int | float) and name != "artifact_dir"
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dlib_path", type=Path)
    parser.add_argument("--commit", default=DLIB_COMMIT)
    args = parser.parse_args()

    import scipy
    import sklearn

    cases = make_cases()
    np.savez_compressed(
        HERE / "codes.npz", factor_sizes=np.asarray(FACTOR_SIZES), **cases
    )
    gin, base, fns, dci_module = import_dlib(args.dlib_path)
    recorded = record_importance(dci_module)
    gin.parse_config(
        [
            "discretizer.discretizer_fn = @histogram_discretizer",
            f"discretizer.num_bins = {SETTINGS['mig']['num_bins']}",
            f"prune_dims.threshold = {SETTINGS['factor_vae']['prune_threshold']}",
        ]
    )
    grid = make_grid_class(base)(FACTOR_SIZES)
    values, seconds, internals = {}, {}, {}
    for case, table in cases.items():
        # What the repo's metrics see: its codes_of casts codes to float64.
        table64 = table.astype(np.float64)

        def represent(observations, table64=table64):
            return table64[np.asarray(observations)]

        values[case] = {}
        runs = [(name, name) for name in fns]
        runs += [(name, v["metric"]) for name, v in VARIANTS.items()]
        for run, metric in runs:
            fn = fns[metric]
            settings = VARIANTS[run]["settings"] if run in VARIANTS else SETTINGS[run]
            gin.bind_parameter("discretizer.num_bins", settings.get("num_bins", 20))
            # dlib's GradientBoostingClassifier() has random_state=None: it breaks
            # split ties with numpy's global generator, seeded here for a rerun
            # to give the same numbers.
            np.random.seed(0)
            start = time.time()
            result = fn(grid, represent, np.random.RandomState(0),
                        **dlib_kwargs(metric, settings))  # fmt: skip
            seconds[f"{case}/{run}"] = round(time.time() - start, 2)
            values[case][run] = {k: plain(v) for k, v in sorted(result.items())}
            if metric == "dci":
                importance = recorded.pop("importance").tolist()
                again = dci_ties_broken_like_project(
                    dci_module,
                    fn,
                    grid,
                    represent,
                    dlib_kwargs(metric, settings),
                )
                recorded.pop("importance")
                internals[case] = {
                    "dci_importance": importance,
                    "dci_ties_broken_like_project": {
                        k: plain(v) for k, v in sorted(again.items())
                    },
                }
            print(case, run, values[case][run], seconds[f"{case}/{run}"], flush=True)
    reference = {
        "what": "disentanglement_lib's own compute_* functions on codes.npz's tables",
        "disentanglement_lib": {
            "commit": args.commit,
            "functions": {m: f"{fn.__module__}.{fn.__name__}" for m, fn in fns.items()},
            "gin_bindings": {
                "discretizer.discretizer_fn": "@histogram_discretizer",
                "discretizer.num_bins": "each run's num_bins (20 but in variants)",
                "prune_dims.threshold": SETTINGS["factor_vae"]["prune_threshold"],
            },
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            **{
                name: metadata.version(name)
                for name in ("gin-config", "absl-py", "six")
            },
        },
        "protocol": {
            "random_state": "a fresh np.random.RandomState(0) per metric and case, "
            "as dlib's evaluate (evaluation.random_seed = 0)",
            "global_numpy_seed": "np.random.seed(0) before each call (ties in "
            "dlib's GradientBoostingClassifier(), which has random_state=None)",
            "representation": "lookup of the float32 table by image index, cast to "
            "float64 (as the repo's codes_of)",
            "observations": "image indices, row-major over factor_sizes; sampling "
            "them from factors consumes no randomness",
        },
        "fixtures": {
            "file": "codes.npz",
            "factor_sizes": list(FACTOR_SIZES),
            "seed": FIXTURE_SEED,
            "sha256": {
                case: hashlib.sha256(table.tobytes()).hexdigest()
                for case, table in cases.items()
            },
        },
        "settings": SETTINGS,
        "variants": VARIANTS,
        "dlib_reference_settings": reference_settings(args.dlib_path, fns),
        "values": values,
        "internals": {
            "what": "not returned by dlib's compute_dci: dci_importance, the "
            "(latent x factor) importance matrix its compute_importance_gbt built "
            "for the values above; dci_ties_broken_like_project, its values when "
            "each factor's GradientBoostingClassifier() is seeded as the repo seeds "
            "its own (see dci_ties_broken_like_project in make_reference.py)",
            "cases": internals,
        },
        "seconds": seconds,
    }
    (HERE / "reference_values.json").write_text(json.dumps(reference, indent=1) + "\n")


if __name__ == "__main__":
    main()
