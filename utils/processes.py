"""Processes that end when they must: children with their parent, however it
ends (end_with_parent), and a process stuck in C++ at a deadline (ExitAfter).

Without this, a SIGKILLed evaluation left DCI's loky workers fitting for minutes and
then idling out loky's 300 s timeout, and a killed CelebA cache build left its pool
workers decoding the queued chunks, then waiting on a queue forever (each holds
both ends of the task pipe, so none reads an end of file).
"""

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_parent(parent_pid: int, signum=signal.SIGKILL):
    """In a child process, as it starts: the kernel sends it `signum` when its
    parent dies (Linux's PR_SET_PDEATHSIG; elsewhere a no-op, and workers end as
    their pool ends them). `parent_pid`: the parent's pid, read before the fork.

    SIGKILL for workers whose work dies with the parent: a forked worker may still
    have main.py's SIGTERM handler, and a fit or a decode nobody waits for has
    nothing to save. The "parent" is the thread that forked the child: a pool's
    calling thread, or its manager thread replacing a worker, both living as long
    as the pool."""
    if not sys.platform.startswith("linux") or os.getpid() == parent_pid:
        return  # not a child (joblib runs in-process on one core)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum) != 0:  # e.g. refused by seccomp
        return
    if _parent_gone(parent_pid):  # it died before the prctl: no signal will come
        os.kill(os.getpid(), signum)


def _parent_gone(parent_pid: int) -> bool:
    if os.getppid() == parent_pid:
        return False
    # Re-parented as it died (a zombie until reaped), or started by a server
    # process (a forkserver context), then the one whose death signals us.
    try:
        stat = Path(f"/proc/{parent_pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in "ZX"


# --- a deadline that holds while C++ holds the GIL

SIGEV_THREAD = 2  # <signal.h>: the timer calls a function in a new thread
CLOCK_MONOTONIC = 1


class _SigEvent(ctypes.Structure):  # struct sigevent, as glibc lays it out (64 bytes)
    _fields_ = [
        ("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
        ("function", ctypes.c_void_p), ("attribute", ctypes.c_void_p),
        ("padding", ctypes.c_int * 8),
    ]  # fmt: skip


class _TimeSpec(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_long), ("nanoseconds", ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [("interval", _TimeSpec), ("value", _TimeSpec)]


class ExitAfter:
    """Exit the process with `code` after `seconds`, even while a C++ call holds
    the GIL and no Python code can run: a POSIX timer calls libc's _exit(code) in a
    thread of its own. Nothing is cleaned up: for waits with nothing to lose.
    `cancel()` disarms it. Without POSIX timers (not Linux), it does nothing."""

    def __init__(self, seconds: float, code: int):
        self.timer = None
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        exit_function = ctypes.cast(libc._exit, ctypes.c_void_p).value
        event = _SigEvent(code, 0, SIGEV_THREAD, exit_function, None)
        timer = ctypes.c_void_p()
        if libc.timer_create(CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(timer)):
            return
        whole = int(seconds)
        due = _ITimerSpec(
            _TimeSpec(0, 0), _TimeSpec(whole, int((seconds - whole) * 1e9))
        )
        if libc.timer_settime(timer, 0, ctypes.byref(due), None) == 0:
            self.timer, self.libc = timer, libc

    def cancel(self):
        if self.timer is not None:
            self.libc.timer_delete(self.timer)
            self.timer = None
