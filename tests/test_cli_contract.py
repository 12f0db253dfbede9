"""The ``udesci`` command's contract: exit codes (0 ok, 1 check failed, 2 usage/config/data, 3 internal,
130 interrupted), one-line messages with the traceback only under ``--debug``, the same checks of the shared
flags in every subcommand, defaults in every option's help, and answers before torch is imported.

Nothing here trains: the run itself is replaced in-process (monkeypatching ``udesci.runner.run_config``) where
a test needs a run to finish or fail in a particular way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import udesci.runner
from udesci import cli
from udesci.cli_common import EXIT_CHECK, EXIT_INTERNAL, EXIT_INTERRUPT, EXIT_OK, EXIT_USAGE
from udesci.cli_study import EXAMPLE_SYSTEMS
from udesci.errors import DataError, ModelError, TrainingError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

PIPELINE = """
[data]
file = "decay.csv"
time = "t"
states = ["x"]

[model.equations]
x = "-k*x + U(x)"

[model.parameters]
k = { value = 0.5, learnable = true }
"""

# every subcommand, with the arguments it needs to get past parsing, and the shared flags it takes
FLAGS = {
    "lotka-volterra": {"--seed", "--noise", "--out"},
    "weather": {"--seed", "--out"},
    "lynx-hare": {"--seed", "--out"},
    "duffing": {"--seed", "--noise"},  # the systems examples write no files
    "logistic": {"--seed", "--noise"},
    "forced": {"--seed", "--noise"},
    "run": {"--seed", "--out"},
    "study": {"--noise", "--out"},  # seeds 0..RUNS-1
}
COMMANDS = {
    "lotka-volterra": ["example", "lotka-volterra"],
    "weather": ["example", "weather"],
    "lynx-hare": ["example", "lynx-hare"],
    "duffing": ["example", "duffing"],
    "logistic": ["example", "logistic"],
    "forced": ["example", "forced"],
    "run": ["run", "pipeline.toml"],
    "study": ["study", "recovery", "--runs", "1"],
}


def _pipeline(folder: Path, text: str = PIPELINE) -> Path:
    t = np.linspace(0.0, 4.0, 21)
    pd.DataFrame({"t": t, "x": 2.0 * np.exp(-0.8 * t)}).to_csv(folder / "decay.csv", index=False)
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(text))
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _fake_run(result: dict | None = None, raises: BaseException | None = None):
    def run_config(cfg, **kwargs):
        if raises is not None:
            raise raises
        return result

    return run_config


# -- exit codes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("passed", "code"), [(True, EXIT_OK), (False, EXIT_CHECK)])
def test_exit_0_ok_and_1_check_failed(tmp_path, monkeypatch, passed, code):
    monkeypatch.setattr(udesci.runner, "run_config", _fake_run({"check": {"passed": passed}}))
    assert cli.main(["run", str(_pipeline(tmp_path)), "--quiet"]) == code


@pytest.mark.parametrize(
    ("adequacy", "expect", "code"),
    [
        ({"adequate": True}, True, EXIT_OK),
        ({"adequate": False}, True, EXIT_CHECK),
        ({"adequate": False}, False, EXIT_OK),
    ],
)
def test_example_expect_fails_on_an_inadequate_closed_form(tmp_path, monkeypatch, adequacy, expect, code):
    # the right terms recovered, but the closed form labelled inadequate: --expect must not pass it
    import udesci.pipelines.lotka_volterra as lv

    monkeypatch.setattr(lv, "run_pipeline", lambda **kw: {"correct_structure": True, "adequacy": adequacy})
    argv = ["example", "lotka-volterra", "--out", str(tmp_path / "o"), "--quiet"] + (["--expect"] if expect else [])
    assert cli.main(argv) == code


def test_run_exits_1_on_an_inadequate_discovery_even_without_a_check_table(tmp_path, monkeypatch):
    result = {"check": {"passed": True}, "adequacy": {"adequate": False}}
    monkeypatch.setattr(udesci.runner, "run_config", _fake_run(result))
    assert cli.main(["run", str(_pipeline(tmp_path)), "--quiet"]) == EXIT_CHECK


@pytest.mark.parametrize(
    "error",
    [DataError("data: bad"), ModelError("model: bad"), TrainingError("loss: nan"), FileNotFoundError(2, "gone")],
    ids=["DataError", "ModelError", "TrainingError", "OSError"],
)
def test_exit_2_for_udesci_errors_and_unreadable_files(tmp_path, monkeypatch, capsys, error):
    monkeypatch.setattr(udesci.runner, "run_config", _fake_run(raises=error))
    assert cli.main(["run", str(_pipeline(tmp_path))]) == EXIT_USAGE
    assert _error_line(capsys) == f"udesci: error: {error}"


def test_exit_2_for_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["example", "lotka-volterra", "--bogus"])
    assert exc.value.code == EXIT_USAGE
    assert cli.main([]) == EXIT_USAGE  # no command: the help, and 2
    assert "usage: udesci" in capsys.readouterr().out


def test_exit_130_when_interrupted(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(udesci.runner, "run_config", _fake_run(raises=KeyboardInterrupt()))
    assert cli.main(["run", str(_pipeline(tmp_path))]) == EXIT_INTERRUPT
    assert _error_line(capsys) == "udesci: interrupted"


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_exit_3_for_an_internal_error(tmp_path, monkeypatch, capsys, debug):
    monkeypatch.setattr(udesci.runner, "run_config", _fake_run(raises=RuntimeError("boom\nsecond line")))
    assert cli.main(["run", str(_pipeline(tmp_path)), *debug]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    if debug:
        assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
        assert err.strip().splitlines()[-1] == "udesci: internal error: RuntimeError: boom second line"
    else:
        assert err.strip() == (
            "udesci: internal error: RuntimeError: boom second line (run with --debug for the traceback)"
        )


def test_debug_is_accepted_before_the_subcommand_and_shows_the_traceback_of_usage_errors(tmp_path, capsys):
    path = _pipeline(tmp_path, PIPELINE.replace('time = "t"', 'time = "t"\nbogus = 1'))
    assert cli.main(["--debug", "run", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ConfigError" in err
    assert err.strip().splitlines()[-1].startswith(f"udesci: error: {path}: [data] bogus: unknown key")
    assert cli.main(["run", str(path)]) == EXIT_USAGE
    assert "Traceback" not in _error_line(capsys)


def test_internal_error_in_a_subprocess_exit_code_and_traceback_only_with_debug(tmp_path):
    """The console entry point's real exit status and stderr; the error is injected in the child process."""
    path = _pipeline(tmp_path)
    code = textwrap.dedent(
        """
        import sys
        import udesci.config
        import udesci.cli

        def broken(*args, **kwargs):
            raise ZeroDivisionError("injected by the test")

        udesci.config.load_config = broken
        sys.exit(udesci.cli.main(sys.argv[1:]))
        """
    )
    for debug in (False, True):
        argv = [sys.executable, "-c", code, "run", str(path)] + (["--debug"] if debug else [])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=ENV)
        assert proc.returncode == EXIT_INTERNAL, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("udesci: internal error: ZeroDivisionError: injected by the test")
        if debug:
            assert "Traceback (most recent call last)" in proc.stderr and "in broken" in proc.stderr
        else:
            assert len(lines) == 1 and lines[0].endswith("(run with --debug for the traceback)")


