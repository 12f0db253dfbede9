"""The ``udesci`` command: the parser and the entry point.

The subcommands are registered by :func:`udesci.cli_pipelines.register`
(``example lotka-volterra|weather|lynx-hare``, ``run``) and
:func:`udesci.cli_study.register` (``example duffing|logistic|forced``,
``study``); the options they share, their checks and the exit codes are in
:mod:`udesci.cli_common`.

Exit codes: 0 success; 1 the run finished but its check failed (e.g. wrong
structure when ``--expect`` was given); 2 bad usage, config or data; 130
interrupted.
"""

from __future__ import annotations

import argparse
import sys

from . import cli_pipelines, cli_study
from .cli_common import EXIT_INTERRUPT, EXIT_USAGE, check_common
from .errors import UdesciError

# each subcommand module registers its own subcommands
REGISTRARS: tuple = (cli_pipelines.register, cli_study.register)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``udesci`` command.

    Returns
    -------
    argparse.ArgumentParser
        With the ``example``, ``run`` and ``study`` subcommands; each parsed
        subcommand sets ``func`` (namespace -> exit code).
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="udesci",
        description="Universal differential equations: fit hybrid "
        "SymPy/neural models to data and discover closed-form terms.",
    )
    parser.add_argument("--version", action="version", version=f"udesci {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser("example", help="run a bundled example pipeline")
    exs = ex.add_subparsers(dest="example", metavar="EXAMPLE")
    for register in REGISTRARS:
        register(sub, exs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv``, check the common options, run the subcommand.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code (see the module docstring); bad usage, config or data
        print one ``udesci: error: ...`` line on stderr and give 2.

    Raises
    ------
    SystemExit
        From argparse, for ``--help``/``--version`` (code 0) and for arguments
        it cannot parse (code 2).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        check_common(args)
        return int(args.func(args))
    except (UdesciError, FileNotFoundError) as exc:
        print(f"udesci: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("udesci: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT


if __name__ == "__main__":
    sys.exit(main())
