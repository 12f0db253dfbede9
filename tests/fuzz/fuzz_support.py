"""Shared pieces of the fuzz suite: the contract check, hang and injection guards, known bugs, strategies.

The contract every fuzzed entry point must keep: it returns a valid result or raises a udesci error
(:class:`udesci.errors.UdesciError`), never another exception type, never hangs, and never runs code
from its input.  :func:`run_contract` runs one call under a hard time limit and the injection guard
and sorts its outcome: a result, a udesci error, a *known bug* the property tolerates (listed in
:data:`KNOWN_BUGS`, each with a strict-xfail reproducer in the test modules), or anything else, which
is re-raised so hypothesis shrinks it.

Each property runs under two hypothesis profiles registered in ``tests/conftest.py``: ``default``
(a modest, derandomized number of examples) and ``thorough`` (thousands, marked ``slow``);
:func:`run_property` applies one and counts the examples run (``tests/fuzz/conftest.py`` prints the
counts at the end of the session).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from sympy.core.cache import clear_cache

import udesci as ud
from udesci.errors import UdesciError

#: Examples run per property in this session (read by the terminal summary in conftest.py).
COUNTS: Counter = Counter()

#: The profiles every property runs under; the thorough one is a slow test (``pytest -m slow``).
PROFILES = [
    pytest.param("default", id="default"),
    pytest.param("thorough", id="thorough", marks=pytest.mark.slow),
]

#: Seconds one example may take when the profile has no deadline.
CALL_LIMIT = 5.0

#: Part of every marker file's name: an injected payload that ran would create such a file.
MARKER_NAME = "udesci-fuzz-marker"


# ----------------------------------------------------------------------------------------------
# guards: hangs and code execution
# ----------------------------------------------------------------------------------------------
class Hang(Exception):
    """Raised by :func:`time_limit` when a call runs past its limit."""


def _raise_hang(signum, frame):
    raise Hang("the call ran past its time limit")


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` inside the block after ``seconds`` (SIGALRM; an outer alarm is kept).

    An alarm already set (the whole-test guard of conftest.py) is suspended and re-armed with its
    remaining time afterwards; if it would fire first, it fires as this limit.
    """
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    outer_handler = signal.signal(signal.SIGALRM, _raise_hang)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_left) if outer_left else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 0.001))


def fresh_hang(err: Hang) -> Hang:
    """A new :class:`Hang` saying where ``err`` stopped the call.

    The traceback of an exception raised by a signal handler can hold an entry without a line number,
    which pytest cannot render (INTERNALERROR); the new exception is raised from plain code.
    """
    where = "?"
    try:
        last = traceback.extract_tb(err.__traceback__)[-2:]
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in last)
    except Exception:  # noqa: BLE001 - the location is only for the message
        pass
    return Hang(f"{err} (stopped in {where})")


_ARMED: list[list] = []  # stack of event lists while injection_guard is open
_PROCESS_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "subprocess.Popen", "pty.spawn")


def _audit(name: str, args: tuple) -> None:
    if not _ARMED:
        return
    if name in _PROCESS_EVENTS:
        _ARMED[-1].append((name, args[:1]))
    elif name in ("open", "os.open", "os.utime", "os.mkdir") and args:
        target = args[0]
        if isinstance(target, (str, bytes, os.PathLike)) and MARKER_NAME in os.fsdecode(target):
            _ARMED[-1].append((name, target))


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records nothing unless a guard is open


@contextmanager
def injection_guard(marker: Path | None = None):
    """Fail if the block starts a process or touches a marker file, or if ``marker`` exists afterwards."""
    seen: list = []
    _ARMED.append(seen)
    try:
        yield
    finally:
        _ARMED.pop()
    assert not seen, f"code from the input ran: audit events {seen}"
    if marker is not None:
        assert not marker.exists(), f"code from the input ran: {marker} was created"


# ----------------------------------------------------------------------------------------------
# known bugs: what the properties tolerate until they are fixed (each with a strict-xfail reproducer)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KnownBug:
    """A bug the fuzz suite found; ``matches(error)`` recognises its symptom."""

    id: str
    summary: str
    matches: Callable[[BaseException], bool]


#: The bugs the properties tolerate until they are fixed, by id; each has a strict-xfail reproducer in
#: the test modules.  Every bug found before is fixed and its reproducer is a regression test asserting
#: the fix (their ids and summaries are in the git history).
KNOWN_BUGS: dict[str, KnownBug] = {}


@dataclass(frozen=True)
class Outcome:
    """How one call ended: ``value`` (a result), ``error`` (a udesci error) or ``known`` (a known bug's id)."""

    value: object = None
    error: UdesciError | None = None
    known: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.known is None


