"""Fuzz: the ``udesci`` command, ``udesci.cli.main(argv)``, with random argument lists.

Argument lists are drawn from the real subcommands and flags, their values (numbers, edge numbers,
choices, paths to valid and broken config files) and garbage.  No pipeline ever runs: the functions the
subcommands call are replaced by stubs returning a minimal result, except that ``udesci run``'s stub
loads the config as a run would before training (``udesci.runner.load``).  Property: ``main`` returns
an exit code in {0, 1, 2, 3, 130} or raises SystemExit with code 0 or 2 (argparse), never anything
else, and does not hang.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from fuzz_support import COUNTS, PROFILES, payloads, run_contract, run_property
from hypothesis import strategies as st

import udesci.pipelines.lotka_volterra
import udesci.pipelines.lynx_hare
import udesci.pipelines.systems
import udesci.pipelines.weather
import udesci.study
from udesci import cli, runner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TOML = ROOT / "examples" / "lotka_volterra.toml"
EXIT_CODES = {0, 1, 2, 3, 130}

COMMANDS = [
    [], ["example"], ["run"], ["study"], ["study", "recovery"], ["example", "bogus"], ["bogus"],
    *(["example", name] for name in ("lotka-volterra", "weather", "lynx-hare", "duffing", "logistic", "forced")),
]  # fmt: skip
FLAGS = [
    "--out", "--seed", "--noise", "--fast", "--quiet", "--json", "--expect", "--case", "--windows", "--holdout",
    "--runs", "--workers", "--backend", "--address", "--timeout", "--retry-failed", "--version", "--help", "-h",
    "--nope", "-x", "--", "-", "--seed=3", "--fast=1", "--noise=nan", "--out=",
]  # fmt: skip
NUMBERS = [
    "0", "1", "-1", "3", "10", "0.05", "-0.1", "nan", "inf", "-inf", "1e999", "1e-320", "0x10", "1_000", "",
    "1,2", "0.001,nan", "0.01,0.05", ",", "0,-1", "١٢", "99999999999999999999", str(2**64), str(2**63), "1,3,7",
    "0,1", "-5", "abc", "1.5",
]  # fmt: skip
CHOICES = ["greensboro", "dwd", "both", "process", "ray", "serial", "bogus", "auto"]


def stub(result):
    def run(*args, **kwargs):
        return result

    return run


def run_stub(path, *, out=None, seed=None, fast=False, quiet=False):
    """``runner.run_config`` up to training: load, validate and build; then a passing result."""
    runner.load(path, seed=seed, fast=fast)
    return {"check": {"passed": True}}


@pytest.fixture
def stubbed(monkeypatch):
    """Replace every function a subcommand runs by a stub (nothing trains, nothing is written)."""
    monkeypatch.setattr(udesci.pipelines.lotka_volterra, "run_pipeline", stub({"correct_structure": True}))
    monkeypatch.setattr(udesci.pipelines.weather, "run_pipeline", stub({"check": {"passed": False}}))
    monkeypatch.setattr(udesci.pipelines.lynx_hare, "run_pipeline", stub({"interaction_found": True}))
    monkeypatch.setattr(udesci.pipelines.systems, "run", stub({"correct_structure": False}))
    monkeypatch.setattr(udesci.study, "recovery_study", stub({"table": [], "paths": {}, "ran": 0, "skipped": 0}))
    monkeypatch.setattr(runner, "run_config", run_stub)


def call_main(argv):
    """``cli.main(argv)`` with its output captured; returns the exit code (SystemExit's too)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2), f"SystemExit({exc.code!r}) for {argv!r}"
            return exc.code
    assert isinstance(code, int) and code in EXIT_CODES, f"main returned {code!r} for {argv!r}"
    return code


def argument_lists(configs: list[str], marker: Path):
    """Strategy: argument lists of a subcommand, a config path, flags with and without values."""
    values = st.one_of(
        st.sampled_from(NUMBERS),
        st.sampled_from(CHOICES),
        st.sampled_from(configs),
        st.sampled_from(payloads(marker)),
        st.text(max_size=8),
    )
    return arguments(configs, values)


@st.composite
def arguments(draw, configs: list[str], values):
    argv = list(draw(st.sampled_from(COMMANDS)))
    if argv[:1] == ["run"] and draw(st.integers(0, 4)):
        argv.append(draw(st.sampled_from(configs)))
    for _ in range(draw(st.integers(0, 5))):
        flag = draw(st.sampled_from(FLAGS))
        argv += [flag, draw(values)] if draw(st.booleans()) else [flag]
    if draw(st.integers(0, 5)) == 0:
        argv = draw(st.permutations(argv))
    return argv


@pytest.mark.parametrize("profile", PROFILES)
def test_random_argument_lists(profile, tmp_path, stubbed):
    marker = tmp_path / "udesci-fuzz-marker-cli"
    broken = tmp_path / "broken.toml"
    broken.write_text('title = "x"\n[data]\nfile = "nowhere.csv"\n')
    valid = tmp_path / "valid.toml"
    text = EXAMPLE_TOML.read_text(encoding="utf-8")
    valid.write_text(text.replace("../data/", str(ROOT / "data") + "/"), encoding="utf-8")
    configs = [str(valid), str(broken), str(tmp_path / "missing.toml"), str(tmp_path), "a" * 300, "/dev/null"]

    def check(argv):
        outcome = run_contract(call_main, argv, marker=marker)
        if outcome.ok:
            COUNTS[f"cli: udesci argv (exit {outcome.value})"] += 1
        return outcome

    run_property(profile, "cli: udesci argv", argument_lists(configs, marker), check, scale=4)


# ----------------------------------------------------------------------------------------------
# bugs the property above found, fixed: regression tests
# ----------------------------------------------------------------------------------------------
def test_known_seed_beyond_64_bits(tmp_path, stubbed):
    valid = tmp_path / "valid.toml"
    valid.write_text(EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(ROOT / "data") + "/"))
    assert run_contract(call_main, ["run", str(valid), "--seed", str(2**64)], limit=30).value == 2


def test_known_config_path_too_long(stubbed):
    assert run_contract(call_main, ["run", "a" * 5000 + ".toml"], limit=30).value == 2