# -- shared flags, checked the same way everywhere -----------------------------------------------------


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--seed", "-1", "--seed: expected an int >= 0, received -1."),
        ("--seed", str(2**63), f"--seed: expected an int < 2**63 = {2**63}, received {2**63}."),
        ("--out", "FILE", "is an existing file; expected a folder"),
        ("--out", "FILE/sub", "a file; expected a folder"),
    ],
)
def test_shared_flags_are_checked_in_every_subcommand(tmp_path, monkeypatch, capsys, name, flag, value, fragment):
    if flag not in FLAGS[name]:
        with pytest.raises(SystemExit) as exc:  # a flag a command does not take is a usage error there
            cli.main([*COMMANDS[name], flag, value])
        assert exc.value.code == EXIT_USAGE
        return
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("not a folder")
    _pipeline(tmp_path)
    assert cli.main([*COMMANDS[name], flag, value]) == EXIT_USAGE
    line = _error_line(capsys)
    assert line.startswith(f"udesci: error: {flag}: ") and fragment in line


@pytest.mark.parametrize("name", [name for name, flags in FLAGS.items() if "--noise" in flags])
@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_noise_is_checked_in_every_subcommand_that_takes_it(capsys, name, value):
    assert cli.main([*COMMANDS[name], f"--noise={value}"]) == EXIT_USAGE
    assert _error_line(capsys).startswith("udesci: error: --noise: expected finite numbers >= 0")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--runs", "0"], "--runs: expected an int >= 1, received 0."),
        (["--runs", "1000000000"], "--runs: received 1000000000, over the limit runs = "),
        (["--runs", "1", "--workers", "0"], "--workers: expected an int >= 1, received 0."),
        (["--runs", "1", "--workers", "1000000"], "--workers: received 1000000, over the limit workers = "),
        (["--runs", "1", "--timeout", "nan"], "--timeout: expected a positive number of seconds, received nan."),
        (["--runs", "1", "--timeout", "-5"], "--timeout: expected a positive number of seconds"),
        (["--runs", "1", "--address", "auto"], "--address: only used with --backend ray."),
    ],
)
def test_study_options_are_checked_before_anything_runs(capsys, argv, fragment):
    assert cli.main(["study", "recovery", *argv]) == EXIT_USAGE
    assert fragment in _error_line(capsys)


# -- config and data errors of `udesci run` ------------------------------------------------------------


def test_run_seed_in_the_file_is_checked(tmp_path, capsys):
    path = _pipeline(tmp_path, f"seed = {2**63}\n" + PIPELINE)
    assert cli.main(["run", str(path)]) == EXIT_USAGE
    assert _error_line(capsys) == (
        f"udesci: error: {path}: (top level) seed: expected an int < 2**63 = {2**63}, received {2**63}."
    )
    path = _pipeline(tmp_path, "seed = -3\n" + PIPELINE)
    assert cli.main(["run", str(path)]) == EXIT_USAGE
    assert "(top level) seed: expected an int >= 0, received -3." in _error_line(capsys)


