"""Where a number came from: the software and the CPU that made it.

The encoder's codes differ in their last bits between CPU instruction sets
(oneDNN picks its kernels by ISA: measured here, codes differ by ≤ 2.4e-6 between
AVX-512 and SSE4.1), and tree classifiers split on those bits, so DCI can move in
the 4th decimal from one CPU family to another with the same libraries. Within one
ISA family (what oneDNN reports it dispatches to) the numbers are identical.
"""

import os
import platform
from functools import cache
from importlib import metadata

# oneDNN's ISA names, best first, with the /proc/cpuinfo flags each needs.
_ISAS = (
    ("avx512_core_amx", {"amx_tile", "amx_bf16", "avx512_bf16", "avx512bw"}),
    ("avx512_core_bf16", {"avx512_bf16", "avx512bw", "avx512vl", "avx512dq"}),
    ("avx512_core_vnni", {"avx512_vnni", "avx512bw", "avx512vl", "avx512dq"}),
    ("avx512_core", {"avx512f", "avx512bw", "avx512vl", "avx512dq"}),
    ("avx2_vnni", {"avx_vnni", "avx2"}),
    ("avx2", {"avx2"}),
    ("avx", {"avx"}),
    ("sse41", {"sse4_1"}),
)
PACKAGES = ("tensorflow", "keras", "numpy", "scipy", "scikit-learn", "joblib")


def _cpuinfo() -> tuple[str, set]:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or "unknown", set()
    fields = dict(line.split(":", 1) for line in text.splitlines()[:40] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("model name", "unknown"), set(fields.get("flags", "").split())


def isa_family(isa: str) -> str:
    """avx512_core_amx → avx512: the families within which numbers agree bit for
    bit (measured: every AVX-512 variant alike; AVX2 and AVX2-VNNI alike)."""
    return isa.split("_")[0] if isa.startswith("avx512") else isa.removesuffix("_vnni")


@cache
def cpu() -> dict:
    """This CPU's model and the oneDNN ISA TensorFlow's kernels run with (its best,
    capped by ONEDNN_MAX_CPU_ISA when set)."""
    model, flags = _cpuinfo()
    names = [name for name, _ in _ISAS]
    best = next((name for name, needs in _ISAS if needs <= flags), "unknown")
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", ""))
    if cap.lower() in names and best in names:
        best = names[max(names.index(best), names.index(cap.lower()))]
    return {
        "model": model,
        "machine": platform.machine(),
        "onednn_isa": best,
        "isa_family": isa_family(best),
    }


@cache
def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
