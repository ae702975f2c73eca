"""A process's own peak memory, as the kernel counts it for that process alone.

Not ru_maxrss: Linux keeps it across exec, so a child started from a large parent
(Python starts children with vfork, then exec) reports the parent's peak when that
was higher. A main.py started from a pytest process that had grown to 4.5 GB
"peaked" at 4.5 GB while using under 1 GB. VmHWM belongs to the new program's own
address space, so it starts again at exec.
"""

import resource
from pathlib import Path


def status_mib(field: str, pid="self") -> float:
    """A "<field>: <n> kB" line of /proc/<pid>/status in MiB (VmHWM, RssAnon, ...);
    0 when the process has gone or the system has no /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_resident_mib() -> float:
    """This process's peak resident memory since it started (or last exec'd)."""
    own = status_mib("VmHWM")
    return own or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# `python -c RUN_REPORTING_PEAK PEAK_FILE SCRIPT ARGS...` runs SCRIPT as its own
# `python SCRIPT ARGS...` would, and at exit writes its peak resident MiB (VmHWM)
# into PEAK_FILE: the figure a parent cannot read once the child has gone.
RUN_REPORTING_PEAK = """
import atexit, runpy, sys
from pathlib import Path
peak_file, sys.argv = sys.argv[1], sys.argv[2:]
sys.path.insert(0, str(Path(sys.argv[0]).resolve().parent))
from benchmark.memory import peak_resident_mib
atexit.register(lambda: Path(peak_file).write_text(str(peak_resident_mib())))
runpy.run_path(sys.argv[0], run_name="__main__")
"""
