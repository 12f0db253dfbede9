"""udesci: universal differential equations from SymPy to discovered, exported equations."""

from . import export
from .data import Dataset, InputInterpolator, Trajectory
from .discovery import Candidate, Discovery, Library, Selection, UnknownDiscovery, discover
from .errors import ConfigError, DataError, ModelError, TrainingError, UdesciError
from .export import load_json, parse_expression, save_json, to_latex, to_python
from .field import VectorField
from .lambdify import FUNCTION_TABLE, torch_function
from .model import HybridModel, Learnable, Unknown
from .networks import MLP, TermSum
from .solve import Solver, integrate, simulate
from .train import FitResult, FullTrajectory, Shooting, TrainingWarning, WarmStart, fit, smooth_series

try:  # the installed distribution's version (pyproject.toml is the one place it is written)
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("udesci")
except PackageNotFoundError:  # a source tree on sys.path without installation
    __version__ = "0+unknown"

__all__ = [
    "__version__",
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
    "load_json",
    "MLP",
    "ModelError",
    "parse_expression",
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
