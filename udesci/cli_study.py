"""``udesci example duffing|logistic|forced`` and the ``udesci study`` command group (registered in :mod:`udesci.cli`).

``udesci study recovery --noise 0.001,0.01,0.05 --runs 10 --workers 2`` runs the
Lotka–Volterra pipeline for every noise level and seed beside a SINDy-only
baseline and writes the recovery table (see :mod:`udesci.study`).
"""

from __future__ import annotations

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


def _study_recovery(args) -> int:
    from .study import markdown_table, recovery_study

    noise = ",".join(f"{v:g}" for v in args.noise)
    command = f"udesci study recovery --noise {noise} --runs {args.runs}"
    command += f" --workers {args.workers}" if args.workers else ""
    command += f" --timeout {args.timeout:g}" if args.timeout else ""
    command += " --fast" * args.fast + (f" --backend {args.backend}" if args.backend != "process" else "")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers: expected an int >= 1, received {args.workers}.")
    if args.address is not None and args.backend != "ray":
        raise ConfigError("--address: only used with --backend ray.")
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
    from .pipelines.systems import SYSTEMS

    for name, spec in SYSTEMS.items():
        ex = exs.add_parser(name, help=spec.description)
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
        help="process: embedded process pool; ray: Ray (local, or --address); serial: in this process",
    )
    rec.add_argument("--address", default=None, help="Ray cluster address (with --backend ray), e.g. auto")
    add_out(rec, "out/study", "output directory; rerunning resumes (default: %(default)s)")
    rec.add_argument(
        "--timeout", type=float, default=None, help="seconds one run may take before it is recorded as failed"
    )
    rec.add_argument("--retry-failed", action="store_true", help="on resume, run failed runs again")
    add_run_flags(rec, "the pipeline's fast configuration (smoke runs, tests)")
    rec.set_defaults(func=_study_recovery)
    st.set_defaults(func=lambda args: (st.print_help(), EXIT_USAGE)[1])
