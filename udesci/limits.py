"""Limits on what input may cost: the caps, how to raise them, and the checks files need when read.

Everything udesci reads from a person or a file — an expression string, a
pipeline TOML, a model JSON, a CSV, a command line — is checked against the
caps in :data:`LIMITS` before it can cost time or memory: expression size,
nesting and exponents (:func:`udesci.expr.parse_expression`), file sizes and
nesting (:func:`read_text`, :func:`check_nesting`), numbers beyond the float range
(:func:`check_numbers`, :func:`int_literal_error`), network and library sizes,
iteration counts and the like (:mod:`udesci.config`, :mod:`udesci.spec`,
:mod:`udesci.export.json_io`, :mod:`udesci.cli_common`).  A value over a cap is
a :class:`~udesci.errors.ConfigError` that names where the value came from
(file, table, key), the limit's name and value, and how to raise it.

Raising a limit deliberately
----------------------------
The caps are set by whoever runs udesci, not by the input: the environment
variable ``UDESCI_LIMITS`` holds comma-separated ``name=value`` pairs, e.g. ::

    UDESCI_LIMITS="network_width=8192,network_parameters=50_000_000" udesci run big.toml

Names are the keys of :data:`LIMITS`, values positive ints (``_`` allowed); a
limit may be lowered the same way.  The variable is read each time a limit is
checked, so it also works for the Python API and in worker processes.  A file
cannot raise its own limits (that would defeat them).

This module imports nothing heavy (no NumPy, SymPy or torch), so files can be
checked before any of those is imported.
"""

from __future__ import annotations

import functools
import os
import re
import reprlib
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

#: The environment variable that raises (or lowers) limits: ``"name=value,name=value"``.
ENV = "UDESCI_LIMITS"


@dataclass(frozen=True)
class Limit:
    """One cap on what input may cost.

    Attributes
    ----------
    default : int
        The cap unless ``UDESCI_LIMITS`` sets another.
    what : str
        What is counted, for messages (e.g. ``"hidden units of a network layer"``).
    """

    default: int
    what: str


_MIB = 1 << 20

#: Every cap by name (see the module docstring for how to change one).
LIMITS: dict[str, Limit] = {
    # expressions (udesci.expr)
    "expression_length": Limit(20_000, "characters in one expression"),
    "expression_depth": Limit(100, "nesting levels of an expression (operators, calls, unary signs)"),
    # 14000 bits is about 4200 digits: below the 4300 digits Python prints an int with (str(2**14000) works)
    "number_bits": Limit(14_000, "bits of an exact number an expression computes or expands to"),
    "exponent": Limit(1000, "magnitude of a numeric exponent in an expression"),
    "expansion_terms": Limit(10_000, "terms of an expression once expanded"),
    # files
    "file_bytes": Limit(64 * _MIB, "bytes of a TOML or JSON file"),
    "file_depth": Limit(32, "nesting levels of tables and arrays in a TOML or JSON file"),
    "data_bytes": Limit(1024 * _MIB, "bytes of a data (CSV) file"),
    # models
    "states": Limit(100, "states (equations) of a model"),
    "names": Limit(1000, "entries of one table of names (parameters, inputs, unknowns, derived columns, ...)"),
    "network_width": Limit(4096, "hidden units of a network layer"),
    "network_depth": Limit(16, "hidden layers of a network"),
    "network_parameters": Limit(10_000_000, "weights and biases of one network"),
    # discovery
    "library_degree": Limit(20, "polynomial degree of a candidate library"),
    "library_terms": Limit(500, "terms of one candidate library"),
    "bootstrap": Limit(10_000, "bootstrap replicates"),
    "candidates": Limit(10_000, "candidates shortlisted or rescored"),
    "thresholds": Limit(10_000, "points of the threshold sweep"),
    "sweeps": Limit(100, "backfitting sweeps over the unknowns"),
    "joint": Limit(32, "candidates per unknown combined in the joint refit"),
    # training and solving
    "iterations": Limit(1_000_000, "iterations of one training or refit stage"),
    "substeps": Limit(1000, "solver substeps per observation interval"),
    "max_steps": Limit(10_000_000, "solver steps of one integration"),
    "threads": Limit(1024, "torch threads"),
    # command line
    "runs": Limit(100_000, "runs per noise level of a study"),
    "workers": Limit(1024, "parallel workers"),
}

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40


