"""Pipeline config files (``udesci run pipeline.toml``): schema, validation and loading.

A TOML file describes a whole run — data, equations with unknown functions,
parameters, training, discovery, evaluation and output — this module validates
it (:func:`load_config`) and turns it into data and options (:func:`load_frame`,
:func:`training_options`, :func:`discovery_options`, :func:`expected_terms`);
:func:`udesci.runner.run_config` executes it.  Every key is validated; unknown keys are
rejected (typo protection) and every error names the file, the table and the
key, e.g. ``pipeline.toml: [training.shooting] iterations: expected an int >= 0,
received 'many'``.  Expression strings (equations, derived columns, extra
library terms) are parsed only by :func:`udesci.export.parse_expression`, which
never evaluates code.  The file must be UTF-8 text; only validation runs before
the data is read (this module imports neither torch nor SymPy at import time, so
``udesci run`` reports a bad key at once).

Limits: what a file may ask for is capped — the file's size and nesting, the
number of states, names in a table, network ``width``/``depth`` and parameter
count, library ``degree`` and number of terms, iteration counts, ``bootstrap``,
``shortlist``/``rescore``, ``thresholds``, ``sweeps``, ``joint``, solver
``substeps``/``max_steps``, ``threads``, the data file's size and the size of
every expression.  A value over a cap is an error naming the file, the table,
the key and the limit, e.g. ``pipeline.toml: [model] width: received 100000,
over the limit network_width = 4096 (hidden units of a network layer); to raise
it deliberately, set the environment variable UDESCI_LIMITS='network_width=<n>'``.
The caps and their defaults are :data:`udesci.limits.LIMITS`; they are raised
(deliberately, by whoever runs udesci) with the environment variable
``UDESCI_LIMITS="name=value,..."``, never by the file itself.  ``seed`` must be
an int in ``[0, 2**63)`` (a fixed range, not a limit).

Schema (all paths are relative to the TOML file)::

    title = "Lotka–Volterra"          # optional
    seed = 0                          # optional, default 0

    [data]
    file = "../data/lv.csv"           # CSV ('#' comment lines allowed)
    time = "t"                        # time column
    states = ["x", "y"]               # observed state columns (named like the states)
    inputs = []                       # measured input columns (optional)
    trajectory = "run"                # column identifying trajectories (optional)
    interpolation = "linear"          # or "cubic" (inputs)
    train = [0.0, 3.0]                # training time window (optional, default all)
    test = [3.0, 6.0]                 # held-out time window (optional)
    [data.derive]                     # new columns from safe expressions of columns (optional, in order)
    H = "Hare / 10"

    [model]
    time = "t"                        # time symbol in the equations (default "t")
    width = 32                        # network size (defaults 32, 2, "tanh")
    depth = 2
    activation = "tanh"
    [model.equations]                 # one right-hand side per state
    x = "alpha*x + U(x, y)"
    y = "-delta*y + V(x, y)"
    [model.parameters]                # numbers (fixed) or {value = ..., learnable = true}
    alpha = 1.3
    delta = { value = 1.8, learnable = true }
    [model.unknowns]                  # optional: declared arguments of each unknown function;
    U = ["x", "y"]                    # without this table unknowns are detected from calls
    V = ["x", "y"]
    [model.bounds]                    # optional: each state's declared domain [lower, upper] (closed
    x = [0, inf]                      # sides; inf or -inf for an open one): HybridModel(bounds=...),
    y = [0, 100]                      # kept by training, discovery and plots

    [training]                        # stages: tables present (or defaults); enabled = false drops one
    threads = 1
    [training.initial]                # optional: starting values of the trained initial states, by state
    S = 0.99                          # (a number, or a list with one per trajectory)
    [training.warm_start]             # iterations, lr, smoothing, lbfgs, enabled
    [training.shooting]               # iterations, lr, segment_length, continuity, lbfgs, solver, enabled
    [training.full]                   # iterations, lr, lbfgs, learn_initial, solver, enabled (off by default)
    [training.shooting.solver]        # method, rtol, atol, adjoint, substeps, max_steps

    [discovery]                       # enabled (default: when there are unknowns), degree, constant, trig,
    degree = 2                        # rational (true or a table of powers, multiples, times), extra
                                      # (list of expressions), criterion, parsimony, thresholds,
    criterion = "bic"                 # exhaustive, shortlist, refine_iterations, sweeps, rescore, joint,
                                      # bootstrap, refit, refit_iterations
    [discovery.libraries.U]           # per-unknown libraries (degree, constant, trig, rational, extra)

    [evaluation]
    start = "fit"                     # held-out prediction continues the fit ("fit") or restarts
                                      # from the observed state at the test window's start ("observed")

    [output]
    dir = "../out/lv"                 # default: out/<file stem> in the current directory
    report = true
    plots = true
    export = ["json", "latex", "python"]

    [fast]                            # overrides merged into [training]/[discovery] by --fast
    [fast.training.shooting]
    iterations = 50

    [check]                           # optional; a failed check makes `udesci run` exit with 1
    max_train_rmse = 0.5              # per state, data units
    max_test_rmse = 1.0
    [check.terms]                     # exact discovered structure
    U = ["x*y"]
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path

from . import limits
from .errors import ConfigError, DataError
from .limits import shown

#: Seeds are ints in [0, SEED_END) (what NumPy and torch both accept).
SEED_END = 2**63

# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


class _Where:
    """Location of a key in a config file, for error messages."""

    def __init__(self, file: str, section: str):
        self.file, self.section = file, section

    def prefix(self, key: str | None = None) -> str:
        sec = f"[{self.section}]" if self.section else "(top level)"
        return f"{self.file}: {sec}" + (f" {key}" if key is not None else "")

    def error(self, key: str, expected: str, value) -> ConfigError:
        return ConfigError(f"{self.prefix(key)}: expected {expected}, received {shown(value)}.")

    def sub(self, name: str) -> _Where:
        return _Where(self.file, f"{self.section}.{name}" if self.section else name)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(minimum: int = 0, limit: str | None = None):
    """An int >= ``minimum`` (and at most the cap ``limit`` of :mod:`udesci.limits`, if given)."""

    def check(v, w: _Where, key: str):
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise w.error(key, f"an int >= {minimum}", v)
        if limit is not None:
            limits.check(limit, v, w.prefix(key))
        return v

    return check


def check_seed(value, where: str) -> int:
    """A seed: an int in ``[0, 2**63)``.

    Parameters
    ----------
    value : object
    where : str
        What holds the seed, for the message (e.g. ``"--seed"``, ``"pipeline.toml: (top level) seed"``).

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        For a value that is not an int, is negative or is ``2**63`` or more.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: expected an int >= 0, received {shown(value)}.")
    if value >= SEED_END:
        raise ConfigError(f"{where}: expected an int < 2**63 = {SEED_END}, received {shown(value)}.")
    return value


