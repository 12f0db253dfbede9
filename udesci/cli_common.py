"""What every ``udesci`` subcommand shares: exit codes, the common options, their checks and ``--json`` output.

Each subcommand adds the common options it takes with the ``add_*`` functions
below, and :func:`udesci.cli.main` runs :func:`check_common` on every parsed
command line before dispatching, so a flag means the same and is validated the
same way everywhere:

* ``--out DIR`` (a folder: existing, or new, but not an existing file);
  ``--seed N`` (an int in ``[0, 2**63)``); ``--noise LEVEL`` (a finite number
  >= 0; a comma-separated list of them for studies);
* ``--fast`` (smoke runs), ``--quiet`` (no progress or printed results),
  ``--json`` (a machine-readable summary on stdout, nothing else there),
  ``--debug`` (the traceback of an error, also accepted before the subcommand);
* ``--expect`` (exit :data:`EXIT_CHECK` unless the run's check passed; a discovery labelled
  inadequate never passes, see :func:`adequate`).

A value that is not a number is rejected by argparse (exit 2, with the usage); a
value out of range raises :class:`~udesci.errors.ConfigError` naming the flag,
which :func:`udesci.cli.main` prints as one line and maps to exit 2.  Every
option's help shows its default.

This module imports nothing heavy, so the command answers ``--help`` and bad
flags at once.
"""

from __future__ import annotations

import argparse
import json
import math

from .config import check_output_dir, check_seed
from .errors import ConfigError

EXIT_OK = 0  # success
EXIT_CHECK = 1  # the run finished, but its check failed (--expect, a [check] table)
EXIT_USAGE = 2  # bad usage, config or data
EXIT_INTERNAL = 3  # an internal error (a bug): one line, the traceback with --debug
EXIT_INTERRUPT = 130  # interrupted (Ctrl-C)

DEBUG_HELP = "on an error, print the traceback too (default: off)"


# ----------------------------------------------------------------------------------------------
# argparse types: parse numbers (ranges are checked by check_common, the same for every command)
# ----------------------------------------------------------------------------------------------
def noise_level(text: str) -> float:
    """Parse one noise level such as ``"0.05"`` (an argparse ``type=``).

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not a number.
    """
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.05, received {text!r}") from None


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


# ----------------------------------------------------------------------------------------------
# the common options
# ----------------------------------------------------------------------------------------------
OUT_HELP = "output directory (default: %(default)s)"


def add_out(parser: argparse.ArgumentParser, default: str | None, help: str = OUT_HELP):
    """Add ``--out DIR``."""
    parser.add_argument("--out", default=default, help=help)


def add_seed(parser: argparse.ArgumentParser, default: int | None = 0, help: str | None = None):
    """Add ``--seed N`` (an int >= 0, checked by :func:`check_common`)."""
    text = help or "random seed: noise, networks, training, discovery (default: %(default)s)"
    parser.add_argument("--seed", type=int, default=default, help=text)


def add_noise(parser: argparse.ArgumentParser, default, help: str, *, many: bool = False):
    """Add ``--noise``: one level >= 0, or with ``many`` a comma-separated list (checked by :func:`check_common`)."""
    parser.add_argument("--noise", type=noise_list if many else noise_level, default=default, help=help)


def add_run_flags(parser: argparse.ArgumentParser, fast: str = "fewer training iterations (smoke runs, tests)"):
    """Add ``--fast``, ``--quiet``, ``--json`` and ``--debug`` (see :func:`add_debug`)."""
    parser.add_argument("--fast", action="store_true", help=f"{fast} (default: off)")
    parser.add_argument("--quiet", action="store_true", help="no progress or printed results (default: off)")
    parser.add_argument(
        "--json", action="store_true", help="print a machine-readable JSON summary on stdout (default: off)"
    )
    add_debug(parser, top=False)


def add_debug(parser: argparse.ArgumentParser, *, top: bool = True):
    """Add ``--debug``; on a subcommand (``top=False``) it leaves the top-level value alone unless given."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS, help=DEBUG_HELP)


def add_expect(parser: argparse.ArgumentParser, help: str):
    """Add ``--expect``: exit :data:`EXIT_CHECK` unless the run's check passed (see :func:`exit_code`)."""
    parser.add_argument("--expect", action="store_true", help=f"{help} (default: off)")


def check_common(args: argparse.Namespace) -> None:
    """Check the common options a parsed command line has (``--seed``, ``--noise``, ``--out``).

    Raises
    ------
    ConfigError
        For a seed that is negative or ``2**63`` or more, a noise level that is negative
        or not finite, or an ``--out`` that is an existing file (or lies inside one); the
        message names the flag and the value received.
    """
    seed = getattr(args, "seed", None)
    if seed is not None:
        check_seed(seed, "--seed")
    noise = getattr(args, "noise", None)
    if noise is not None:
        for value in noise if isinstance(noise, list) else [noise]:
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"--noise: expected finite numbers >= 0, received {value!r}.")
    out = getattr(args, "out", None)
    if out is not None:
        check_output_dir(out, "--out")


def quiet(args: argparse.Namespace) -> bool:
    """Whether to print nothing but the result: ``--quiet``, or ``--json`` (stdout holds the JSON only)."""
    return bool(args.quiet or args.json)


def emit_json(args: argparse.Namespace, result) -> None:
    """With ``--json``, print ``result`` as strict JSON on one line (see :func:`udesci.evaluate.jsonable`)."""
    if args.json:
        from .evaluate import jsonable

        print(json.dumps(jsonable(result)))


def adequate(result: dict) -> bool:
    """False when a run's result says its discovery was labelled inadequate (``result["adequacy"]["adequate"]``).

    Parameters
    ----------
    result : dict
        A pipeline's result; without an ``adequacy`` entry (nothing discovered) the run counts as adequate.

    Returns
    -------
    bool
    """
    record = result.get("adequacy") if isinstance(result, dict) else None
    return not (isinstance(record, dict) and record.get("adequate") is False)


def exit_code(passed: bool, required: bool = True) -> int:
    """:data:`EXIT_OK`, or :data:`EXIT_CHECK` when a ``required`` check did not pass."""
    return EXIT_OK if (passed or not required) else EXIT_CHECK


__all__ = [
    "DEBUG_HELP", "EXIT_CHECK", "EXIT_INTERNAL", "EXIT_INTERRUPT", "EXIT_OK", "EXIT_USAGE", "adequate", "add_debug",
    "add_expect",
    "add_noise", "add_out", "add_run_flags", "add_seed", "check_common", "emit_json", "exit_code", "noise_level",
    "noise_list", "quiet",
]  # fmt: skip