def shown(value) -> str:
    """``repr(value)`` shortened for messages (long strings, numbers and containers elided).

    Parameters
    ----------
    value : object

    Returns
    -------
    str
        ``repr(value)`` for short values; at most a few dozen characters otherwise, nested
        containers cut after a few levels (so even a deeply nested value is safe to show).
    """
    return _REPR.repr(value)


@functools.lru_cache(maxsize=8)
def _overrides(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in LIMITS:
            raise ConfigError(
                f"{ENV}: expected comma-separated name=value pairs with names among {sorted(LIMITS)}, "
                f"received {shown(item.strip())}."
            )
        try:
            number = int(value.strip())
        except ValueError:
            number = 0
        if number < 1:
            raise ConfigError(f"{ENV}: {name}: expected a positive int, received {shown(value.strip())}.")
        out[name] = number
    return out


def current(name: str) -> int:
    """The cap in effect: ``UDESCI_LIMITS``'s value for ``name``, else the default.

    Parameters
    ----------
    name : str
        A key of :data:`LIMITS`.

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        If ``UDESCI_LIMITS`` is malformed (names the variable and the bad entry).
    KeyError
        If ``name`` is not a limit (a programming error).
    """
    default = LIMITS[name].default
    return _overrides(os.environ.get(ENV, "")).get(name, default)


def raise_hint(name: str) -> str:
    """How to raise limit ``name`` deliberately, for messages."""
    return f"to raise it deliberately, set the environment variable {ENV}='{name}=<n>'"


def note(name: str) -> str:
    """``"the limit {name} = {cap} ({what}); to raise it deliberately, ..."``, for messages."""
    return f"the limit {name} = {current(name)} ({LIMITS[name].what}); {raise_hint(name)}"


def too_large(name: str, where: str, received) -> ConfigError:
    """The error for a value over limit ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`LIMITS`.
    where : str
        Where the value came from, e.g. ``"pipeline.toml: [model] width"``.
    received : object
        The value, or a description of it (e.g. ``"a network of 25015001 parameters"``).

    Returns
    -------
    ConfigError
        ``"{where}: received {received}, over the limit {name} = {cap} ({what}); to raise it
        deliberately, set the environment variable UDESCI_LIMITS='{name}=<n>'."`` (see :func:`note`).
    """
    text = received if isinstance(received, str) else shown(received)
    return ConfigError(f"{where}: received {text}, over {note(name)}.")


def check(name: str, value: int, where: str) -> int:
    """``value`` if it is at most the cap ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`LIMITS`.
    value : int
    where : str
        Where the value came from, for the message.

    Returns
    -------
    int
        ``value``.

    Raises
    ------
    ConfigError
        If ``value`` is over the cap (see :func:`too_large`).
    """
    if value > current(name):
        raise too_large(name, where, value)
    return value


def read_text(path, where: str | None = None) -> str:
    """The text of a UTF-8 file of at most ``file_bytes`` bytes.

    Parameters
    ----------
    path : str or PathLike
    where : str, optional
        How the file is named in messages (default: the path as given).

    Returns
    -------
    str

    Raises
    ------
    ConfigError
        If the file is larger than the limit ``file_bytes`` or is not valid UTF-8
        (the message names the file and, for bad UTF-8, the byte offset).
    OSError
        If the file cannot be read (missing, a folder, no permission).
    """
    name = os.fspath(path) if where is None else where
    with open(path, "rb") as fh:
        data = fh.read(current("file_bytes") + 1)
    if len(data) > current("file_bytes"):
        raise too_large("file_bytes", name, f"a file of more than {current('file_bytes')} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{name}: not a UTF-8 text file (byte {err.start}: {shown(data[err.start : err.start + 4])}); "
            "expected UTF-8 text."
        ) from None


def check_file_size(path: Path, name: str, where: str) -> None:
    """Check that the file ``path`` has at most the limit ``name`` bytes (``data_bytes`` for data files).

    Raises
    ------
    ConfigError
        If it is larger (the message starts with ``where``).
    """
    size = Path(path).stat().st_size
    if size > current(name):
        raise too_large(name, where, f"a file of {size} bytes")


def check_nesting(data, where: str) -> None:
    """Check that the tables and arrays of a parsed file nest at most ``file_depth`` levels.

    The walk is iterative, so any depth is safe to check; values nested deeper than the
    limit would make later steps (copying, printing) recurse without bound.

    Parameters
    ----------
    data : object
        Parsed TOML or JSON (dicts, lists and scalars).
    where : str
        The file, for the message.

    Raises
    ------
    ConfigError
        If a value sits deeper than the limit.
    """
    cap = current("file_depth")
    stack = [(data, 1)]  # the file's top-level table is level 1
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > cap:
            raise too_large("file_depth", where, f"tables or arrays nested more than {cap} levels deep")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


#: The largest float; an int beyond it in a file cannot be used as a number anywhere.
FLOAT_MAX = sys.float_info.max


def key_path(keys) -> str:
    """``keys`` (table keys and array indices, outermost first) as one dotted name for messages.

    Parameters
    ----------
    keys : sequence of str or int

    Returns
    -------
    str
        E.g. ``"model.parameters.alpha"``, ``"networks.U.layers[0].bias[2]"``; keys that are not
        identifiers are quoted (``'a b'``).
    """
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            name = key if key.isidentifier() else shown(key)
            out += f".{name}" if out else name
    return out or "(top level)"


def check_numbers(data, where: str) -> None:
    """Check that no int in a parsed file lies beyond the float range (about 1.8e308).

    Every number udesci reads from a file is used as a float or is an int with a far smaller
    cap (sizes, seeds), so a larger int is never meaningful; converting it would raise
    Python's OverflowError deep inside (``float(10**400)``, ``torch.as_tensor``).

    Parameters
    ----------
    data : object
        Parsed TOML or JSON (dicts, lists and scalars), nested at most ``file_depth`` levels
        (see :func:`check_nesting`; the walk is iterative).
    where : str
        The file (or source), for the message.

    Raises
    ------
    ConfigError
        For the first such int; the message names the key (:func:`key_path`) and the int's
        number of digits.
    """
    stack = [((), data)]
    while stack:
        keys, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*keys, str(k)), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*keys, i), v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > FLOAT_MAX:
            digits = len(str(abs(value))) if value.bit_length() < 14_000 else "thousands of"
            raise ConfigError(
                f"{where}: key {key_path(keys)}: received an integer of {digits} digits, beyond the float "
                f"range; expected a number of magnitude at most {FLOAT_MAX:.4g}."
            )


