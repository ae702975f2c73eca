"""Writing files so that a kill, a crash or a full disk never leaves a half-written
one: readers see either the old file or the whole new one."""

import os
import uuid
from pathlib import Path


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
