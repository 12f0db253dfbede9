"""Guards of the fuzz suite: one torch thread, a whole-test alarm, a memory cap, and the example counts.

Without hypothesis (it is in the dev extra) the fuzz modules are not collected.
"""

from __future__ import annotations

import os
import resource
import signal

import pytest

try:
    import hypothesis  # noqa: F401
except ImportError:
    collect_ignore_glob = ["*.py"]

#: Seconds a whole fuzz test may run (default profile, thorough profile) before the alarm fires.
WHOLE_TEST_LIMIT = {"default": 300, "thorough": 3600}
#: Address space a fuzz test may add to the process (a runaway allocation fails instead of swapping).
MEMORY_HEADROOM = 3 * 2**30


class WholeTestHang(Exception):
    """Raised by the whole-test alarm."""


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(autouse=True)
def fuzz_guard(request, one_thread):
    """One torch thread, ``signal.alarm`` against a hanging test, and RLIMIT_AS against a runaway example.

    SymPy's cache is cleared first, so a slow first evaluation is not hidden by an earlier test's result.
    """
    from sympy.core.cache import clear_cache

    clear_cache()
    slow = request.node.get_closest_marker("slow") is not None
    limit = WHOLE_TEST_LIMIT["thorough" if slow else "default"]

    def fire(signum, frame):
        raise WholeTestHang(f"the whole test ran past {limit} s")

    old_handler = signal.signal(signal.SIGALRM, fire)
    signal.alarm(limit)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)


def pytest_terminal_summary(terminalreporter):
    """Print how many examples each fuzz property ran (and how often it met a known bug)."""
    try:
        from fuzz_support import COUNTS
    except ImportError:
        return
    if not COUNTS:
        return
    terminalreporter.section("fuzz examples run")
    width = max(len(name) for name in COUNTS)
    for name in sorted(COUNTS):
        terminalreporter.write_line(f"{name:<{width}}  {COUNTS[name]:>7}")
