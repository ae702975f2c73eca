"""FactorVAE score (Kim & Mnih, ICML 2018), as disentanglement_lib's
`factor_vae.compute_factor_vae`: each vote fixes one random factor over a batch;
the active code dimension with the smallest variance (normalised by its variance
over the dataset) votes for that factor; a majority-vote classifier maps each
dimension to the factor it voted for most; the score is its evaluation accuracy."""

import numpy as np

from utils.metrics.base import CHUNK_IMAGES, Metric, codes_of


def _votes(ds, represent, num_votes, batch_size, random_state, global_var, active,
           progress):  # fmt: skip
    """votes[k, j]: how often active dimension j had the smallest normalised
    variance when factor k was held fixed. Draw for draw as disentanglement_lib."""
    votes = np.zeros((len(ds.scored_factors), int(active.sum())), dtype=np.int64)
    per_chunk = max(1, CHUNK_IMAGES // batch_size)
    for start in range(0, num_votes, per_chunk):
        size = min(per_chunk, num_votes - start)
        k = np.zeros(size, dtype=np.int64)
        batches = []
        for p in range(size):
            k[p] = random_state.randint(len(ds.scored_factors))
            factors = ds.sample_factors(batch_size, random_state)
            factors[:, k[p]] = factors[0, k[p]]
            batches.append(factors)
        codes = codes_of(represent, ds.index_of(np.concatenate(batches)))
        local_var = codes.reshape(size, batch_size, -1).var(axis=1, ddof=1)
        argmin = (local_var[:, active] / global_var[active]).argmin(axis=1)
        np.add.at(votes, (k, argmin), 1)
        progress.update(size)
    return votes


def compute(ds, represent, settings, random_state, progress) -> dict:
    s = settings
    n = s["num_variance_estimate"]
    codes = codes_of(represent, ds.index_of(ds.sample_factors(n, random_state)))
    progress.update(n)
    global_var = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= s["prune_threshold"]
    if not active.any():  # disentanglement_lib's answer for a collapsed code
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    args = (s["batch_size"], random_state, global_var, active, progress)
    train_votes = _votes(ds, represent, s["num_train"], *args)
    predicted = train_votes.argmax(axis=0)  # each dimension's factor
    dims = np.arange(train_votes.shape[1])

    def accuracy(votes):
        return float(votes[predicted, dims].sum() / votes.sum())

    train_accuracy = accuracy(train_votes)
    eval_votes = _votes(ds, represent, s["num_eval"], *args)
    return {
        "train_accuracy": train_accuracy,
        "eval_accuracy": accuracy(eval_votes),
        # The count of active dimensions (disentanglement_lib stores the code size
        # here, len() of the mask).
        "num_active_dims": int(active.sum()),
    }


METRIC = Metric(
    name="factor_vae",
    title="FactorVAE score",
    paper="Kim & Mnih, ICML 2018",
    headlines={"factor_vae": "eval_accuracy"},
    reference={"batch_size": 64, "num_train": 10_000, "num_eval": 5_000,
               "num_variance_estimate": 10_000, "prune_threshold": 0.05},
    fast={"batch_size": 64, "num_train": 500, "num_eval": 250,
          "num_variance_estimate": 1_000, "prune_threshold": 0.05},
    compute=compute,
    progress_total=lambda s, num_factors: (
        s["num_variance_estimate"] + s["num_train"] + s["num_eval"]
    ),
)  # fmt: skip