def _seed():
    def check(v, w, key):
        return check_seed(v, w.prefix(key))

    return check


def check_output_dir(path, where: str) -> Path:
    """An output folder that exists as a folder or can be created.

    Parameters
    ----------
    path : str or PathLike
    where : str
        What named the folder, for the message (e.g. ``"--out"``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ConfigError
        If ``path`` or one of its parents exists and is not a folder (nothing could be
        written there); the message names ``where`` and the path.
    """
    out = Path(path)
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is an existing file" if folder == out else f"lies inside {os.fspath(folder)!r}, a file"
                raise ConfigError(
                    f"{where}: {os.fspath(out)!r} {what}; expected a folder (existing or new) to write into."
                )
            break
    return out


def _pos():
    def check(v, w, key):
        if not _is_num(v) or not math.isfinite(v) or v <= 0:
            raise w.error(key, "a positive number", v)
        return float(v)

    return check


def _nonneg():
    def check(v, w, key):
        if not _is_num(v) or not math.isfinite(v) or v < 0:
            raise w.error(key, "a number >= 0", v)
        return float(v)

    return check


def _num():
    def check(v, w, key):
        if not _is_num(v) or not math.isfinite(v):
            raise w.error(key, "a finite number", v)
        return float(v)

    return check


def _bool():
    def check(v, w, key):
        if not isinstance(v, bool):
            raise w.error(key, "true or false", v)
        return v

    return check


def _str():
    def check(v, w, key):
        if not isinstance(v, str) or not v:
            raise w.error(key, "a non-empty string", v)
        return v

    return check


def _ident():
    def check(v, w, key):
        if not isinstance(v, str) or not v.isidentifier() or v.startswith("__"):
            raise w.error(key, "an identifier (letters, digits, _; not starting with a digit or __)", v)
        return v

    return check


def _choice(*options):
    def check(v, w, key):
        if v not in options:
            raise w.error(key, f"one of {list(options)}", v)
        return v

    return check


