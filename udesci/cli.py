"""The ``udesci`` command.

Exit codes: 0 success; 1 the run finished but its check failed (e.g. wrong
structure when ``--expect`` was given); 2 bad usage, config or data; 130
interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import UdesciError

EXIT_OK, EXIT_CHECK, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress or printed results")
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


def _example_lv(args) -> int:
    from .pipelines.lotka_volterra import run_pipeline

    res = run_pipeline(noise=args.noise, seed=args.seed, out=args.out, quiet=args.quiet or args.json, fast=args.fast)
    if args.json:
        print(json.dumps(res, default=float))
    return EXIT_OK if (res["correct_structure"] or not args.expect) else EXIT_CHECK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``udesci`` command."""
    parser = argparse.ArgumentParser(
        prog="udesci",
        description="Universal differential equations: fit hybrid "
        "SymPy/neural models to data and discover closed-form terms.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"udesci {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser("example", help="run a bundled example pipeline")
    exs = ex.add_subparsers(dest="example", metavar="EXAMPLE")
    lv = exs.add_parser("lotka-volterra", help="Lotka–Volterra: discover the two x*y interaction terms")
    lv.add_argument("--out", default="out/lotka-volterra", help="output directory (default: %(default)s)")
    lv.add_argument("--noise", type=float, default=0.05, help="noise as a fraction of each state's mean")
    lv.add_argument("--seed", type=int, default=0)
    lv.add_argument("--fast", action="store_true", help="fewer training iterations (smoke runs, tests)")
    lv.add_argument("--expect", action="store_true", help="exit 1 unless exactly the x*y terms are recovered")
    _common(lv)
    lv.set_defaults(func=_example_lv)
    for register in _REGISTRARS:
        register(sub, exs)
    return parser


def _registrars() -> list:
    from . import cli_pipelines, cli_study

    return [cli_pipelines.register, cli_study.register]


_REGISTRARS: list = _registrars()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except UdesciError as exc:
        print(f"udesci: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as exc:
        print(f"udesci: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("udesci: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT


if __name__ == "__main__":
    sys.exit(main())