def run_contract(fn: Callable, *args, known=(), limit: float | None = None, marker: Path | None = None, **kwargs):
    """Call ``fn`` under the contract; return an :class:`Outcome` or re-raise a violation.

    Parameters
    ----------
    fn : callable
    *args, **kwargs
        Passed to ``fn``.
    known : iterable of str
        Ids of :data:`KNOWN_BUGS` this call may run into; they are recorded, not raised.
    limit : float, optional
        Seconds before the call counts as a hang (:class:`Hang`); inside a property the
        per-example alarm of :func:`run_property` already applies.
    marker : Path, optional
        A marker file that must not exist afterwards.
    """
    with injection_guard(marker):
        try:
            with time_limit(limit) if limit else nullcontext():
                return Outcome(value=fn(*args, **kwargs))
        except UdesciError as err:
            return Outcome(error=err)
        except Exception as err:  # noqa: BLE001 - sorting every other exception is the point
            for bug_id in known:
                if KNOWN_BUGS[bug_id].matches(err):
                    if currently_in_test_context():
                        event(f"known bug: {bug_id}")
                    return Outcome(known=bug_id)
            if isinstance(err, Hang):
                raise fresh_hang(err) from None
            raise


def run_property(profile: str, name: str, strategy, check: Callable, *, scale: float = 1.0) -> None:
    """Run ``check(example)`` on examples of ``strategy`` under the hypothesis ``profile``.

    The profile's ``deadline`` is enforced as a hard per-example alarm (:func:`time_limit`): it also
    stops an example that never finishes, which hypothesis' own deadline (measured afterwards) cannot,
    and lets a known slow path be recorded as such.  ``scale`` multiplies the profile's number of
    examples (cheap properties run more).  Every example is counted in :data:`COUNTS` under ``name``,
    and by how it ended (``"name [result]"``, ``"name [udesci error]"``, ``"name [known id]"``) when
    ``check`` returns an :class:`Outcome`.
    """
    base = settings.get_profile(profile)
    per_example = base.deadline.total_seconds() if base.deadline is not None else CALL_LIMIT

    @settings(base, max_examples=max(1, int(base.max_examples * scale)), deadline=None)
    @given(strategy)
    def prop(example):
        COUNTS[name] += 1
        clear_cache()  # SymPy's cache would make a slow first evaluation fast on hypothesis' replay
        try:
            with time_limit(per_example):
                result = check(example)
        except Hang as err:
            raise fresh_hang(err) from None
        if isinstance(result, Outcome):
            kind = f"known {result.known}" if result.known else ("udesci error" if result.error else "result")
            COUNTS[f"{name} [{kind}]"] += 1

    prop()


# ----------------------------------------------------------------------------------------------
# payloads
# ----------------------------------------------------------------------------------------------
def payloads(marker: Path) -> list[str]:
    """Expressions that would create ``marker`` (or start a process) if anything evaluated them."""
    m = str(marker)
    return [
        f"__import__('pathlib').Path({m!r}).touch()",
        f"open({m!r}, 'w')",
        f"exec(\"open({m!r}, 'w')\")",
        f"eval(\"__import__('os').system('touch {m}')\")",
        f"(lambda: __import__('pathlib').Path({m!r}).touch())()",
        f"[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen'][0](['touch', {m!r}])",
        f"getattr(__builtins__, 'open')({m!r}, 'w')",
        f"x; __import__('pathlib').Path({m!r}).touch()",
        f"x\n__import__('pathlib').Path({m!r}).touch()",
        f"Symbol({m!r}).__class__.__init__.__globals__['os'].system('touch {m}')",
    ]


@st.composite
def spliced(draw, text_strategy, marker: Path):
    """A text of ``text_strategy`` with a payload spliced in at a random place (or around it)."""
    text = draw(text_strategy)
    payload = draw(st.sampled_from(payloads(marker)))
    how = draw(st.sampled_from(["insert", "prefix", "suffix", "argument", "operand", "alone"]))
    if how == "insert":
        i = draw(st.integers(0, len(text)))
        return text[:i] + payload + text[i:]
    if how == "prefix":
        return payload + text
    if how == "suffix":
        return text + payload
    if how == "argument":
        return f"sin({payload}) + ({text})"
    if how == "operand":
        return f"({text}) * ({payload})"
    return payload