def _list_of(item, *, min_len: int = 0, unique: bool = True, limit: str = "names"):
    """A list of ``item`` values, at least ``min_len`` and at most the cap ``limit`` long."""

    def check(v, w, key):
        if not isinstance(v, list) or len(v) < min_len:
            what = "a list" + (f" of at least {min_len} entries" if min_len else "")
            raise w.error(key, what, v)
        limits.check(limit, len(v), w.prefix(key) + " (entries)")
        out = [item(x, w, f"{key}[{i}]") for i, x in enumerate(v)]
        if unique and len(set(map(str, out))) != len(out):
            raise w.error(key, "a list without duplicates", v)
        return out

    return check


def _window():
    def check(v, w, key):
        if not isinstance(v, list) or len(v) != 2 or not all(_is_num(x) and math.isfinite(x) for x in v):
            raise w.error(key, "a [start, end] pair of numbers", v)
        if not v[0] < v[1]:
            raise w.error(key, "start < end", v)
        return [float(v[0]), float(v[1])]

    return check


def _table(v, w: _Where, key: str | None = None, limit: str | None = None) -> dict:
    """``v`` if it is a table (of at most the cap ``limit`` entries, if given)."""
    if not isinstance(v, dict):
        raise ConfigError(f"{w.prefix(key)}: expected a table, received {shown(v)}.")
    if limit is not None:
        limits.check(limit, len(v), w.prefix(key) + " (entries)")
    return v


