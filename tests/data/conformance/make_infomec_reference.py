"""InfoMEC's reference values: the authors' own `compute_infomec` on codes.npz.

Hsu et al. (NeurIPS 2023) publish InfoMEC as one standalone file,
`disentangle/metrics/infomec.py` of github.com/kylehkhsu/latent_quantization. It is
run here, never copied: unpack the repository at AUTHORS_COMMIT somewhere outside
this checkout and run this script with a Python that has only what that file
imports (NumPy, scikit-learn), NOT the repo's venv:

    mkdir /tmp/lq && git --git-dir=<bare clone> archive AUTHORS_COMMIT | tar -xC /tmp/lq
    python3 -m venv /tmp/infomec-venv
    /tmp/infomec-venv/bin/pip install numpy==2.4.6 scipy==1.17.1 scikit-learn==1.9.1
    taskset -c 0 /tmp/infomec-venv/bin/python \\
        tests/data/conformance/make_infomec_reference.py /tmp/lq

Each run adds (or replaces) one entry of `infomec_reference.json` under "runs",
named by its scikit-learn version: run it once with the locked versions (above;
tests/test_infomec.py wants the project's numbers equal to it) and once with the
libraries of the file's time, which run it unchanged (scikit-learn 1.3.0,
NumPy 1.25.2, SciPy 1.11.2; the numbers only need to be within 0.005 of those).

On the locked versions two of the file's library calls no longer run as
written, and only those calls are translated (`patch_calls`); the authors' maths
runs as written. scikit-learn 1.8 renamed arguments of its LogisticRegression(...):
`multi_class="multinomial"` is gone (multinomial is what lbfgs fits for 3+
classes), `penalty=None` is spelt `C=np.inf`, `n_jobs` (no effect with lbfgs) is
deprecated. NumPy 2 refuses `ret[i, j] = mutual_info_classif(one column)`, a (1,)
array stored in a scalar slot, which NumPy 1 unpacked.

The points are drawn as every metric of the repo draws them (disentanglement_lib's
generate_batch_factor_code: a RandomState(0), batches of 16, factor by factor),
and the codes looked up in the case's table, cast to float64. The authors' KSG
estimator (`mutual_info_classif`) jitters the codes with NumPy's global generator;
it is set to the sampling generator's state after the draws, which is the
generator the project's metric goes on with: same draws, same jitter.
"""

import argparse
import hashlib
import importlib.util
import inspect
import json
import platform
import re
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "infomec_reference.json"
REPOSITORY = "kylehkhsu/latent_quantization"
AUTHORS_COMMIT = "9a420a33505e03914f9b4fbfcafd221d25b8162f"  # 2024-01-17, HEAD
AUTHORS_FILE = "disentangle/metrics/infomec.py"  # added in 4ba4c9d, 2023-08-28
SEED = 0  # the repo's evaluation seed (disentanglement_lib's)
BATCH = 16  # disentanglement_lib's generate_batch_factor_code batch
# Points per case: the fast protocol's size; the reference protocol's 10,000 on
# the cases named in REFERENCE_SIZE_CASES (the tests run those as slow).
NUM_TRAIN = 2000
REFERENCE_NUM_TRAIN = 10_000
REFERENCE_SIZE_CASES = ("perfect", "rotated")