# ----------------------------------------------------------------------------------------------
# expression text: a grammar of valid-looking Python/SymPy expressions
# ----------------------------------------------------------------------------------------------
ALLOWED_FUNCTIONS = list(ud.export.FUNCTIONS)
OTHER_CALLABLES = [
    "eval", "exec", "open", "getattr", "print", "__import__", "Symbol", "sympify", "lambdify", "Function",
    "Integral", "Derivative", "factorial", "gamma", "Mod", "Rational", "Float", "I", "zoo", "type", "vars",
]  # fmt: skip
FORBIDDEN_NAMES = [
    "zoo", "I", "nan", "inf", "os", "sys", "exec", "eval", "open", "__import__", "__builtins__", "Symbol",
    "True", "False", "None", "...", "__class__", "self", "S", "Integer",
]  # fmt: skip
BINARY_OPS = [
    "+", "-", "*", "/", "**", "//", "%", "@", "&", "|", "^", "<<", ">>", "<", "<=", ">", ">=", "==", "!=",
    " and ", " or ", " is ", " in ", " not in ",
]  # fmt: skip
NUMBER_LITERALS = [
    "0", "1", "-1", "2", "10**20", "1" + "0" * 400, "1e308", "1e-320", "1e400", "0.0", "-0.0", ".5", "5.",
    "1_000.5", "0x1f", "0o17", "0b101", "1j", "1e5j", "00", "1__0", "9" * 30, "2**64", "4.9e-324",
]  # fmt: skip
#: Exponents of ``**``: atoms only, so nested powers stay small (huge exponents have their own property).
EXPONENTS = ["0", "1", "2", "3", "-1", "-2", "8", "0.5", "(1/2)", "(-1/3)", "2.5", "oo", "pi", "64", "-64"]


def number_text():
    return st.one_of(
        st.integers(-(10**6), 10**6).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(NUMBER_LITERALS),
    )


