"""``udesci example lotka-volterra|weather|lynx-hare`` and ``udesci run pipeline.toml``.

Registered into :mod:`udesci.cli` by :func:`register`.  Every command takes
``--out``, ``--seed``, ``--fast``, ``--quiet`` and ``--json`` (see
:mod:`udesci.cli_common`) and returns the exit code: 0 success, 1 the run
finished but its check failed (``--expect`` for the examples, a ``[check]``
table for ``run``; a discovery labelled inadequate fails both), 2 bad usage, config or data (raised as
:class:`~udesci.errors.ConfigError` / :class:`~udesci.errors.DataError` and
mapped by :func:`udesci.cli.main`).
"""

from __future__ import annotations

from .cli_common import (
    add_expect,
    add_noise,
    add_out,
    add_run_flags,
    add_seed,
    adequate,
    emit_json,
    exit_code,
    quiet,
)
from .errors import ConfigError


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


def _lotka_volterra(args) -> int:
    from .pipelines.lotka_volterra import run_pipeline

    res = run_pipeline(noise=args.noise, seed=args.seed, out=args.out, quiet=quiet(args), fast=args.fast)
    emit_json(args, res)
    return exit_code(res["correct_structure"] and adequate(res), args.expect)


def _weather(args) -> int:
    windows = _windows(args.windows)  # checked before the pipeline (and torch) is imported
    stations = None if args.stations is None else tuple(x.strip() for x in args.stations.split(",") if x.strip())
    from .pipelines.weather import run_pipeline

    res = run_pipeline(
        out=args.out,
        seed=0 if args.seed is None else args.seed,
        fast=args.fast,
        quiet=quiet(args),
        stations=stations,
        windows=windows,
        compare=not args.no_compare,
    )
    emit_json(args, res)
    return exit_code(res["check"]["passed"], args.expect)


def _lynx_hare(args) -> int:
    from .pipelines.lynx_hare import run_pipeline

    res = run_pipeline(
        out=args.out,
        seed=0 if args.seed is None else args.seed,
        fast=args.fast,
        quiet=quiet(args),
        holdout=args.holdout,
    )
    emit_json(args, res)
    return exit_code(res["interaction_found"] and adequate(res), args.expect)


def _run(args) -> int:
    from .config import load_config

    cfg = load_config(args.config, fast=args.fast, seed=args.seed)  # the whole schema, before torch is imported
    from .runner import run_config

    res = run_config(cfg, out=args.out, quiet=quiet(args))
    emit_json(args, res)
    return exit_code(res["check"]["passed"] and adequate(res))


FAST_HELP = "few training iterations: a smoke run for tests (< 1 min)"


def _real_data_example(exs, name: str, help: str, description: str):
    """An ``example`` subcommand on real data: ``--out out/<name>``, ``--seed`` (default 0), the run flags."""
    p = exs.add_parser(name, help=help, description=description)
    add_out(p, f"out/{name}")
    add_seed(p, None, "random seed: networks, training, discovery (default: 0)")
    add_run_flags(p, FAST_HELP)
    return p


def register(sub, exs) -> None:
    """Add ``example lotka-volterra``, ``example weather``, ``example lynx-hare`` (to ``exs``) and ``run`` (to ``sub``).

    Parameters
    ----------
    sub : argparse subparsers action
        The top-level ``udesci`` subcommands.
    exs : argparse subparsers action
        The subcommands of ``udesci example``.
    """
    lv = exs.add_parser("lotka-volterra", help="Lotka–Volterra: discover the two x*y interaction terms")
    add_out(lv, "out/lotka-volterra")
    add_noise(lv, 0.05, "noise as a fraction of each state's mean (default: %(default)s)")
    add_seed(lv, 0)
    add_run_flags(lv)
    add_expect(lv, "exit 1 unless exactly the x*y terms are recovered by an adequate closed form")
    lv.set_defaults(func=_lotka_volterra)

    w = _real_data_example(
        exs,
        "weather",
        "hourly temperature forecasts: energy-balance UDEs, verified against persistence and yesterday",
        description="Train physics-only, UDE and neural-ODE temperature (and dew-point) models on the first "
        "1/3/7/14 days of real hourly data (TMY3 Greensboro July 1981 and January 1988, JFK July 2013, DWD "
        "Würzburg July 2021). FORECAST setting: only inputs known at issue time (clear-sky shortwave from "
        "solar geometry, the states 24 h earlier); HINDCAST setting (Greensboro): measured radiation and cloud "
        "of the forecast period. Verify rolling 24-h forecasts (RMSE and bias by lead time, MSE skill vs "
        "persistence and same hour yesterday with bootstrap intervals), discover the unknown terms, compare NN "
        "map / ResNet / neural ODE, export equations and model.py, and write a report.",
    )
    w.add_argument(
        "--stations",
        default=None,
        help="comma-separated subset of greensboro,greensboro_jan,jfk,wuerzburg (default: all)",
    )
    w.add_argument(
        "--windows",
        default=None,
        help="training windows in days for every variant, comma-separated (default: 1,3,7,14 for the "
        "temperature-only forecast variants and 7 for the others; with --fast: 1)",
    )
    w.add_argument(
        "--no-compare", action="store_true", help="skip the NN map / ResNet / neural ODE comparison (default: run it)"
    )
    add_expect(
        w,
        "exit 1 unless the discovered model's 24-h MSE skill vs same hour yesterday is >= 0.10 with its 95%% "
        "interval above 0 at Greensboro and Würzburg (forecast setting, 7-day window)",
    )
    w.set_defaults(func=_weather)

    lh = _real_data_example(
        exs,
        "lynx-hare",
        "Hudson Bay lynx–hare pelts 1900–1920: discover the predator–prey interactions",
        description="Fit dH/dt = a H + U(H, L), dL/dt = -d L + V(H, L) to the real Hudson Bay pelt series "
        "(scaled to tens of thousands of pelts), discover U and V with their inclusion probabilities and "
        "intervals, compare with a fitted Lotka–Volterra model and write a report.",
    )
    lh.add_argument("--holdout", type=int, default=0, help="hold out the last N years (default: %(default)s)")
    add_expect(
        lh, "exit 1 unless U and V both contain the H*L term with predator–prey signs, in an adequate closed form"
    )
    lh.set_defaults(func=_lynx_hare)

    r = sub.add_parser(
        "run",
        help="run a whole pipeline described by a TOML file",
        description="Run data → fit → discover → evaluate → export → report as described by a pipeline TOML file "
        "(see udesci.config for the schema; examples/*.toml).  Exit 1 if the file's [check] fails or the "
        "discovered closed form is labelled inadequate.",
    )
    r.add_argument("config", help="pipeline TOML file")
    add_out(r, None, "output directory (default: [output] dir of the file, else out/<file name>)")
    add_seed(r, None, "random seed (default: the file's seed, else 0)")
    add_run_flags(r, FAST_HELP)
    r.set_defaults(func=_run)
