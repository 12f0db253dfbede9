"""Exception types raised by udesci.

Every error raised for bad user input is a subclass of :class:`ValueError` or
:class:`TypeError`, so callers can catch either the broad built-in type or the
specific udesci one.
"""

from __future__ import annotations


class UdesciError(Exception):
    """Base class of all udesci errors."""


class ModelError(UdesciError, ValueError):
    """A hybrid model specification is inconsistent (symbols, unknowns, parameters)."""


class DataError(UdesciError, ValueError):
    """Observed data do not have the expected shape, ordering or columns."""


class ConfigError(UdesciError, ValueError):
    """An option object, a config file or an exported file holds an invalid value."""


class TrainingError(UdesciError, RuntimeError):
    """Training could not continue (for example the loss became NaN or infinite)."""


def describe(value: object) -> str:
    """Short, readable description of a received value for error messages."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)}"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"