def expression_text(names=("x", "y", "k"), functions=("U",), *, max_leaves: int = 20):
    """Strategy: expression strings from a grammar of numbers, names, operators, calls and Python syntax
    udesci must refuse (attributes, subscripts, lambdas, comprehensions, f-strings, keywords, ...)."""
    names = list(names)
    leaves = st.one_of(
        st.sampled_from(names),
        st.sampled_from(["pi", "E", "oo"]),
        number_text(),
        st.sampled_from(FORBIDDEN_NAMES),
        st.sampled_from(["'abc'", '"x"', "b'x'", "f'{x}'", "''"]),
    )
    callables = [*ALLOWED_FUNCTIONS, *functions, *OTHER_CALLABLES]

    def extend(inner):
        pair = st.tuples(inner, inner)
        return st.one_of(
            st.tuples(st.sampled_from(["-", "+", "~", "not "]), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, st.sampled_from(BINARY_OPS), inner, st.booleans()).map(
                lambda t: f"({t[0]}){t[1]}({t[2]})" if t[3] else f"{t[0]}{t[1]}{t[2]}"
            ),
            st.tuples(inner, st.sampled_from(EXPONENTS)).map(lambda t: f"({t[0]})**{t[1]}"),
            st.tuples(st.sampled_from(callables), st.lists(inner, max_size=3)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"
            ),
            st.tuples(inner, pair, inner).map(
                lambda t: f"Piecewise(({t[0]}, ({t[1][0]}) > ({t[1][1]})), ({t[2]}, True))"
            ),
            st.tuples(inner, st.sampled_from(["<", "<=", ">", ">="]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
            st.tuples(
                inner, st.sampled_from(["__class__", "real", "func", "args", "evalf", "subs", "__globals__"])
            ).map(lambda t: f"({t[0]}).{t[1]}"),
            pair.map(lambda t: f"({t[0]})[{t[1]}]"),
            inner.map(lambda e: f"(lambda: {e})()"),
            st.tuples(st.sampled_from(names), inner).map(lambda t: f"(lambda {t[0]}: {t[1]})(1)"),
            pair.map(lambda t: f"[{t[0]} for _v in ({t[1]},)]"),
            pair.map(lambda t: f"sum({t[0]} for _v in ({t[1]},))"),
            pair.map(lambda t: f"({t[0]}, {t[1]})"),
            pair.map(lambda t: f"{{{t[0]}: {t[1]}}}"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
            st.tuples(st.sampled_from(names), inner).map(lambda t: f"({t[0]} := {t[1]})"),
            st.tuples(st.sampled_from(callables), inner).map(lambda t: f"{t[0]}(*[{t[1]}])"),
            st.tuples(st.sampled_from(callables), pair).map(lambda t: f"{t[0]}({t[1][0]}, k={t[1][1]})"),
            inner.map(lambda e: f"f'{{{e}}}'"),
            pair.map(lambda t: f"{t[0]} < {t[1]} < 1"),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def arithmetic_text(names=("x", "y", "k"), functions=("U",), *, max_leaves: int = 15):
    """Strategy: expression strings inside udesci's grammar (most parse), for round trips and models."""
    names = list(names)
    leaves = st.one_of(
        st.sampled_from(names),
        st.sampled_from(["pi", "E", "oo"]),
        st.integers(-1000, 1000).map(str),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12).map(repr),
        st.sampled_from(["0", "1", "2", "(1/3)", "0.5", "1e-300", "1e300", "10**20", "1" + "0" * 400]),
    )
    unary = [f for f, (_, lo, _) in ud.export.FUNCTIONS.items() if lo == 1 and f not in ("Piecewise", "Min", "Max")]

    def extend(inner):
        pair = st.tuples(inner, inner)
        return st.one_of(
            inner.map(lambda e: f"-({e})"),
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
            st.tuples(inner, st.sampled_from(EXPONENTS)).map(lambda t: f"({t[0]})**{t[1]}"),
            st.tuples(st.sampled_from(unary), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(["Min", "Max", "atan2", "log"]), pair).map(
                lambda t: f"{t[0]}({t[1][0]}, {t[1][1]})"
            ),
            st.tuples(inner, pair, inner).map(
                lambda t: f"Piecewise(({t[0]}, ({t[1][0]}) > ({t[1][1]})), ({t[2]}, True))"
            ),
            st.tuples(st.sampled_from(list(functions)), st.lists(st.sampled_from(names), min_size=1, max_size=2)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"
            ),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


WRAPPERS = [
    ("(", ")"), ("-", ""), ("+", ""), ("~", ""), ("not ", ""), ("sin(", ")"), ("x+(", ")"), ("x*(", ")"),
    ("x**(", ")"), ("[", "]"), ("{", "}"), ("U(", ")"), ("lambda: ", ""), ("Abs(", ")"), ("Min(x, ", ")"),
    ("Piecewise((", ", True))"), ("(x < ", ")"), ("f'{", "}'"), ("exp(", ")"),
]  # fmt: skip


@st.composite
def deeply_nested(draw):
    """``wrapper * n + core + closer * n`` for n up to a few thousand (some exceed the length limit)."""
    prefix, suffix = draw(st.sampled_from(WRAPPERS))
    depth = draw(st.one_of(st.integers(1, 120), st.integers(120, 3000)))
    core = draw(st.sampled_from(["x", "1", "2.5", "k", "oo", "U(x)"]))
    return prefix * depth + core + suffix * depth


# ----------------------------------------------------------------------------------------------
# values: JSON-like data, parameter values
# ----------------------------------------------------------------------------------------------
BIG_INTS = [2**31, 2**53 + 1, 2**63, 2**64, 10**20, 10**400, -(10**400), 10**12]


def scalar_values(marker: Path | None = None):
    """Strategy: JSON scalars, with edge cases (huge ints, NaN/inf, names, expression strings, payloads)."""
    texts = [
        st.text(max_size=12),
        st.sampled_from(["x", "y", "U", "t", "alpha", "__class__", "lambda", "", "1x", "a b", "float64", "tanh"]),
        arithmetic_text(max_leaves=4),
    ]
    if marker is not None:
        texts.append(st.sampled_from(payloads(marker)))
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 100),
        st.sampled_from(BIG_INTS),
        st.floats(),
        *texts,
    )


def json_values(marker: Path | None = None):
    """Strategy: JSON values (nested lists/objects of :func:`scalar_values`)."""
    return st.recursive(
        scalar_values(marker),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
        max_leaves=10,
    )


# ----------------------------------------------------------------------------------------------
# evaluating a built model
# ----------------------------------------------------------------------------------------------
def evaluate_field(model: ud.HybridModel, batch: int = 3) -> torch.Tensor:
    """``model.module(t, y)`` on a small batch (inputs bound to a short series); checks the shape."""
    dtype = model.module.dtype
    n = len(model.states)
    y = torch.linspace(-1.5, 2.0, batch * n, dtype=dtype).reshape(batch, n)
    t = torch.tensor(0.25, dtype=dtype)
    interp = None
    if model.inputs:
        m = len(model.inputs)
        values = np.linspace(0.0, 1.0, 3 * m).reshape(3, m)
        interp = ud.InputInterpolator([np.array([0.0, 0.5, 1.0])], [values], dtype=dtype)
    index = torch.zeros(batch, dtype=torch.long)
    with torch.no_grad(), model.module.bound_inputs(interp, index):
        out = model.module(t, y)
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (batch, n), f"field output {out!r}"
    return out


def is_finite_number(value) -> bool:
    """Whether ``value`` is a real, finite int or float (not bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def unprintable(expr) -> bool:
    """Whether a SymPy value holds something :func:`udesci.expr.sstr` cannot write back as parseable text of
    the same value (the parser refuses all of them): zoo, nan, I, AccumBounds, ITE (SymPy's rewrite of a
    Piecewise inside a condition), or a Float outside the double range."""
    if not isinstance(expr, sp.Basic):
        return False
    for node in sp.preorder_traversal(expr):
        if node in (sp.zoo, sp.nan, sp.I) or isinstance(node, (sp.AccumBounds, sp.ITE)):
            return True
        if isinstance(node, sp.Float):
            value = float(node)
            if not math.isfinite(value) or sp.Float(value) != node:
                return True
    return False
