"""``udesci example weather``, ``udesci example lynx-hare`` and ``udesci run pipeline.toml``.

Registered into :mod:`udesci.cli` through ``_REGISTRARS``.  Every command takes
``--out``, ``--seed``, ``--fast``, ``--quiet`` and ``--json`` (a JSON summary on
stdout, nothing else there) and returns the exit code: 0 success, 1 the run
finished but its check failed (``--expect`` for the examples, a ``[check]``
table for ``run``), 2 bad usage, config or data (raised as
:class:`~udesci.errors.ConfigError` / :class:`~udesci.errors.DataError` and
mapped by :func:`udesci.cli.main`).
"""

from __future__ import annotations

import argparse
import json

from .errors import ConfigError

EXIT_OK, EXIT_CHECK = 0, 1


def _common(p: argparse.ArgumentParser, out_default: str | None, out_help: str) -> None:
    p.add_argument("--out", default=out_default, help=out_help)
    p.add_argument("--seed", type=int, default=None, help="random seed (networks, training, discovery; default 0)")
    p.add_argument("--fast", action="store_true", help="few training iterations: a smoke run for tests (< 1 min)")
    p.add_argument("--quiet", action="store_true", help="no progress or printed results")
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


def _emit(args, result: dict) -> None:
    if args.json:
        from .report import jsonable

        print(json.dumps(jsonable(result)))


def _windows(text: str | None):
    if text is None:
        return None
    try:
        days = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--windows: expected comma-separated whole days such as 1,3,7, received {text!r}.") from None
    if not days or min(days) < 1:
        raise ConfigError(f"--windows: expected positive whole days such as 1,3,7, received {text!r}.")
    return days


def _weather(args) -> int:
    from .pipelines.weather import FAST_WINDOWS, WINDOWS, run_pipeline

    cases = ("greensboro", "dwd") if args.case == "both" else (args.case,)
    windows = _windows(args.windows) or (FAST_WINDOWS if args.fast else WINDOWS)
    res = run_pipeline(
        out=args.out,
        seed=0 if args.seed is None else args.seed,
        fast=args.fast,
        quiet=args.quiet or args.json,
        cases=cases,
        windows=windows,
    )
    _emit(args, res)
    return EXIT_OK if (res["check"]["passed"] or not args.expect) else EXIT_CHECK


def _lynx_hare(args) -> int:
    from .pipelines.lynx_hare import run_pipeline

    res = run_pipeline(
        out=args.out,
        seed=0 if args.seed is None else args.seed,
        fast=args.fast,
        quiet=args.quiet or args.json,
        holdout=args.holdout,
    )
    _emit(args, res)
    return EXIT_OK if (res["interaction_found"] or not args.expect) else EXIT_CHECK


def _run(args) -> int:
    from .config import run_config

    res = run_config(args.config, out=args.out, seed=args.seed, fast=args.fast, quiet=args.quiet or args.json)
    _emit(args, res)
    return EXIT_OK if res["check"]["passed"] else EXIT_CHECK


def register(sub, exs) -> None:
    """Add ``example weather``, ``example lynx-hare`` (to ``exs``) and ``run`` (to ``sub``).

    Parameters
    ----------
    sub : argparse subparsers action
        The top-level ``udesci`` subcommands.
    exs : argparse subparsers action
        The subcommands of ``udesci example``.
    """
    w = exs.add_parser(
        "weather",
        help="hourly temperature: energy-balance UDE with measured radiation/cloud forcing vs baselines",
        description="Train physics-only, UDE and neural-ODE temperature models on the first 1/3/7 days of real "
        "hourly July data (TMY3 Greensboro 1981 with radiation and cloud cover; DWD Würzburg 2021, temperature "
        "only), compare 24-h forecasts with persistence and climatology, discover the UDE's unknown term and "
        "write a report.",
    )
    _common(w, "out/weather", "output directory (default: %(default)s)")
    w.add_argument("--case", choices=["greensboro", "dwd", "both"], default="both", help="data set (default: both)")
    w.add_argument(
        "--windows", default=None, help="training windows in days, comma-separated (default 1,3,7; --fast: 1)"
    )
    w.add_argument("--expect", action="store_true", help="exit 1 unless the UDE beats persistence (longest window)")
    w.set_defaults(func=_weather)

    lh = exs.add_parser(
        "lynx-hare",
        help="Hudson Bay lynx–hare pelts 1900–1920: discover the predator–prey interactions",
        description="Fit dH/dt = a H + U(H, L), dL/dt = -d L + V(H, L) to the real Hudson Bay pelt series "
        "(scaled to tens of thousands of pelts), discover U and V with their inclusion probabilities and "
        "intervals, compare with a fitted Lotka–Volterra model and write a report.",
    )
    _common(lh, "out/lynx-hare", "output directory (default: %(default)s)")
    lh.add_argument("--holdout", type=int, default=0, help="hold out the last N years (default: %(default)s)")
    lh.add_argument(
        "--expect", action="store_true", help="exit 1 unless U and V both contain the H*L term with predator–prey signs"
    )
    lh.set_defaults(func=_lynx_hare)

    r = sub.add_parser(
        "run",
        help="run a whole pipeline described by a TOML file",
        description="Run data → fit → discover → evaluate → export → report as described by a pipeline TOML file "
        "(see udesci.config for the schema; examples/*.toml).  Exit 1 if the file's [check] fails.",
    )
    r.add_argument("config", help="pipeline TOML file")
    _common(r, None, "output directory (default: [output] dir of the file, else out/<file name>)")
    r.set_defaults(func=_run)
