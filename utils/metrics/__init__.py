"""Disentanglement metrics, one module per metric; this registry is the only list.

Adding a metric = one module declaring `METRIC = base.Metric(...)` and one line
below. evaluate, metrics.json, the terminal table, the compare page, TensorBoard's
HParams columns and README's metric table all read `REGISTRY`.
"""

from utils.metrics import (
    beta_vae,
    dci,
    factor_vae,
    infomec,
    irs,
    mig,
    modularity,
    sap,
    unsupervised,
)
from utils.metrics.base import Metric, suffix

REGISTRY: dict[str, Metric] = {
    m.METRIC.name: m.METRIC
    for m in (
        beta_vae,
        factor_vae,
        mig,
        dci,
        sap,
        modularity,
        irs,
        unsupervised,
        infomec,  # last: the others keep their noise streams (evaluate.py)
    )
}
PROTOCOLS = ("reference", "fast")


def headline_names(protocols=PROTOCOLS) -> list[str]:
    """Every number metrics.json can hold at its top: each headline, under each
    protocol's name (`mig`, `mig_fast`)."""
    return [
        key + suffix(p)
        for p in protocols
        for m in REGISTRY.values()
        for key in m.headlines
    ]


def title_of(key: str) -> str:
    """`dci_completeness_fast` → "DCI completeness (fast)"."""
    base, protocol = key, "reference"
    for p in PROTOCOLS[1:]:
        if key.endswith(suffix(p)):
            base, protocol = key.removesuffix(suffix(p)), p
    for m in REGISTRY.values():
        if base in m.headlines:
            detail = m.headlines[base]
            words = m.title if len(m.headlines) == 1 else f"{m.title} {detail}"
            return words if protocol == "reference" else f"{words} ({protocol})"
    return key
