"""A sweep: several values for some parameters, one run per combination."""

import subprocess
import sys

from utils.settings import cli


def train_sweep(runs, swept, main_py):
    """Several values for some parameters (`swept`): one run per combination, one
    after the other, each in its own process and run folder."""
    for number, overrides in enumerate(runs, 1):
        overrides = dict(overrides)
        if overrides.get("run_name"):  # else named from the parameters
            suffix = "_".join(f"{k}{overrides[k]}" for k in swept)
            overrides["run_name"] = f"{overrides['run_name']}_{suffix}"
        args = [cli.as_argument(k, v) for k, v in overrides.items()]
        print(f"--- sweep run {number}/{len(runs)}: {' '.join(args)}")
        code = subprocess.run([sys.executable, str(main_py), *args]).returncode
        if code:
            print(f"error: sweep run {number} failed (exit {code})", file=sys.stderr)
            return code
    return 0
