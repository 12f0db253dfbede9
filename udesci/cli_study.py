"""The ``udesci study`` command group (registered in :mod:`udesci.cli`).

``udesci study recovery --noise 0.001,0.01,0.05 --runs 10 --workers 2`` runs the
Lotka–Volterra pipeline for every noise level and seed beside a SINDy-only
baseline and writes the recovery table (see :mod:`udesci.study`).
"""

from __future__ import annotations

import argparse
import json

from .errors import ConfigError


def noise_list(text: str) -> list[float]:
    """Parse ``"0.001,0.01"`` into noise levels (an argparse ``type=``, also used by the bench scripts).

    Raises
    ------
    argparse.ArgumentTypeError
        If an item is not a number or there is none.
    """
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.001,0.01,0.05, received {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one noise level")
    return values


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
        progress=not (args.quiet or args.json),
        command=command,
    )
    if args.json:
        from .study import json_safe

        print(
            json.dumps(
                json_safe({"table": res["table"], "paths": res["paths"], "ran": res["ran"], "skipped": res["skipped"]}),
                default=float,
            )
        )
    elif not args.quiet:
        print(markdown_table(res["table"]))
        print(f"wrote {', '.join(res['paths'].values())}")
    return 0


def _example_system(args) -> int:
    from .pipelines.systems import run

    res = run(args.example, args.noise, args.seed, fast=args.fast, quiet=args.quiet or args.json)
    if args.json:
        print(json.dumps(res, default=float))
    return 0 if (res["correct_structure"] or not args.expect) else 1


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
        ex.add_argument("--noise", type=float, default=0.01, help="noise as a fraction of each state's std")
        ex.add_argument("--seed", type=int, default=0)
        ex.add_argument("--fast", action="store_true", help="fewer training iterations (smoke runs, tests)")
        ex.add_argument("--expect", action="store_true", help="exit 1 unless exactly the true terms are recovered")
        ex.add_argument("--quiet", action="store_true", help="no progress or printed results")
        ex.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")
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
    rec.add_argument(
        "--noise",
        type=noise_list,
        default="0.001,0.005,0.01,0.025,0.05",
        help="comma-separated noise levels, fractions of each state's mean (default: %(default)s)",
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
    rec.add_argument("--out", default="out/study", help="output directory; rerunning resumes (default: %(default)s)")
    rec.add_argument("--fast", action="store_true", help="the pipeline's fast configuration (smoke runs, tests)")
    rec.add_argument(
        "--timeout", type=float, default=None, help="seconds one run may take before it is recorded as failed"
    )
    rec.add_argument("--retry-failed", action="store_true", help="on resume, run failed runs again")
    rec.add_argument("--quiet", action="store_true", help="no progress or printed table")
    rec.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")
    rec.set_defaults(func=_study_recovery)
    st.set_defaults(func=lambda args: (st.print_help(), 2)[1])