def load_authors(path: Path):
    """The authors' file as a module, imported by path (their package's
    __init__ pulls in JAX, which InfoMEC does not use)."""
    spec = importlib.util.spec_from_file_location("authors_infomec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def translated_logistic_regression(linear_model):
    """scikit-learn ≥ 1.8's LogisticRegression, taking the file's 2023 arguments."""
    accepted = inspect.signature(linear_model.LogisticRegression).parameters

    def build(**kwargs):
        if "multi_class" not in accepted:
            assert kwargs.pop("multi_class") == "multinomial"
        if accepted["penalty"].default == "deprecated":
            assert kwargs.pop("penalty") is None
            kwargs["C"] = np.inf
            kwargs.pop("n_jobs")
        return linear_model.LogisticRegression(**kwargs)

    return build


def one_feature_mutual_info(feature_selection):
    """mutual_info_classif of one column as the scalar NumPy < 2 made of it."""

    def estimate(*args, **kwargs):
        (value,) = feature_selection.mutual_info_classif(*args, **kwargs)
        return value

    return estimate


def patch_calls(module) -> list[str]:
    """Translates the file's library calls that the installed versions no longer
    take as written; returns what was translated (nothing on 2023's versions)."""
    from sklearn import feature_selection, linear_model

    translated = []
    accepted = inspect.signature(linear_model.LogisticRegression).parameters
    if "multi_class" not in accepted:
        module.linear_model = types.SimpleNamespace(
            LogisticRegression=translated_logistic_regression(linear_model)
        )
        translated.append(
            "LogisticRegression(multi_class='multinomial', penalty=None, n_jobs=-1) "
            "run as LogisticRegression(C=np.inf) (scikit-learn >= 1.8 names)"
        )
    if int(np.__version__.split(".")[0]) >= 2:
        # `ret[i, j] = mutual_info_classif(one column)` stores a (1,) array in a
        # scalar slot, which NumPy 2 refuses and NumPy 1 did silently.
        module.feature_selection = types.SimpleNamespace(
            mutual_info_classif=one_feature_mutual_info(feature_selection)
        )
        translated.append(
            "mutual_info_classif's (1,) result unpacked to its scalar (NumPy >= 2)"
        )
    return translated


def authors_constants(source: str) -> dict:
    """The settings the file hard-codes, read from its text: the KSG neighbours
    and the fraction of the largest latent range below which a latent is pruned."""
    neighbours = re.findall(r"n_neighbors=(\d+)", source)
    divisor = re.findall(r"latent_ranges > np\.max\(latent_ranges\) / (\d+)", source)
    iterations = re.findall(r"max_iter=(\d+)", source)
    assert len(neighbours) == len(divisor) == len(iterations) == 1, source
    return {
        "n_neighbors": int(neighbours[0]),
        "prune_range_fraction": 1 / int(divisor[0]),
        "max_iter": int(iterations[0]),
    }


def sample(factor_sizes, num_points, random_state):
    """(n, K) scored-factor classes and (n,) image indices, drawn as the repo's
    utils/metrics/base.factor_codes (and disentanglement_lib) draw them."""
    scored = [i for i, s in enumerate(factor_sizes) if s > 1]
    batches = []
    for start in range(0, num_points, BATCH):
        size = min(BATCH, num_points - start)
        batch = np.zeros((size, len(scored)), dtype=np.int64)
        for column, i in enumerate(scored):
            batch[:, column] = random_state.randint(factor_sizes[i], size=size)
        batches.append(batch)
    factors = np.concatenate(batches)
    full = np.zeros((num_points, len(factor_sizes)), dtype=np.int64)
    full[:, scored] = factors
    return factors, np.ravel_multi_index(tuple(full.T), factor_sizes)


def run_case(authors, table, factor_sizes, num_points):
    random_state = np.random.RandomState(SEED)
    factors, indices = sample(factor_sizes, num_points, random_state)
    codes = table.astype(np.float64)[indices]
    np.random.set_state(random_state.get_state())
    start = time.time()
    result = authors.compute_infomec(factors, codes, discrete_latents=False)
    seconds = round(time.time() - start, 2)
    values = {
        "infom": float(result["infom"]),
        "infoe": float(result["infoe"]),
        "infoc": float(result["infoc"]),
        "nmi": np.asarray(result["nmi"]).tolist(),  # (factor × latent)
        "active_latents": np.asarray(result["active_latents"]).tolist(),
        "factors_sha256": hashlib.sha256(factors.tobytes()).hexdigest(),
    }
    return values, seconds


def library_versions() -> dict:
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("authors_checkout", type=Path)
    parser.add_argument("--commit", default=AUTHORS_COMMIT)
    args = parser.parse_args()

    path = args.authors_checkout / AUTHORS_FILE
    authors = load_authors(path)
    translated = patch_calls(authors)
    with np.load(HERE / "codes.npz") as npz:
        factor_sizes = tuple(int(s) for s in npz["factor_sizes"])
        tables = {name: npz[name] for name in npz.files if name != "factor_sizes"}

    values, seconds = {}, {}
    for name, table in tables.items():
        sizes = [NUM_TRAIN] + [REFERENCE_NUM_TRAIN] * (name in REFERENCE_SIZE_CASES)
        for num_points in sizes:
            key = f"{name}/{num_points}"
            values[key], seconds[key] = run_case(authors, table, factor_sizes,
                                                 num_points)  # fmt: skip
            print(key, {k: values[key][k] for k in ("infom", "infoe", "infoc")},
                  f"{seconds[key]} s", flush=True)  # fmt: skip

    versions = library_versions()
    saved = json.loads(OUT.read_text()) if OUT.exists() else {"runs": {}}
    reference = {
        "what": "the authors' compute_infomec(sources, latents, "
        "discrete_latents=False) on codes.npz's tables; keys are case/points",
        "authors": {
            "repository": REPOSITORY,
            "commit": args.commit,
            "file": AUTHORS_FILE,
            "function": "compute_infomec",
            "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        },
        "constants": authors_constants(path.read_text()),
        "protocol": {
            "points": "a fresh np.random.RandomState(0) per case; batches of 16, "
            "factor by factor (disentanglement_lib's generate_batch_factor_code)",
            "representation": "the float32 table looked up by image index, cast to "
            "float64 (the repo's codes_of)",
            "jitter": "np.random's global state set to the sampling generator's "
            "after the draws (the authors' mutual_info_classif has "
            "random_state=None)",
        },
        "fixtures": {
            "file": "codes.npz",
            "factor_sizes": list(factor_sizes),
            "sha256": {
                name: hashlib.sha256(table.tobytes()).hexdigest()
                for name, table in tables.items()
            },
        },
        "runs": saved["runs"]
        | {
            f"scikit-learn {versions['scikit-learn']}": {
                "versions": versions,
                "translated_calls": translated,
                "values": values,
                "seconds": seconds,
            }
        },
    }
    OUT.write_text(json.dumps(reference, indent=1) + "\n")


if __name__ == "__main__":
    main()