def _validate(raw, w: _Where, spec: dict, required=()) -> dict:
    """Check ``raw`` (a table) against ``spec`` {key: (checker, default)}; reject unknown keys."""
    raw = _table(raw, w)
    for key in raw:
        if key not in spec:
            close = difflib.get_close_matches(str(key)[:100], list(spec), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            named = key if len(str(key)) <= 60 else shown(key)
            raise ConfigError(f"{w.prefix(named)}: unknown key{hint}; expected one of {sorted(spec)}.")
    for key in required:
        if key not in raw:
            raise ConfigError(f"{w.prefix(key)}: missing required key.")
    out = {}
    for key, (check, default) in spec.items():
        if key in raw:
            out[key] = check(raw[key], w, key) if check is not None else raw[key]
        else:
            out[key] = copy.deepcopy(default)
    return out


def _sub_table(spec: dict, required=()):
    def check(v, w, key):
        return _validate(v, w.sub(key), spec, required)

    return check


# ----------------------------------------------------------------------------------------------
# schema
# ----------------------------------------------------------------------------------------------

SOLVER = {
    "method": (_choice("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "rk4", "midpoint", "euler"), None),
    "rtol": (_pos(), None),
    "atol": (_pos(), None),
    "adjoint": (_bool(), None),
    "substeps": (_int(1, "substeps"), None),
    "max_steps": (_int(1, "max_steps"), None),
}
WARM_START = {
    "enabled": (_bool(), True),
    "iterations": (_int(0, "iterations"), None),
    "lr": (_pos(), None),
    "smoothing": (_pos(), None),
    "lbfgs": (_int(0, "iterations"), None),
}
SHOOTING = {
    "enabled": (_bool(), True),
    "iterations": (_int(0, "iterations"), None),
    "lr": (_pos(), None),
    "segment_length": (_int(1), None),
    "continuity": (_pos(), None),
    "lbfgs": (_int(0, "iterations"), None),
    "solver": (_sub_table(SOLVER), None),
}
FULL = {
    "enabled": (_bool(), True),
    "iterations": (_int(0, "iterations"), None),
    "lr": (_pos(), None),
    "lbfgs": (_int(0, "iterations"), None),
    "learn_initial": (_bool(), None),
    "solver": (_sub_table(SOLVER), None),
}


def _initial():
    """``[training.initial]``: a state's starting value for the trained initial states, one number or
    one per trajectory (:func:`udesci.fit`'s ``initial``; most useful for a state no column observes)."""

    def check(v, w, key):
        if not isinstance(v, dict) or not v:
            raise w.error(key, "a table state = number (or a list of numbers, one per trajectory)", v)
        out = {}
        for name, value in v.items():
            values = value if isinstance(value, list) else [value]
            if not values or not all(_is_num(x) and math.isfinite(x) for x in values):
                raise w.sub(key).error(name, "a finite number or a non-empty list of finite numbers", value)
            out[name] = [float(x) for x in values] if isinstance(value, list) else float(value)
        return out

    return check


TRAINING = {
    "threads": (_int(1, "threads"), 1),
    "initial": (_initial(), None),
    "warm_start": (_sub_table(WARM_START), None),
    "shooting": (_sub_table(SHOOTING), None),
    "full": (_sub_table(FULL), None),
}


def _rational():
    """``true``/``false``, or a table of :class:`~udesci.discovery.library.RationalTerms` options
    (``powers``, ``multiples``, ``times``), checked now so that errors name the key."""

    def check(v, w, key):
        from .discovery.library import RationalTerms

        if isinstance(v, bool):
            return v
        if not isinstance(v, dict):
            raise w.error(key, "true, false or a table of powers, multiples, times", v)
        bad = sorted(set(v) - {"powers", "multiples", "times"})
        if bad:
            raise ConfigError(f"{w.prefix(key)}: unknown options {bad}; expected some of powers, multiples, times.")
        try:
            RationalTerms(**{k: tuple(x) if isinstance(x, list) else x for k, x in v.items()})
        except ConfigError as err:
            raise ConfigError(f"{w.prefix(key)}: {err}") from None
        return {k: tuple(x) if isinstance(x, list) else x for k, x in v.items()}

    return check


LIBRARY = {
    "degree": (_int(0, "library_degree"), None),
    "constant": (_bool(), None),
    "trig": (_bool(), None),
    "rational": (_rational(), None),
    "extra": (_list_of(_str(), limit="library_terms"), None),
}
DISCOVERY = {
    "enabled": (_bool(), None),
    **LIBRARY,
    "criterion": (_choice("bic", "aic"), None),
    "parsimony": (_nonneg(), None),
    "thresholds": (_int(2, "thresholds"), None),
    "exhaustive": (_int(0), None),  # bounded by itself: exhaustive search is only done on libraries of <= 15 terms
    "shortlist": (_int(1, "candidates"), None),
    "refine_iterations": (_int(1, "iterations"), None),
    "sweeps": (_int(1, "sweeps"), None),
    "rescore": (_int(1, "candidates"), None),
    "joint": (_int(1, "joint"), None),
    "bootstrap": (_int(0, "bootstrap"), None),
    "refit": (_bool(), True),
    "refit_iterations": (_int(1, "iterations"), None),
    "libraries": (None, None),  # validated separately (keys are unknown names)
}
DATA = {
    "file": (_str(), None),
    "time": (_str(), None),
    "states": (_list_of(_ident(), min_len=1, limit="states"), None),
    "inputs": (_list_of(_ident()), []),
    "trajectory": (_str(), None),
    "interpolation": (_choice("linear", "cubic"), "linear"),
    "train": (_window(), None),
    "test": (_window(), None),
    "derive": (None, None),
}
MODEL = {
    "time": (_ident(), "t"),
    "width": (_int(1, "network_width"), 32),
    "depth": (_int(1, "network_depth"), 2),
    "activation": (_choice("tanh", "relu", "gelu", "silu", "softplus", "sigmoid", "elu"), "tanh"),
    "equations": (None, None),
    "parameters": (None, None),
    "unknowns": (None, None),
    "bounds": (None, None),  # validated in build_model (keys are states)
}
EVALUATION = {"start": (_choice("fit", "observed"), "fit")}
OUTPUT = {
    "dir": (_str(), None),
    "report": (_bool(), True),
    "plots": (_bool(), True),
    "export": (_list_of(_choice("json", "latex", "python")), ["json", "latex", "python"]),
}
CHECK = {"max_train_rmse": (_pos(), None), "max_test_rmse": (_pos(), None), "terms": (None, None)}
TOP = {
    "title": (_str(), None),
    "seed": (_seed(), 0),
    "data": (None, None),
    "model": (None, None),
    "training": (None, {}),
    "discovery": (None, {}),
    "evaluation": (None, {}),
    "output": (None, {}),
    "fast": (None, None),
    "check": (None, None),
}
# used by --fast when the file has no [fast] table
FAST_DEFAULTS = {
    "training": {
        "warm_start": {"iterations": 150},
        "shooting": {"iterations": 100},
        "full": {"iterations": 10, "lbfgs": 0},
    },
    "discovery": {
        "sweeps": 1,
        "shortlist": 2,
        "refine_iterations": 4,
        "exhaustive": 1,
        "thresholds": 10,
        "refit": False,
    },
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _cap(base: dict, caps: dict) -> dict:
    """Fast-mode defaults: lower iteration counts to the caps, set the rest."""
    out = dict(base)
    for k, v in caps.items():
        if isinstance(v, dict):
            current = out.get(k)
            if current is None and k == "full":
                continue  # a stage not configured stays off
            if current is not None and not isinstance(current, dict):
                continue  # not a table: the validation of the section names it
            out[k] = _cap(current or {}, v)
        elif isinstance(v, int) and not isinstance(v, bool) and isinstance(out.get(k), int) and "iter" in k:
            out[k] = min(out[k], v)
        else:
            out[k] = v
    return out


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------


class PipelineConfig:
    """A validated pipeline config.

    Attributes
    ----------
    path : pathlib.Path
        The TOML file.
    name : str
        How the file is named in messages (the path as given).
    text : str
        The file's text (for reports).
    seed : int
    title : str
    data, model, training, discovery, evaluation, output, check : dict
        Validated tables (defaults filled in).
    fast : bool
        Whether fast-mode overrides were applied.
    where : object
        Locates keys of this file in error messages.

    Parameters
    ----------
    path : str or PathLike
    raw : dict
        The parsed TOML.
    text : str
    name : str
    fast : bool
        Apply the ``[fast]`` overrides.
    seed : int, optional
        Overrides the file's ``seed``.

    Raises
    ------
    ConfigError
        For an unknown key, a missing required key, a value of the wrong type or
        over a limit of :mod:`udesci.limits` (the message names the file, the
        table, the key and the limit).
    """

    def __init__(self, path, raw: dict, text: str, name: str, fast: bool, seed: int | None = None):
        self.path = Path(path)
        self.name = name
        self.text = text
        self.fast = fast
        w = _Where(name, "")
        limits.check_nesting(raw, name)
        limits.check_numbers(raw, name)
        top = _validate(raw, w, TOP, required=("data", "model"))
        if fast:
            if top["fast"] is not None:
                fast_raw = _table(top["fast"], w, "fast")
                for key in fast_raw:
                    if key not in ("training", "discovery"):
                        raise ConfigError(
                            f"{name}: [fast] {key}: unknown key; expected one of ['discovery', 'training']."
                        )
                over = fast_raw
                for key in ("training", "discovery"):
                    if key in over:
                        top[key] = _merge(_table(top[key], w, key), _table(over[key], w.sub("fast"), key))
            else:
                for key in ("training", "discovery"):
                    top[key] = _cap(_table(top[key], w, key), FAST_DEFAULTS[key])
        self.seed = top["seed"]
        self.title = top["title"] or self.path.stem
        self.data = _validate(top["data"], w.sub("data"), DATA, required=("file", "time", "states"))
        derive = self.data["derive"]
        if derive is not None:
            dw = w.sub("data").sub("derive")
            _table(derive, w.sub("data"), "derive", limit="names")
            for k, v in derive.items():
                _ident()(k, dw, k)
                _str()(v, dw, k)
        self.data["derive"] = dict(derive or {})
        self.model = _validate(top["model"], w.sub("model"), MODEL, required=("equations",))
        self.training = _validate(top["training"], w.sub("training"), TRAINING)
        self.discovery = _validate(top["discovery"], w.sub("discovery"), DISCOVERY)
        libs = self.discovery["libraries"]
        if libs is not None:
            lw = w.sub("discovery").sub("libraries")
            _table(libs, w.sub("discovery"), "libraries", limit="names")
            self.discovery["libraries"] = {k: _validate(v, lw.sub(k), LIBRARY) for k, v in libs.items()}
        else:
            self.discovery["libraries"] = {}
        self.evaluation = _validate(top["evaluation"], w.sub("evaluation"), EVALUATION)
        self.output = _validate(top["output"], w.sub("output"), OUTPUT)
        self.check = _validate(top["check"], w.sub("check"), CHECK) if top["check"] is not None else None
        if self.check is not None and self.check["terms"] is not None:
            cw = w.sub("check").sub("terms")
            _table(self.check["terms"], w.sub("check"), "terms", limit="names")
            for k, v in self.check["terms"].items():
                _list_of(_str())(v, cw, k)
        if seed is not None:
            self.seed = check_seed(seed, w.prefix("seed"))
        self.where = w

    # paths are relative to the config file
    def resolve(self, p: str) -> Path:
        """A path from the file, resolved against the file's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else (self.path.parent / q)

    def as_dict(self) -> dict:
        """The validated config (for summaries)."""
        return {
            "file": os.fspath(self.path),
            "title": self.title,
            "seed": self.seed,
            "fast": self.fast,
            "data": self.data,
            "model": self.model,
            "training": self.training,
            "discovery": self.discovery,
            "evaluation": self.evaluation,
            "output": self.output,
            "check": self.check,
        }


def _is_file(path: Path, where: str) -> bool:
    """``path.is_file()``, with an unusable path (a name too long, ...) reported as a ConfigError."""
    try:
        return path.is_file()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot use the path {str(path)[:80]!r}... ({exc.strerror}).") from None


def load_config(path, *, fast: bool = False, seed: int | None = None) -> PipelineConfig:
    """Read and validate a pipeline TOML file.

    Parameters
    ----------
    path : str or PathLike
    fast : bool
        Apply the ``[fast]`` overrides (or the built-in fast caps).
    seed : int, optional
        Overrides the file's ``seed`` (an int in ``[0, 2**63)``).

    Returns
    -------
    PipelineConfig

    Raises
    ------
    ConfigError
        If the file does not exist or cannot be read, is not UTF-8 text, is
        not valid TOML, is over a limit (size, nesting, or any value capped by
        :mod:`udesci.limits`), has an unknown key, a missing required key or a
        value of the wrong type; the message names the file, the table and
        the key.
    """
    import tomllib

    name = os.fspath(path)
    p = Path(path)
    if not _is_file(p, name):
        raise ConfigError(f"{name}: config file not found.")
    try:
        text = limits.read_text(p, name)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the config file ({exc.strerror or exc}).") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML ({exc}).") from None
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
        raise limits.int_literal_error(text, name) from None
    except RecursionError:
        raise limits.too_large("file_depth", name, "arrays or tables nested too deeply to read") from None
    return PipelineConfig(p, raw, text, name, fast, seed)


# ----------------------------------------------------------------------------------------------
# building data and model
# ----------------------------------------------------------------------------------------------


def load_frame(cfg: PipelineConfig):
    """The config's CSV as a DataFrame with derived columns added.

    Raises
    ------
    ConfigError
        If the file is missing or larger than the limit ``data_bytes``, or a derive
        expression is invalid.
    DataError
        If a column is missing or not numeric.
    """
    import numpy as np
    import pandas as pd
    import sympy as sp

    from .expr import parse_expression

    d = cfg.data
    w = cfg.where.sub("data")
    file = cfg.resolve(d["file"])
    if not _is_file(file, w.prefix("file")):
        raise ConfigError(
            f"{w.prefix('file')}: data file {os.fspath(file)!r} not found (paths are relative to the config file)."
        )
    limits.check_file_size(file, "data_bytes", f"{w.prefix('file')}: {os.fspath(file)!r}")
    try:
        df = pd.read_csv(file, comment="#", skipinitialspace=True)
    except (ValueError, OSError) as exc:
        raise DataError(f"{w.prefix('file')}: cannot read {os.fspath(file)!r} as CSV ({exc}).") from None
    df.columns = [str(c).strip() for c in df.columns]
    for new, text in d["derive"].items():
        cols = {c: sp.Symbol(c) for c in df.columns if c.isidentifier() and not c.startswith("__")}
        expr = parse_expression(text, cols, where=f"{w.sub('derive').prefix(new)}")
        used = sorted(expr.free_symbols, key=str)
        for s in used:
            if not np.issubdtype(df[str(s)].dtype, np.number):
                raise DataError(f"{w.sub('derive').prefix(new)}: column {str(s)!r} is not numeric.")
        fn = sp.lambdify(used, expr, modules="numpy")
        with np.errstate(all="ignore"):
            values = np.asarray(fn(*[df[str(s)].to_numpy(dtype=float) for s in used]), dtype=float)
        df[new] = np.broadcast_to(values, (len(df),)).copy()
    needed = [("time", d["time"])] + [("states", s) for s in d["states"]] + [("inputs", s) for s in d["inputs"]]
    if d["trajectory"]:
        needed.append(("trajectory", d["trajectory"]))
    for key, col in needed:
        if col not in df.columns:
            raise DataError(f"{w.prefix(key)}: column {col!r} not in {file.name} (columns: {list(df.columns)}).")
        if key != "trajectory" and not np.issubdtype(df[col].dtype, np.number):
            raise DataError(f"{w.prefix(key)}: column {col!r} is not numeric.")
    return df


def build_model(cfg: PipelineConfig):
    """The :class:`~udesci.HybridModel` described by ``[model]``.

    The table's keys and values are checked here; the model is built by
    :func:`udesci.spec.build_model` (symbols and their roles, unknowns declared in
    ``[model.unknowns]`` or detected from calls, equations parsed safely).

    Raises
    ------
    ConfigError
        For an invalid equation string, parameter entry, unknown declaration or
        bound (``[model.bounds]``: not a state, not a ``[lower, upper]`` pair of
        numbers with ``lower < upper``), a symbol in more than one role, or a
        state of ``[data]`` without equation (message names the file, table and key).
    """
    from .model import Learnable
    from .spec import ModelText, Places
    from .spec import build_model as build

    m = cfg.model
    w = cfg.where.sub("model")
    eqs_raw = _table(m["equations"], w, "equations", limit="states")
    if not eqs_raw:
        raise ConfigError(f"{w.prefix('equations')}: expected at least one equation, received an empty table.")
    ew = w.sub("equations")
    states = [_ident()(k, ew, k) for k in eqs_raw]
    params_raw = _table(m["parameters"] if m["parameters"] is not None else {}, w, "parameters", limit="names")
    pw = w.sub("parameters")
    params = {}
    for name, value in params_raw.items():
        _ident()(name, pw, name)
        if isinstance(value, dict):
            spec = _validate(
                value, pw.sub(name), {"value": (_num(), None), "learnable": (_bool(), False)}, required=("value",)
            )
            params[name] = Learnable(spec["value"]) if spec["learnable"] else spec["value"]
        elif _is_num(value) and math.isfinite(value):
            params[name] = float(value)
        else:
            raise pw.error(name, "a number or a table {value = ..., learnable = true}", value)
    missing = [s for s in cfg.data["states"] if s not in states]
    if missing:
        raise ConfigError(
            f"{cfg.where.sub('data').prefix('states')}: {missing} have no equation in "
            f"[model.equations] (states: {states})."
        )
    uw = w.sub("unknowns")
    unknowns = None
    if m["unknowns"] is not None:
        unknowns = {}
        for name, args in _table(m["unknowns"], w, "unknowns", limit="names").items():
            _ident()(name, uw, name)
            unknowns[name] = tuple(_list_of(_ident(), min_len=1)(args, uw, name))
    text = ModelText(
        equations=eqs_raw,
        parameters=params,
        inputs=tuple(cfg.data["inputs"]),
        time=m["time"],
        unknowns=unknowns,
        net_options={"width": m["width"], "depth": m["depth"], "activation": m["activation"]},
    )
    places = Places(
        source=w.file,
        model=f"[{w.section}]",
        equation=lambda state: f"[{ew.section}] {state}",
        unknown=lambda name: f"[{uw.section}] {name}",
    )
    bounds = _bounds(m["bounds"], w, states)
    model = build(text, places)
    if not bounds:
        return model
    try:
        return model.with_bounds(bounds)
    except ValueError as err:  # ModelError, ConfigError: a bound contradicting a state's domain
        raise ConfigError(f"{w.sub('bounds').prefix()}: {err}") from None


def _bounds(raw, w: _Where, states: list) -> dict:
    """``[model.bounds]``: state = [lower, upper] (numbers, ``inf``/``-inf`` for an open side)."""
    if raw is None:
        return {}
    bw = w.sub("bounds")
    out = {}
    for name, pair in _table(raw, w, "bounds", limit="states").items():
        if name not in states:
            raise ConfigError(f"{bw.prefix(name)}: not a state of [model.equations] (states: {states}).")
        if not isinstance(pair, list) or len(pair) != 2 or not all(_is_num(v) and not math.isnan(v) for v in pair):
            raise bw.error(name, "a [lower, upper] pair of numbers (inf or -inf for an open side)", pair)
        if not pair[0] < pair[1] or pair[0] == math.inf or pair[1] == -math.inf:
            raise bw.error(name, "lower < upper (and lower < inf, upper > -inf)", pair)
        out[name] = (float(pair[0]), float(pair[1]))
    return out


def _solver(spec):
    from . import Solver

    return Solver(**{k: v for k, v in spec.items() if v is not None}) if spec else None


def training_options(cfg: PipelineConfig) -> dict:
    """Keyword arguments for :func:`udesci.fit` from ``[training]``.

    Raises
    ------
    ConfigError
        If every stage is switched off.
    """
    from . import FullTrajectory, Shooting, WarmStart

    t = cfg.training
    out = {}
    for key, cls, default_on in (
        ("warm_start", WarmStart, True),
        ("shooting", Shooting, True),
        ("full", FullTrajectory, False),
    ):
        spec = t[key]
        if spec is None:
            out[key] = cls() if default_on else None
            continue
        if not spec.get("enabled", True):
            out[key] = None
            continue
        kw = {k: v for k, v in spec.items() if k not in ("enabled", "solver") and v is not None}
        if spec.get("solver"):
            kw["solver"] = _solver(spec["solver"])
        try:
            out[key] = cls(**kw)
        except ConfigError as exc:
            raise ConfigError(f"{cfg.where.sub('training').sub(key).prefix()}: {exc}") from None
    if all(v is None for v in out.values()):
        raise ConfigError(f"{cfg.where.sub('training').prefix()}: every stage is disabled; enable one.")
    if t["initial"] is not None:
        states = set(cfg.model["equations"])
        stray = sorted(set(t["initial"]) - states)
        if stray:
            raise ConfigError(
                f"{cfg.where.sub('training').prefix('initial')}: {stray} are not states of the model "
                f"(states {sorted(states)})."
            )
        out["initial"] = dict(t["initial"])
    return out


def discovery_options(cfg: PipelineConfig, model) -> dict:
    """Keyword arguments for :func:`udesci.discover` from ``[discovery]``.

    Raises
    ------
    ConfigError
        For a library of a name that is not an unknown, invalid extra terms, or a
        library of more terms than the limit ``library_terms``.
    """
    from . import Library, Selection

    d = cfg.discovery
    w = cfg.where.sub("discovery")
    base = {k: d[k] for k in ("degree", "constant", "trig", "rational", "extra") if d[k] is not None}
    sel = {
        k: d[k]
        for k in (
            "criterion",
            "parsimony",
            "thresholds",
            "exhaustive",
            "shortlist",
            "refine_iterations",
            "sweeps",
            "rescore",
            "joint",
            "bootstrap",
        )
        if d[k] is not None
    }
    libs = {}
    for name in d["libraries"]:
        if name not in model.unknowns:
            raise ConfigError(
                f"{w.sub('libraries').prefix(name)}: not an unknown of the model ({sorted(model.unknowns)})."
            )
    for name, unk in model.unknowns.items():
        spec = {**base, **{k: v for k, v in d["libraries"].get(name, {}).items() if v is not None}}
        lib = Library(**spec)
        key = f"libraries.{name}" if "degree" in d["libraries"].get(name, {}) else "degree"
        k = len(unk.args)  # at most: the monomials up to the degree, sin/cos of each argument, the extra terms
        size = math.comb(k + lib.degree, lib.degree) - (0 if lib.constant else 1) + 2 * k * lib.trig + len(lib.extra)
        if lib.rational is not None:  # a family per argument and power, times the monomials up to `times`
            size += k * len(lib.rational.powers) * math.comb(k + lib.rational.times, lib.rational.times)
        if size > limits.current("library_terms"):
            raise limits.too_large(
                "library_terms",
                w.prefix(key),
                f"a library of up to {size} terms for {name} ({k} arguments, degree {lib.degree})",
            )
        try:
            lib.terms(unk.args)  # parses the extra terms now, so errors name the config key
        except ConfigError as exc:
            key = f"libraries.{name}" if "extra" in d["libraries"].get(name, {}) else "extra"
            raise ConfigError(f"{w.prefix(key)}: {exc}") from None
        libs[name] = lib
    # no library settings at all: discover's automatic library (degree 2, escalated while inadequate)
    automatic = not base and not any(v is not None for spec in d["libraries"].values() for v in spec.values())
    out = {"library": None if automatic else libs, "selection": Selection(**sel), "refit": d["refit"]}
    if d["refit_iterations"] is not None:
        out["refit_iterations"] = d["refit_iterations"]
    return out


def expected_terms(cfg: PipelineConfig, model) -> dict:
    """The ``[check.terms]`` structures, parsed safely in each unknown's arguments.

    Returns
    -------
    dict name -> sorted list of term strings (e.g. ``{"U": ["x*y"]}``)

    Raises
    ------
    ConfigError
        For a name that is not an unknown or a term that does not parse.
    """
    import sympy as sp

    from .expr import parse_expression

    if cfg.check is None or not cfg.check["terms"]:
        return {}
    out = {}
    cw = cfg.where.sub("check").sub("terms")
    for name, terms in cfg.check["terms"].items():
        if name not in model.unknowns:
            raise ConfigError(f"{cw.prefix(name)}: not an unknown of the model ({sorted(model.unknowns)}).")
        args = {str(a): a for a in model.unknowns[name].args}
        out[name] = sorted(str(sp.expand(parse_expression(t, args, where=cw.prefix(name)))) for t in terms)
    return out
