"""Limits on what input may cost: the caps, how to raise them, and the checks files need when read.

Everything udesci reads from a person or a file — an expression string, a
pipeline TOML, a model JSON, a CSV, a command line — is checked against the
caps in :data:`LIMITS` before it can cost time or memory: expression size,
nesting and exponents (:func:`udesci.expr.parse_expression`), file sizes and
nesting (:func:`read_text`, :func:`check_nesting`), network and library sizes,
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
import reprlib
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


__all__ = [
    "ENV", "LIMITS", "Limit", "check", "check_file_size", "check_nesting", "current", "note", "raise_hint",
    "read_text", "shown", "too_large",
]  # fmt: skip
