"""The ``udesci`` command: the parser and the entry point.

The subcommands are registered by :func:`udesci.cli_pipelines.register`
(``example lotka-volterra|weather|lynx-hare``, ``run``) and
:func:`udesci.cli_study.register` (``example duffing|logistic|forced``,
``study``); the options they share, their checks and the exit codes are in
:mod:`udesci.cli_common`.

Exit codes:

* 0 — success;
* 1 — the run finished but its check failed (``--expect``, a ``[check]`` table, or a discovered closed form
  labelled inadequate);
* 2 — bad usage, config or data: argparse's errors, any udesci error
  (:class:`~udesci.errors.ConfigError`, :class:`~udesci.errors.DataError`,
  :class:`~udesci.errors.ModelError`, :class:`~udesci.errors.TrainingError`) and
  files that cannot be read or written (:class:`OSError`); one line
  ``udesci: error: ...`` on stderr;
* 3 — an internal error (any other exception, a bug): one line
  ``udesci: internal error: <Type>: <message> (run with --debug for the traceback)``;
* 130 — interrupted (Ctrl-C).

``--debug`` (before or after the subcommand) prints the traceback of any error
before its line.  Importing this module and answering ``--help``, a bad flag or
a bad config key load neither torch nor SymPy nor pandas: the subcommands import
them in their handlers, after validating their input.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from . import cli_pipelines, cli_study
from .cli_common import EXIT_INTERNAL, EXIT_INTERRUPT, EXIT_USAGE, add_debug, check_common
from .errors import UdesciError

# each subcommand module registers its own subcommands
REGISTRARS: tuple = (cli_pipelines.register, cli_study.register)

#: The longest message an internal error prints (its traceback, with --debug, is whole).
MAX_MESSAGE = 500


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
        epilog="Exit codes: 0 ok, 1 the run's check failed, 2 bad usage, config or data, 3 internal error, "
        "130 interrupted.  Limits on what input may cost: see udesci.limits (UDESCI_LIMITS).",
    )
    parser.add_argument("--version", action="version", version=f"udesci {__version__}")
    add_debug(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser("example", help="run a bundled example pipeline")
    exs = ex.add_subparsers(dest="example", metavar="EXAMPLE")
    for register in REGISTRARS:
        register(sub, exs)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv``, check the common options, run the subcommand.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code (see the module docstring): 2 for bad usage, config or data,
        with one ``udesci: error: ...`` line on stderr; 3 for an internal error, with
        one ``udesci: internal error: ...`` line; 130 when interrupted.  With
        ``--debug`` the traceback precedes the line.

    Raises
    ------
    SystemExit
        From argparse, for ``--help``/``--version`` (code 0) and for arguments
        it cannot parse (code 2).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # known even if parsing fails; the parsed flag decides below
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        debug = bool(getattr(args, "debug", False))
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        check_common(args)
        return int(args.func(args))
    except (UdesciError, OSError) as exc:
        if debug:
            traceback.print_exc()
        print(f"udesci: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("udesci: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except Exception as exc:  # noqa: BLE001 - the command's last resort: any other exception is a bug
        if debug:
            traceback.print_exc()
        message = _one_line(str(exc))
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 5] + "(...)"
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"udesci: internal error: {type(exc).__name__}: {message}{hint}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
