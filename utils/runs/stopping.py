"""Ctrl-C and SIGTERM: a stop request the training loop honours after its
current call, or that stops at once where nothing is lost by stopping (the end of
a run, whose rerun writes what is missing), and at a second request."""

import signal
import sys


class Stopped(BaseException):
    """A stop request that stops at once. A BaseException, as KeyboardInterrupt:
    no `except Exception` on the way may swallow it."""

    def __init__(self, signum, message):
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """Ctrl-C or SIGTERM. While training, the loop stops after the current call,
    with a checkpoint at that step. In the end-of-run phase (`at_once`), or at a
    second request, it stops at once: every file is written atomically, and a
    rerun writes whatever is missing."""

    def __init__(self):
        self.requested = None
        self.immediate = False
        self.rerun = "the same command"  # main.py names it once the run has a name
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def at_once(self):
        """From now on a request stops at once (one made before was honoured by
        stopping the loop)."""
        self.immediate = True

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested or self.immediate:
            raise Stopped(
                signum,
                f"{name}: stopped. Rerun to go on from the last checkpoint and write "
                f"what is missing; to resume: {self.rerun}",
            )
        self.requested = name
        print(f"\n{name}: stopping after this step…", file=sys.stderr)
