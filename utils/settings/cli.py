"""What the user asked for: params.py, then `--name=value` overrides, typed, with
`--help`. A bad file or argument raises UsageError, whose message names it; main.py
prints it and exits with code 2.

Precedence, highest first: the command line, a preset's value (--preset), a value
set in params.py, the dataset's default (for names still None).
"""

import ast
import difflib
import importlib.util
import io
import itertools
import sys
import textwrap
import tokenize
import traceback
import types
from pathlib import Path

from utils.settings import presets

PER_DATASET = "dataset_defaults"
RULER = "---"  # `# --- data` starts a section of params.py: no name's comment
HELP_WIDTH = 79  # columns of --help: an 80-column terminal


class UsageError(Exception):
    """A bad params.py or argument: the message names it and what is allowed."""


# --- params.py


def import_params(path):
    """The params module at `path`, run afresh; a file that does not run raises
    UsageError("params.py line N: what") instead of a traceback."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        where = Path(error.filename or path).name  # params.py, or a file it imports
        raise UsageError(f"{where} line {error.lineno}: {error.msg}") from None
    except Exception as error:
        what = f"{type(error).__name__}: {error}"
        raise UsageError(f"{_where(path, error)}: {what}") from None
    return module


def _where(path, error):
    """ "params.py line N": the last line of `path` that `error` went through."""
    frames = traceback.extract_tb(error.__traceback__)
    rows = [frame.lineno for frame in frames if Path(frame.filename) == path]
    return f"{path.name} line {rows[-1]}" if rows else path.name


def read_params(module):
    """{name: (value, comment)} for every parameter of the params module, in file
    order. Its comment is the comment lines right above it, then the one after it."""
    source = Path(module.__file__).read_text()
    alone, trailing = _comments(source)
    specs = {}
    for name, first, last in _assignments(source):
        if name not in specs and _is_param(name, vars(module)):
            comment = _comment(alone, trailing, first, last)
            specs[name] = (getattr(module, name), comment)
    return specs


def _comment(alone, trailing, first, last):
    """The comment lines right above rows `first`…`last`, up to a section's ruler,
    joined; then the first comment after code on those rows."""
    above, row = [], first - 1
    while row in alone and not alone[row].startswith(RULER):
        above.insert(0, alone[row])
        row -= 1
    parts = [" ".join(above)] if above else []
    parts += [trailing[r] for r in range(first, last + 1) if r in trailing][:1]
    return " — ".join(parts)


def _comments(source):
    """({row: text} of comment lines, {row: text} of comments after code)."""
    alone, trailing = {}, {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            is_alone = token.line.strip() == token.string.strip()
            (alone if is_alone else trailing)[token.start[0]] = text
    return alone, trailing


def _assignments(source):
    """(name, first row, last row) of each top-level `name = value`, in order."""
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                yield target.id, node.lineno, node.end_lineno


def _is_param(name, namespace):
    return (
        not name.startswith("_")
        and name in namespace
        and not isinstance(
            namespace[name], types.ModuleType | types.FunctionType | type
        )
    )


# --- the command line


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
        name, has_value, text = arg[2:].partition("=")
        if not has_value:
            if not args:
                raise UsageError(f"--{name} needs a value: --{name}=VALUE")
            text = args.pop(0)
        name = name.replace("-", "_")
        if name not in params or name == PER_DATASET:
            raise UsageError(_unknown(name, params))
        overrides[name] = _typed(name, text, _type_example(name, params))
    return overrides


def _unknown(name, params):
    names = [p for p in params if p != PER_DATASET]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean --{close[0]}?" if close else ""
    return f"unknown parameter --{name}.{hint} See `python main.py --help`."


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
    """Each combination of the swept values (tuples) as a plain overrides dict, the
    first swept name changing slowest; a single one when nothing is swept."""
    swept = {k: v for k, v in overrides.items() if isinstance(v, tuple)}
    for name, values in swept.items():
        if not values:
            raise UsageError(
                f"--{name}=() sweeps no value: give one value, or several separated "
                f"by commas (--{name}=1,4)"
            )
    return [
        {**overrides, **dict(zip(swept, values, strict=True))}
        for values in itertools.product(*swept.values())
    ]


def as_argument(name, value):
    """`--name=value` that parses back to `value`."""
    return f"--{name}={value!r}" if not isinstance(value, str) else f"--{name}={value}"


def resolve(params, overrides):
    """The run's parameters: params.py's values, then its preset's
    (utils/settings/presets.py), then the command line, then the dataset's
    defaults where a value is still None."""
    values = {name: default for name, (default, _) in params.items()}
    per_dataset = values.pop(PER_DATASET, {})
    preset = overrides.get("preset", values.get("preset"))
    if isinstance(preset, str):  # an unknown name is config.validate's to report
        values.update(presets.PRESETS.get(preset, {}))
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
        "A comma-separated list (--beta=1,4,16) is a sweep: one run per value.",
        "",
    ]
    for name, (default, comment) in params.items():
        if name == PER_DATASET:
            continue
        shown = repr(default)
        if default is None and any(name in d for d in per_dataset.values()):
            shown = _per_dataset(name, per_dataset)
        lines += textwrap.wrap(
            f"--{name} (default {shown})", HELP_WIDTH,
            initial_indent=" " * 2, subsequent_indent=" " * 6,
        )  # fmt: skip
        lines += textwrap.wrap(
            comment, HELP_WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6
        )
    lines += ["", "Presets (--preset=NAME; the command line still beats them):"]
    for name, values in presets.PRESETS.items():
        shown = (f"{k}={repr(v).replace(' ', '')}" for k, v in values.items())
        if name in presets.GRIDS:  # "tc: beta ∈ {1, 2, 4, 6, 8, 10}"
            shown = (
                f"{objective}: {k} ∈ {{{', '.join(f'{x:g}' for x in values)}}}"
                for objective, grid in presets.GRIDS[name].items()
                for k, values in grid.items()
            )
        text = f"{name}: {presets.DESCRIPTIONS[name]}: {', '.join(shown)}"
        lines += textwrap.wrap(
            text, HELP_WIDTH, initial_indent=" " * 2, subsequent_indent=" " * 6
        )
    return "\n".join(lines)


def _per_dataset(name, per_dataset):
    """ "32 for celeba, folder; 10 for dsprites, …": datasets grouped by value."""
    groups = {}
    for dataset, values in per_dataset.items():
        if name in values:
            groups.setdefault(repr(values[name]), []).append(dataset)
    if len(groups) == 1 and len(next(iter(groups.values()))) == len(per_dataset):
        return f"{next(iter(groups))} for every dataset"
    return "; ".join(f"{v} for {', '.join(d)}" for v, d in groups.items())


def parse_command_line(params, argv=None):
    """(resolved parameters, overrides). On --help, prints it and exits with code
    0; a bad argument raises UsageError."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(help_text(params))
        raise SystemExit(0)
    overrides = with_preset_grid(parse_overrides(argv, params), params)
    return resolve(params, overrides), overrides


def with_preset_grid(overrides, params):
    """`overrides` and, before them, the sweep of the preset's grid for the run's
    objective, for each name the command line does not give."""
    p = resolve(params, overrides)  # words are never swept: one preset, one objective
    grid = presets.grid_of(p.get("preset"), p.get("objective"))
    return {**{k: v for k, v in grid.items() if k not in overrides}, **overrides}
