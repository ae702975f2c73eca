"""Writing files so that a kill, a crash or a full disk never leaves a half-written
one (readers see either the old file or the whole new one), and the lock that lets
one process at a time write a run folder or build a cache; and what reading a zip
can raise."""

import fcntl
import glob
import os
import re
import uuid
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

try:
    from lzma import LZMAError
except ImportError:  # a Python built without lzma: zipfile raises RuntimeError then
    LZMAError = RuntimeError

# What zipfile raises for an archive or a member it cannot read (CelebA's zip,
# dSprites' npz): a damaged one (BadZipFile; OSError, ValueError for an impossible
# offset; EOFError, zlib, bz2's OSError, LZMAError for damaged data) or one using
# what it lacks (NotImplementedError, RuntimeError: encryption, Deflate64, a newer
# zip version).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    NotImplementedError,
    RuntimeError,
    OSError,
    EOFError,
    ValueError,
    zlib.error,
    LZMAError,
)

# The temporary names atomic writes use: .<name>.<pid>.<8 hex digits>.tmp
_TEMPORARY_TAIL = r"\.\d+\.[0-9a-f]{8}\.tmp"
TEMPORARY_NAME = re.compile(r"\..+" + _TEMPORARY_TAIL)


def temporary_path(path) -> Path:
    """A unique temporary name beside `path` (os.replace is atomic only within one
    filesystem) that TEMPORARY_NAME matches."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def temporaries_of(path) -> list[Path]:
    """The temporary files atomic writes of `path` made and have not yet renamed."""
    path = Path(path)
    own_name = re.compile(re.escape(f".{path.name}") + _TEMPORARY_TAIL)
    candidates = path.parent.glob(f".{glob.escape(path.name)}.*.tmp")
    return sorted(p for p in candidates if own_name.fullmatch(p.name))


@contextmanager
def atomic_writer(path, durable=False, temporary=None):
    """A binary file that becomes `path` when the block ends without an error; on
    an error it is removed and `path` is left as it was. `durable` also fsyncs,
    for files a resume depends on or too big to write twice. `temporary`: the name
    to write under, beside `path`, when temporary_path's will not do."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path) if temporary is None else Path(temporary)
    try:
        # "xb" rather than mkstemp, which forces mode 0600: the file gets the
        # usual umask permissions.
        with open(temporary, "xb") as file:
            yield file
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        _remove_after_failure(temporary, error)
        raise


def _remove_after_failure(temporary, error):
    # A temporary that cannot be removed (a read-only folder, say) must not hide
    # the error that made the write fail: it becomes a note on that error.
    try:
        temporary.unlink(missing_ok=True)
    except OSError as cleanup_error:
        error.add_note(f"{temporary} could not be removed: {cleanup_error}")


def atomic_write_bytes(path, data, durable=False):
    """Write `data` (bytes or str) to `path` with atomic_writer."""
    with atomic_writer(path, durable) as file:
        file.write(data.encode() if isinstance(data, str) else data)


def remove_stale_temporaries(folder):
    """Delete the temporary files that atomic writes left under `folder` when
    their process was killed (SIGKILL, power loss). Only for a folder no other
    process is writing into: a run folder under its lock."""
    for path in Path(folder).rglob(".*.tmp"):
        if TEMPORARY_NAME.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)


# --- one process at a time


class FileLock:
    """An exclusive lock on the file `path`, created by acquire and removed by
    release. An flock: the OS releases it when its process dies, even by SIGKILL,
    so it never goes stale. The file says which process holds it."""

    def __init__(self, path):
        self.path = Path(path)
        self.file = None
        self.holder = ""  # after a refused acquire: e.g. "process 4242"

    def acquire(self, wait=True) -> bool:
        """Lock, waiting for the holder if `wait`; otherwise return False if
        another process (or another FileLock) holds it."""
        while True:
            file = open(self.path, "a+")
            try:
                locked = _flock(file, wait)
                current = _still_named(file, self.path)
                if locked and current:
                    _write_holder(file)
            except BaseException:
                file.close()
                raise
            if not current:
                # Its holder removed this file on release after we opened it: a lock
                # on it guards nothing, since a third process may lock the new file
                # at `path`. So we lock whatever `path` names now.
                file.close()
                continue
            if not locked:
                file.seek(0)
                self.holder = file.read().strip()
                file.close()
                return False
            self.file = file
            return True

    def release(self):
        """Remove the file, then unlock it: whoever then gets this lock sees that
        `path` no longer names its file and locks the new one instead."""
        if self.file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # left behind, it is harmless: the next holder reuses it
            pass
        fcntl.flock(self.file, fcntl.LOCK_UN)  # also unlocks for any forked child
        self.file.close()
        self.file = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def _flock(file, wait) -> bool:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _still_named(file, path) -> bool:
    try:
        return os.path.samestat(os.fstat(file.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _write_holder(file):
    file.truncate(0)  # a killed holder's words may be there
    file.write(f"process {os.getpid()}")
    file.flush()


@contextmanager
def exclusive_build(path, log, leftovers=()):
    """Held while `path` is built: one builder at a time, so a second process waits
    and then finds `path` built. Whoever holds it owns the temporary files beside
    `path` (atomic writes', and any matching the glob patterns `leftovers`), so any
    there were left by a build that was killed (SIGKILL, power loss): it removes
    them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(f".{path.name}.lock"))
    if not lock.acquire(wait=False):
        holder = f" ({lock.holder})" if lock.holder else ""
        log(f"waiting: another process is building {path}{holder}")
        lock.acquire()
    try:
        found = [p for pattern in leftovers for p in path.parent.glob(pattern)]
        for leftover in sorted(set(found + temporaries_of(path))):
            log(f"removing {leftover.name}, left by a build that was killed")
            leftover.unlink(missing_ok=True)
        yield
    finally:
        lock.release()
