"""udesci: universal differential equations from SymPy to discovered, exported equations."""

from . import export
from .data import Dataset, InputInterpolator, Trajectory
from .discovery import Candidate, Discovery, Library, Selection, UnknownDiscovery, discover
from .errors import ConfigError, DataError, ModelError, TrainingError, UdesciError
from .export import load_json, parse_expression, save_json, to_latex, to_python
from .lambdify import FUNCTION_TABLE, torch_function
from .model import HybridModel, Learnable, Unknown, VectorField
from .networks import MLP, TermSum
from .solve import Solver, integrate, simulate
from .train import FitResult, FullTrajectory, Shooting, TrainingWarning, WarmStart, fit, smooth_series

__version__ = "0.1.0"

__all__ = [
    "Candidate", "ConfigError", "Discovery", "Library", "Selection", "TermSum", "UnknownDiscovery", "discover",
    "export", "load_json", "parse_expression", "save_json", "to_latex", "to_python", "DataError", "Dataset", "FitResult", "FullTrajectory", "FUNCTION_TABLE", "HybridModel",
    "InputInterpolator", "Learnable", "MLP", "ModelError", "Shooting", "Solver", "TrainingError",
    "TrainingWarning", "Trajectory", "UdesciError", "Unknown", "VectorField", "WarmStart", "__version__",
    "fit", "integrate", "simulate", "smooth_series", "torch_function",
]  # fmt: skip