def int_literal_error(text: str, where: str) -> ConfigError:
    """The error for a file whose integer literal is too long for Python to convert.

    Python refuses to convert decimal text of more than ``sys.get_int_max_str_digits()`` digits
    (4300 by default) to an int, so ``json.loads``/``tomllib.loads`` raise ValueError for such a
    literal; call this for that ValueError.

    Parameters
    ----------
    text : str
        The file's text.
    where : str
        The file, for the message.

    Returns
    -------
    ConfigError
        Naming the file, the line and column of the first literal that long, and the limit.
    """
    cap = sys.get_int_max_str_digits()
    found = re.search(rf"(?<![\d.])\d{{{cap + 1},}}(?![\d.eE])", text) if cap else None
    at = ""
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
        at = f" at line {line}, column {column} ({found.end() - found.start()} digits)"
    return ConfigError(
        f"{where}: an integer literal{at} is longer than the {cap} digits Python converts "
        "(sys.get_int_max_str_digits()); expected a number of magnitude at most "
        f"{FLOAT_MAX:.4g} (at most 309 digits)."
    )


__all__ = [
    "ENV", "FLOAT_MAX", "LIMITS", "Limit", "check", "check_file_size", "check_nesting", "check_numbers", "current",
    "int_literal_error", "key_path", "note", "raise_hint", "read_text", "shown", "too_large",
]  # fmt: skip
