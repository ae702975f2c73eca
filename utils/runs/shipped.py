"""Runs that ship with the repo (predictions/reference_*): their files are committed,
so evaluating, analyzing, exporting or training one must not change them (nor
leave a lock file in git's view). A shipped run holds a SHIPPED file; every mode
works on a copy of it beside it, predictions/copy_of_<name>/, made once, which git
ignores. The committed numbers stay as shipped, and a test compares against them,
not against what the last user wrote.
"""

import shutil
from pathlib import Path

from utils.files import temporary_path

MARKER = "SHIPPED"
COPY_PREFIX = "copy_of_"
NOT_COPIED = (MARKER, ".lock", ".*.tmp")


def is_shipped(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def working_folder(folder: Path, log=print) -> Path:
    """`folder`, or for a shipped run its copy (made now if there is none yet)."""
    folder = Path(folder)
    if not is_shipped(folder):
        return folder
    copy = folder.with_name(COPY_PREFIX + folder.name)
    if not copy.exists():
        # Copied under a temporary name, then renamed: a kill leaves no half copy
        # that would pass for the run.
        staging = temporary_path(copy)
        try:
            shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(*NOT_COPIED))
            staging.rename(copy)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log(
        f"{folder.name} ships with the repo and stays as committed: working on "
        f"its copy {copy}"
    )
    return copy
