"""Command line: `--name=value` overrides of params.py, typed, with `--help`.

Precedence, highest first: the command line, a value set in params.py, the dataset's
default (for names left as None in params.py).
"""

import ast
import io
import sys
import tokenize
import types
from pathlib import Path

PER_DATASET = "dataset_defaults"


class UsageError(Exception):
    """A bad parameter: the message names it and what is allowed. Exit code 2."""


def read_params(module):
    """{name: (default, comment)} for every public value in the params module, in
    file order, with each line's trailing comment as its documentation."""
    source = Path(module.__file__).read_text()
    comments, order = {}, []
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, token in enumerate(tokens):
        starts_line = i == 0 or tokens[i - 1].type in (tokenize.NL, tokenize.NEWLINE)
        if token.type == tokenize.NAME and starts_line and token.start[1] == 0:
            order.append(token.string)
        if token.type == tokenize.COMMENT and order and token.start[0] >= 1:
            line = source.splitlines()[token.start[0] - 1]
            if not line.lstrip().startswith("#"):  # a trailing comment
                comments.setdefault(order[-1], token.string.lstrip("# ").strip())
    names = [n for n in dict.fromkeys(order) if _is_param(n, getattr(module, n, None))]
    return {name: (getattr(module, name), comments.get(name, "")) for name in names}


def _is_param(name, value):
    return not name.startswith("_") and not isinstance(
        value, types.ModuleType | types.FunctionType | type
    )


def parse_overrides(argv, params):
    """`--name=value` (or `--name value`) pairs → {name: typed value}. Values are
    Python literals (4, 5e-4, [[32, 4, 2]], None) or bare strings (dsprites)."""
    overrides, args = {}, list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or arg == "--":
            raise UsageError(
                f"unexpected argument {arg!r}: parameters are given as "
                "--name=value (see --help)"
            )
        name, _, text = arg[2:].partition("=")
        if not _:
            if not args:
                raise UsageError(f"--{name} needs a value: --{name}=VALUE")
            text = args.pop(0)
        name = name.replace("-", "_")
        if name not in params or name == PER_DATASET:
            close = [p for p in params if p != PER_DATASET and _similar(p, name)]
            hint = f" Did you mean --{close[0]}?" if close else ""
            raise UsageError(
                f"unknown parameter --{name}.{hint} "
                "See `python main.py --help` for the list."
            )
        overrides[name] = _typed(name, text, _type_example(name, params))
    return overrides


def _similar(a, b):
    return a.startswith(b[:4]) or b in a or a in b


def _type_example(name, params):
    default = params[name][0]
    if default is None:  # typed by the per-dataset default, if there is one
        for values in params.get(PER_DATASET, ({}, ""))[0].values():
            if values.get(name) is not None:
                return values[name]
    return default


def _typed(name, text, example):
    """The value of `--name=text`, of the type of `example`. A comma-separated list
    of values (`--beta=1,4,16`) is a tuple: a sweep, one run per value."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word such as dsprites
    if text.lower() in ("true", "false"):
        value = text.lower() == "true"
    if isinstance(value, tuple) and not isinstance(example, str):
        return tuple(_conform(name, repr(v), v, example) for v in value)
    return _conform(name, text, value, example)


def _conform(name, text, value, example):
    if value is None or example is None:
        return value
    if isinstance(example, str) and not isinstance(value, str):
        return text  # --jit_compile=True is the word "True", which validation names
    if isinstance(example, bool) != isinstance(value, bool):
        raise UsageError(f"--{name}={text}: expected true or false")
    if isinstance(example, float) and isinstance(value, int):
        return float(value)
    if isinstance(example, int | float) and not isinstance(value, int | float):
        raise UsageError(f"--{name}={text}: expected a number like {example!r}")
    if isinstance(example, int) and isinstance(value, float):
        if not value.is_integer():
            raise UsageError(f"--{name}={text}: expected a whole number")
        return int(value)
    if isinstance(example, list) and not isinstance(value, list):
        raise UsageError(f"--{name}={text}: expected a list like {example!r}")
    return value


def sweep(overrides):
    """Each combination of the swept values (tuples) as a plain overrides dict;
    a single combination when nothing is swept."""
    swept = {k: v for k, v in overrides.items() if isinstance(v, tuple)}
    combinations = [{}]
    for name, values in swept.items():
        combinations = [{**c, name: v} for c in combinations for v in values]
    return [{**overrides, **c} for c in combinations]


def as_argument(name, value):
    """`--name=value` that parses back to `value`."""
    return f"--{name}={value!r}" if not isinstance(value, str) else f"--{name}={value}"


def resolve(params, overrides):
    """The run's parameters: params.py's values, then the dataset's defaults where
    a value is None, then the command line."""
    values = {name: default for name, (default, _) in params.items()}
    per_dataset = values.pop(PER_DATASET, {})
    values.update(overrides)
    for name, value in per_dataset.get(values.get("dataset"), {}).items():
        if values.get(name) is None:
            values[name] = value
    return values


def help_text(params, prog="python main.py"):
    per_dataset = params.get(PER_DATASET, ({}, ""))[0]
    lines = [
        f"usage: {prog} [--name=value ...]",
        "",
        "Every name in params.py can be overridden; values are Python literals.",
        "",
    ]
    for name, (default, comment) in params.items():
        if name == PER_DATASET:
            continue
        shown = repr(default)
        if default is None and any(name in d for d in per_dataset.values()):
            shown = ", ".join(
                f"{d}: {v[name]!r}" for d, v in per_dataset.items() if name in v
            )
        lines.append(f"  --{name} (default {shown})")
        lines.append(f"      {comment}")
    return "\n".join(lines)


def parse_command_line(params, argv=None):
    """Resolved parameters, or exits: 0 after --help, 2 after a usage error."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(help_text(params))
        raise SystemExit(0)
    overrides = parse_overrides(argv, params)
    return resolve(params, overrides), overrides
