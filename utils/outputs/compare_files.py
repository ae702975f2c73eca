"""A run folder's files as the compare page reads them: each read once, here, into
a well-typed value or into why it cannot be. Any of them can hold any bytes (a
hand edit, a full disk, another program's file): a bad file costs its own cells,
and the page says which file it was and why (utils.outputs.compare_page).
"""

import csv
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# log.csv can hold 100,000 rows, which take seconds to parse: its last rows are
# all the page needs, and 64 KiB holds dozens even with 100 latents.
TAIL_BYTES = 1 << 16
FINAL_COLUMNS = ("step", "reconstruction_loss", "kl")
# The deepest a run's JSON goes is 7 (metrics.json's details). A limit of our own,
# not Python's recursion limit, which json.loads, json.dumps and repr each reach
# at a depth that depends on how deep in the stack they are called.
MAX_DEPTH = 100
# What a field holds, as the page reads it: these names, or a dict for an object
# whose listed fields are checked in turn ("*": each of its fields).
NUMBER, TEXT = "a number", "a string"


@dataclass(frozen=True)
class Read:
    """A file as read: its contents, or why they cannot be used."""

    value: dict  # {} when the file is absent or unreadable
    problem: str = ""  # why it is unreadable; "" when it is fine, or absent


class Malformed(Exception):
    """A file's contents cannot be read as the page reads them; says why."""


def as_number(value) -> float | None:
    """`value` as a finite float, or None (not a number, NaN, ±inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond a float's range
        return None
    return number if math.isfinite(number) else None


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {int: NUMBER, float: NUMBER, str: TEXT, list: "a list", dict: "an object"}
    return kinds[type(value)]


def _integer(text: str) -> int:
    # RFC 8259 (section 6) expects JSON numbers to interoperate within a double's
    # range, and the page computes with floats: an integer beyond it is no number.
    # Its digits are counted first, so int() never meets Python's 4300-digit limit.
    if len(text.lstrip("-")) <= 309 and abs(number := int(text)) <= sys.float_info.max:
        return number
    raise Malformed(f"an integer too large for a float ({text[:12]}…)")


def _check_depth(value) -> None:
    """Without recursion: the point is not to need it."""
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [
            inner
            for v in level
            if isinstance(v, list | dict)
            for inner in (v.values() if isinstance(v, dict) else v)
        ]
        if not level:
            return
    raise Malformed(f"nested deeper than {MAX_DEPTH} levels")


def _check(value, fields, where: str) -> None:
    """Raise Malformed if `value` (at `where`) is not what `fields` says."""
    if value is None:  # null: not recorded, as if absent
        return
    if not isinstance(fields, dict):
        if _kind(value) != fields:
            raise Malformed(f"{where} is {_kind(value)}, not {fields}")
        return
    if not isinstance(value, dict):
        raise Malformed(f"{where} is {_kind(value)}, not an object")
    for name, inner in fields.items():
        for key in value if name == "*" else [name] * (name in value):
            _check(value[key], inner, f"{where}.{key}")


def parse_json(data: bytes, fields: dict) -> dict:
    """The JSON object in `data`, its `fields` checked ({name: NUMBER, TEXT or an
    object's fields}; null and absent fields pass). Raises Malformed."""
    if not data.strip():
        raise Malformed("empty")
    try:
        text = data.decode()
    except UnicodeDecodeError as error:
        raise Malformed(f"not UTF-8 text (at byte {error.start})") from None
    try:
        value = json.loads(text, parse_int=_integer)
    except RecursionError:
        raise Malformed(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise Malformed(f"not JSON ({error})") from None
    if not isinstance(value, dict):
        raise Malformed(f"{_kind(value)}, not a JSON object")
    _check_depth(value)
    for name, inner in fields.items():
        if name in value:
            _check(value[name], inner, name)
    return value


def _cannot_open(error: OSError) -> str:
    if isinstance(error, IsADirectoryError):
        return "a directory, not a file"
    return f"cannot be read ({error.strerror or error})"


def read_json(path: Path, fields: dict) -> Read:
    """`path`'s JSON object (parse_json), or {} and why not; {} if it is absent."""
    try:
        return Read(parse_json(path.read_bytes(), fields))
    except FileNotFoundError:
        return Read({})
    except OSError as error:
        return Read({}, _cannot_open(error))
    except Malformed as error:
        return Read({}, str(error))


def _last_numbers(header: str, rows: list[str], columns) -> dict[str, float]:
    """{column: its last finite value} in the `rows` (oldest first) of a CSV log
    under `header`. Raises Malformed."""
    found = {}
    try:
        names = next(csv.reader([header]), [])
        if "step" not in names:
            raise Malformed("no step column in its header")
        for row in csv.reader(reversed(rows)):
            for name, text in zip(names, row, strict=False):
                if name not in columns or name in found or not text:
                    continue  # an empty cell: a column that row did not log
                try:
                    number = float(text)
                except ValueError:
                    raise Malformed(
                        f"{name} holds {text[:20]!r}, not a number"
                    ) from None
                if math.isfinite(number):  # a NaN loss: the row before's
                    found[name] = number
    except csv.Error as error:
        raise Malformed(f"not CSV ({error})") from None
    return found


def read_log(path: Path, columns=FINAL_COLUMNS) -> Read:
    """{column: its last finite value} in a log CSV, from its header and tail; or {}
    and why not; {} if it is absent."""
    try:
        with path.open("rb") as f:
            header, body = f.readline(), f.tell()
            start = max(body, os.fstat(f.fileno()).st_size - TAIL_BYTES)
            f.seek(start)
            tail = f.read()
    except FileNotFoundError:
        return Read({})
    except OSError as error:
        return Read({}, _cannot_open(error))
    # Only rows ended by a newline are whole: a kill can cut the last one anywhere,
    # and the seek may have cut the first (and a character in it).
    lines = tail.split(b"\n")[int(start > body) : -1]
    try:
        if not header.strip():
            raise Malformed("empty")
        try:
            text, rows = header.decode(), [line.decode() for line in lines]
        except UnicodeDecodeError:
            raise Malformed("not UTF-8 text") from None
        return Read(_last_numbers(text.rstrip("\r\n"), rows, columns))
    except Malformed as error:
        return Read({}, str(error))
