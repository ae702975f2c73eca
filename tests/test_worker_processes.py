"""Worker processes end with the process that started them, even a SIGKILLed one
(utils/processes.py): DCI's classifiers, CelebA's cache builders.

Linux only: the test reads /proc, as the mechanism it checks (PR_SET_PDEATHSIG) is
Linux's.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG"
)

# DCI's parallel fits on codes that take each worker tens of seconds (gradient
# boosting, 20 classes per factor). Each worker names itself by a file once it fits.
# Two workers even on a 1-core machine: the test is about them, not about speed.
DCI_FITTING = """
import os, sys
from pathlib import Path
import numpy as np
from utils.metrics import dci

folder = Path(sys.argv[1])
fit_factor = dci._fit_factor
def announced_fit(*args):  # runs in a worker (cloudpickle sends it by value)
    (folder / str(os.getpid())).touch()
    return fit_factor(*args)
dci._fit_factor = announced_fit
dci._cores = lambda: 2
rng = np.random.RandomState(0)
codes, factors = rng.randn(8000, 10), rng.randint(0, 20, size=(8000, 2))
dci.dci_from_codes(
    codes[:4000], factors[:4000], codes[4000:], factors[4000:],
    "gradient_boosting", [1, 2],
)
"""


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state first), or None
    once the process has gone or is only a zombie waiting to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else fields


def _children(pid: int) -> dict[int, str]:
    """Child pid → its start time (a pid reused later has another)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) and fields[1] == str(pid):
            found[int(entry)] = fields[19]
    return found


def _running(processes: dict[int, str]) -> set[int]:
    return {
        pid for pid, start in processes.items() if (f := _stat(pid)) and f[19] == start
    }


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_dci_workers_end_when_their_parent_is_killed(tmp_path):
    """Issue 25, item 7: after a SIGKILL during DCI, loky's workers finished their
    fit (minutes with the reference settings) and then idled for its 300 s worker
    timeout before exiting; the resource trackers waited on them."""
    assert_workers_end_with_their_parent(DCI_FITTING, tmp_path)


def assert_workers_end_with_their_parent(script, tmp_path):
    """Run `script` (argument: tmp_path) until two of its workers have each named
    themselves by a file there, SIGKILL it, and check that all its children end."""
    log = (tmp_path / "stderr.txt").open("w")
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO, stdout=log, stderr=log,
    )  # fmt: skip
    started = {}
    try:
        fitting = _wait_for(lambda: len(list(tmp_path.glob("[0-9]*"))) == 2, 60)
        assert fitting, (tmp_path / "stderr.txt").read_text()[-2000:]
        workers = {int(path.name) for path in tmp_path.glob("[0-9]*")}
        started = _children(parent.pid)  # the workers and loky's resource trackers
        assert workers <= set(started)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: not _running(started), 5)
        alive = _running(started)
        assert not alive, f"still running 5 s after their parent was killed: {alive}"
    finally:  # the pre-fix workers would otherwise run on for minutes
        for pid in _running(started):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
        log.close()


# A CelebA cache build's pool (utils/data/image_cache.py), each worker on a chunk
# that takes a minute; each names itself by a file once it has one.
CACHE_BUILDING = """
import os, sys, time
from pathlib import Path
import numpy as np
from utils.data import image_cache

folder = Path(sys.argv[1])
def slow_chunk(task):
    (folder / str(os.getpid())).touch()
    time.sleep(60)
rows = folder / "rows.npy"
np.lib.format.open_memmap(rows, mode="w+", dtype=np.uint8, shape=(1, 8, 8, 3))
with image_cache._parallel_map(2, (image_cache.ImageSource(folder), rows, 8, 8)) as run:
    list(run(slow_chunk, range(4)))
"""


def test_cache_build_workers_end_when_their_parent_is_killed(tmp_path):
    """Issue 25, items 7 and 18: the pool's workers outlived a killed build,
    decoding the queued chunks (then printing BrokenPipeError tracebacks), and
    then waited on the task queue for good: each holds both ends of its pipe."""
    assert_workers_end_with_their_parent(CACHE_BUILDING, tmp_path)
