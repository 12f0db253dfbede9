"""udesci: universal differential equations from SymPy to discovered, exported equations.

The public names are imported on first use (PEP 562), so ``import udesci`` and the
``udesci`` command start without loading torch, SymPy or pandas; ``udesci.fit``,
``from udesci import HybridModel`` and ``dir(udesci)`` work as if everything had
been imported up front.
"""

from __future__ import annotations

import importlib
import pkgutil

from .errors import ConfigError, DataError, ModelError, TrainingError, UdesciError

# public name -> the submodule it lives in
_SOURCES = {
    "Dataset": "data", "InputInterpolator": "data", "Trajectory": "data",
    "Candidate": "discovery", "Discovery": "discovery", "Library": "discovery", "RationalTerms": "discovery",
    "Selection": "discovery",
    "UnknownDiscovery": "discovery", "as_library": "discovery", "discover": "discovery",
    "load_json": "export", "parse_expression": "export", "save_json": "export", "to_latex": "export",
    "to_python": "export",
    "FUNCTION_TABLE": "lambdify", "torch_function": "lambdify",
    "Bounds": "model", "HybridModel": "model", "Learnable": "model", "Unknown": "model", "VectorField": "field",
    "MLP": "networks", "TermSum": "networks",
    "Solver": "solve", "integrate": "solve", "simulate": "solve",
    "FitResult": "train", "FullTrajectory": "train", "Shooting": "train", "TrainingWarning": "train",
    "WarmStart": "train", "fit": "train", "smooth_series": "train",
}  # fmt: skip


def _version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("udesci")
    except PackageNotFoundError:  # a source tree on sys.path without installation
        return "0+unknown"


def __getattr__(name: str):
    """Import a public name, or a submodule (``udesci.discovery``), on first access."""
    if name == "__version__":
        value = _version()
    elif name in _SOURCES:
        value = getattr(importlib.import_module(f".{_SOURCES[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), "__version__", *_SOURCES, *_SUBMODULES})


_SUBMODULES = frozenset(info.name for info in pkgutil.iter_modules(__path__))

__all__ = [
    "__version__",
    "Bounds",
    "Candidate",
    "ConfigError",
    "DataError",
    "Dataset",
    "discover",
    "Discovery",
    "export",
    "fit",
    "FitResult",
    "FullTrajectory",
    "FUNCTION_TABLE",
    "HybridModel",
    "InputInterpolator",
    "integrate",
    "Learnable",
    "Library",
    "as_library",
    "load_json",
    "MLP",
    "ModelError",
    "parse_expression",
    "RationalTerms",
    "save_json",
    "Selection",
    "Shooting",
    "simulate",
    "smooth_series",
    "Solver",
    "TermSum",
    "to_latex",
    "to_python",
    "torch_function",
    "TrainingError",
    "TrainingWarning",
    "Trajectory",
    "UdesciError",
    "Unknown",
    "UnknownDiscovery",
    "VectorField",
    "WarmStart",
]
