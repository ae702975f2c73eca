"""Writing files so that a kill, a crash or a full disk never leaves a half-written
one: readers see either the old file or the whole new one."""

import os
import re
import uuid
from pathlib import Path

# The temporary names atomic_write_bytes uses: .<name>.<pid>.<8 hex digits>.tmp
TEMPORARY_NAME = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")


def atomic_write_bytes(path, data, durable=False):
    """Write `data` (bytes or str) to `path` through a temporary file in the same
    folder (os.replace is atomic only within one filesystem). `durable` also
    fsyncs, for files a resume depends on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    # A unique name opened with "xb" (not mkstemp, which forces mode 0600) so the
    # file gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder):
    """Delete the temporary files that atomic_write_bytes left under `folder` when
    its process was killed (SIGKILL, power loss). Only for a folder no other
    process is writing into: a run folder under its lock."""
    for path in Path(folder).rglob(".*.tmp"):
        if TEMPORARY_NAME.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