def test_run_a_toml_that_is_not_utf8(tmp_path, capsys):
    path = _pipeline(tmp_path)
    path.write_bytes(PIPELINE.replace('time = "t"', 'time = "t"\n# Würzburg').encode("latin-1"))
    assert cli.main(["run", str(path)]) == EXIT_USAGE
    line = _error_line(capsys)
    assert line.startswith(f"udesci: error: {path}: not a UTF-8 text file (byte ") and "UnicodeDecodeError" not in line


def test_run_with_nothing_to_train(tmp_path, capsys):
    text = PIPELINE.replace('x = "-k*x + U(x)"', 'x = "-k*x"').replace("{ value = 0.5, learnable = true }", "0.5")
    path = _pipeline(tmp_path, text)
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out")]) == EXIT_USAGE
    assert _error_line(capsys) == (
        f"udesci: error: {path}: [model]: nothing to train: the model has no unknown function and no learnable "
        "parameter; expected an unknown such as U(x) in [model.equations] or a parameter "
        "{ value = ..., learnable = true } in [model.parameters]."
    )
    assert not (tmp_path / "out").exists()


def test_run_a_state_that_is_not_in_the_data(tmp_path, capsys):
    text = PIPELINE.replace('states = ["x"]', 'states = ["x", "z"]').replace(
        'x = "-k*x + U(x)"', 'x = "-k*x + U(x)"\nz = "-z"'
    )
    path = _pipeline(tmp_path, text)
    assert cli.main(["run", str(path)]) == EXIT_USAGE
    assert _error_line(capsys) == (
        f"udesci: error: {path}: [data] states: column 'z' not in decay.csv (columns: ['t', 'x'])."
    )
    text = PIPELINE.replace('states = ["x"]', 'states = ["x", "z"]')  # in the data, but without an equation
    path = _pipeline(tmp_path, text)
    frame = pd.read_csv(tmp_path / "decay.csv")
    frame.assign(z=1.0).to_csv(tmp_path / "decay.csv", index=False)
    assert cli.main(["run", str(path)]) == EXIT_USAGE
    assert "[data] states: ['z'] have no equation in [model.equations]" in _error_line(capsys)


def test_run_output_dir_in_the_file_that_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    path = _pipeline(tmp_path, PIPELINE + '\n[output]\ndir = "taken"\n')
    assert cli.main(["run", str(path)]) == EXIT_USAGE
    assert _error_line(capsys) == (
        f"udesci: error: {path}: [output] dir: {str(tmp_path / 'taken')!r} is an existing file; "
        "expected a folder (existing or new) to write into."
    )


def test_run_reports_a_config_error_before_importing_torch(tmp_path):
    """Help, a bad flag and a bad config key are answered without importing torch, SymPy or pandas."""
    path = _pipeline(tmp_path, PIPELINE.replace('time = "t"', 'time = "t"\nbogus = 1'))
    code = textwrap.dedent(
        f"""
        import sys
        import udesci.cli

        for argv in (["--help"], ["example", "duffing", "--help"], ["study", "recovery", "--help"],
                     ["example", "lotka-volterra", "--seed", "x"]):
            try:
                udesci.cli.main(argv)
            except SystemExit:
                pass
        assert udesci.cli.main(["run", {str(path)!r}]) == 2
        assert udesci.cli.main(["example", "duffing", "--noise", "-1"]) == 2
        heavy = sorted(m for m in ("torch", "sympy", "pandas", "numpy") if m in sys.modules)
        print("heavy:", heavy)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "heavy: []" in proc.stdout, proc.stdout
    assert "[data] bogus: unknown key" in proc.stderr


# -- help ----------------------------------------------------------------------------------------------


def _option_entries(text: str) -> list[str]:
    """The entries of the options section of an argparse help text (one string per option)."""
    entries: list[str] = []
    section = text.split("options:", 1)[1]
    for line in section.splitlines():
        if line.startswith("  -"):
            entries.append(line.strip())
        elif line.startswith("    ") and entries:
            entries[-1] += " " + line.strip()
        elif line and not line.startswith(" "):
            break
    return entries


@pytest.mark.parametrize(
    "argv", [[], *(v[: 2 if v[0] != "run" else 1] for v in COMMANDS.values())], ids=["udesci", *COMMANDS]
)
def test_every_option_shows_its_default(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    entries = _option_entries(capsys.readouterr().out)
    assert entries
    for entry in entries:
        if entry.startswith(("-h, --help", "--version")):
            continue
        assert "default" in entry, entry
    assert any(e.startswith("--debug") for e in entries)


def test_the_example_systems_named_by_the_cli_are_the_pipeline_systems():
    from udesci.pipelines.systems import SYSTEMS

    assert EXAMPLE_SYSTEMS == {name: spec.description for name, spec in SYSTEMS.items()}
