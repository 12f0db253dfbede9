"""``udesci example duffing|logistic|forced`` and the ``udesci study`` command group (registered in :mod:`udesci.cli`).

``udesci study recovery --noise 0.001,0.01,0.05 --runs 10 --workers 2`` runs the
Lotka–Volterra pipeline for every noise level and seed beside a SINDy-only
baseline and writes the recovery table (see :mod:`udesci.study`).

The options are checked before the study or system modules (and torch) are
imported; ``--runs`` and ``--workers`` are capped by the limits ``runs`` and
``workers`` of :mod:`udesci.limits`.
"""

from __future__ import annotations

import math

from . import limits
from .cli_common import (
    EXIT_OK,
    EXIT_USAGE,
    add_expect,
    add_noise,
    add_out,
    add_run_flags,
    add_seed,
    emit_json,
    exit_code,
    noise_list,
    quiet,
)
from .errors import ConfigError

__all__ = ["noise_list", "register"]  # noise_list lives in cli_common; the bench scripts import it from here


#: The systems of ``udesci example NAME``, with their one-line help.  They are the keys of
#: :data:`udesci.pipelines.systems.SYSTEMS` (a test checks both agree), named here so that
#: building the parser does not import that module and torch.
EXAMPLE_SYSTEMS = {
    "duffing": "Duffing oscillator, unknown restoring force U(x) = -k x - eps x^3",
    "logistic": "logistic growth, unknown U(x) = 1 - x/K multiplying the known r x",
    "forced": "forced damped oscillator, unknown response U(F) = b F to a measured input F(t)",
}


def _check_study_options(args) -> None:
    """``--runs``, ``--workers``, ``--timeout`` and ``--address``, before the study module is imported."""
    if args.runs < 1:
        raise ConfigError(f"--runs: expected an int >= 1, received {args.runs}.")
    limits.check("runs", args.runs, "--runs")
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError(f"--workers: expected an int >= 1, received {args.workers}.")
        limits.check("workers", args.workers, "--workers")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(f"--timeout: expected a positive number of seconds, received {args.timeout!r}.")
    if args.address is not None and args.backend != "ray":
        raise ConfigError("--address: only used with --backend ray.")


def _study_recovery(args) -> int:
    _check_study_options(args)
    from .study import markdown_table, recovery_study

    noise = ",".join(f"{v:g}" for v in args.noise)
    command = f"udesci study recovery --noise {noise} --runs {args.runs}"
    command += f" --workers {args.workers}" if args.workers else ""
    command += f" --timeout {args.timeout:g}" if args.timeout else ""
    command += " --fast" * args.fast + (f" --backend {args.backend}" if args.backend != "process" else "")
    res = recovery_study(
        args.noise,
        args.runs,
        out=args.out,
        workers=args.workers,
        backend=args.backend,
        address=args.address,
        fast=args.fast,
        retry_failed=args.retry_failed,
        timeout=args.timeout,
        progress=not quiet(args),
        command=command,
    )
    emit_json(args, {"table": res["table"], "paths": res["paths"], "ran": res["ran"], "skipped": res["skipped"]})
    if not quiet(args):
        print(markdown_table(res["table"]))
        print(f"wrote {', '.join(res['paths'].values())}")
    return EXIT_OK


def _example_system(args) -> int:
    from .pipelines.systems import run

    res = run(args.example, args.noise, args.seed, fast=args.fast, quiet=quiet(args))
    emit_json(args, res)
    return exit_code(res["correct_structure"], args.expect)


def register(sub, exs) -> None:
    """Add the ``study`` command group to the ``udesci`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The top-level sub-commands.
    exs : argparse._SubParsersAction
        The ``example`` sub-commands: ``duffing``, ``logistic`` and ``forced`` are added.
    """
    for name, description in EXAMPLE_SYSTEMS.items():
        ex = exs.add_parser(name, help=description)
        add_noise(ex, 0.01, "noise as a fraction of each state's std (default: %(default)s)")
        add_seed(ex, 0)
        add_run_flags(ex)
        add_expect(ex, "exit 1 unless exactly the true terms are recovered")
        ex.set_defaults(func=_example_system)
    st = sub.add_parser("study", help="parallel studies: recovery rate against noise, with a SINDy-only baseline")
    sts = st.add_subparsers(dest="study", metavar="STUDY")
    rec = sts.add_parser(
        "recovery",
        help="Lotka–Volterra recovery rate and coefficient error per noise level, udesci against SINDy alone",
        description="Run the full Lotka–Volterra pipeline for every noise level and seeds 0..RUNS-1 in parallel, "
        "beside PySINDy alone on the same data; write runs.jsonl (resumable), runs.csv, summary.json, summary.md "
        "and recovery.png to --out.",
    )
    add_noise(
        rec,
        "0.001,0.005,0.01,0.025,0.05",
        "comma-separated noise levels, fractions of each state's mean (default: %(default)s)",
        many=True,
    )
    rec.add_argument("--runs", type=int, default=10, help="seeds per noise level (default: %(default)s)")
    rec.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU count)")
    rec.add_argument(
        "--backend",
        choices=("process", "ray", "serial"),
        default="process",
        help="process: embedded process pool; ray: Ray (local, or --address); serial: in this process "
        "(default: %(default)s)",
    )
    rec.add_argument(
        "--address", default=None, help="Ray cluster address (with --backend ray), e.g. auto (default: local Ray)"
    )
    add_out(rec, "out/study", "output directory; rerunning resumes (default: %(default)s)")
    rec.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one run may take before it is recorded as failed (default: no limit)",
    )
    rec.add_argument("--retry-failed", action="store_true", help="on resume, run failed runs again (default: off)")
    add_run_flags(rec, "the pipeline's fast configuration (smoke runs, tests)")
    rec.set_defaults(func=_study_recovery)
    st.set_defaults(func=lambda args: (st.print_help(), EXIT_USAGE)[1])
