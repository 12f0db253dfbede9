"""Tests of udesci.config and udesci.runner (``udesci run pipeline.toml``): validation, safe parsing, end-to-end runs.

Validation tests never train.  The end-to-end test trains a one-state model with one unknown for a few
iterations (a smoke run: it checks the plumbing and the outputs, not the accuracy).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy as sp

import udesci as ud
from udesci import cli
from udesci.config import (
    build_model,
    discovery_options,
    expected_terms,
    load_config,
    load_frame,
    training_options,
)
from udesci.errors import ConfigError, DataError
from udesci.runner import report_intro, run_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


BASE = """
title = "decay"
seed = 0

[data]
file = "decay.csv"
time = "t"
states = ["x"]

[model.equations]
x = "-k*x + U(x)"

[model.parameters]
k = { value = 0.5, learnable = true }

[training.warm_start]
iterations = 40

[training.shooting]
iterations = 20
segment_length = 4

[discovery]
degree = 2
sweeps = 1
shortlist = 2
refine_iterations = 3
exhaustive = 1
thresholds = 8
refit = false
"""


def _csv(folder: Path) -> Path:
    t = np.linspace(0.0, 4.0, 21)
    x = 2.0 * np.exp(-0.8 * t)
    path = folder / "decay.csv"
    pd.DataFrame({"t": t, "x": x}).to_csv(path, index=False)
    return path


def _toml(folder: Path, text: str = BASE, name: str = "pipeline.toml") -> Path:
    _csv(folder)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _replace(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


# -- validation: types, unknown keys, missing keys and files --------------------------------------


def test_wrong_type_names_file_table_and_key(tmp_path):
    path = _toml(tmp_path, _replace("iterations = 20", 'iterations = "many"'))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg == f"{path}: [training.shooting] iterations: expected an int >= 0, received 'many'."


@pytest.mark.parametrize(
    "old, new, where",
    [
        ("segment_length = 4", "segment_length = 0", "[training.shooting] segment_length"),
        ("degree = 2", "degree = 2.5", "[discovery] degree"),
        ('states = ["x"]', 'states = "x"', "[data] states"),
        ("seed = 0", "seed = -1", "(top level) seed"),
        ("refit = false", 'refit = "no"', "[discovery] refit"),
        ("sweeps = 1", "sweeps = 1\nbootstrap = -5", "[discovery] bootstrap"),
        ("k = { value = 0.5, learnable = true }", 'k = "0.5"', "[model.parameters] k"),
        (
            "k = { value = 0.5, learnable = true }",
            'k = { value = "a", learnable = true }',
            "[model.parameters.k] value",
        ),
    ],
)
def test_bad_values(tmp_path, old, new, where):
    path = _toml(tmp_path, _replace(old, new))
    with pytest.raises(ConfigError) as err:
        cfg = load_config(path)
        build_model(cfg)
    assert str(path) in str(err.value) and where in str(err.value)


@pytest.mark.parametrize(
    "old, new, where, hint",
    [
        ("iterations = 20", "iteration = 20", "[training.shooting] iteration", "iterations"),
        ('title = "decay"', 'titel = "decay"', "(top level) titel", "title"),
        ("degree = 2", "degre = 2", "[discovery] degre", "degree"),
        (
            "k = { value = 0.5, learnable = true }",
            "k = { value = 0.5, learnabel = true }",
            "[model.parameters.k] learnabel",
            "learnable",
        ),
    ],
)
def test_unknown_keys_are_rejected_with_a_suggestion(tmp_path, old, new, where, hint):
    path = _toml(tmp_path, _replace(old, new))
    with pytest.raises(ConfigError) as err:
        build_model(load_config(path))
    msg = str(err.value)
    assert where in msg and "unknown key" in msg and f"did you mean {hint!r}" in msg


def test_missing_required_key(tmp_path):
    path = _toml(tmp_path, _replace('file = "decay.csv"\n', ""))
    with pytest.raises(ConfigError, match=r"\[data\] file: missing required key"):
        load_config(path)


def test_missing_data_file_names_key_and_path(tmp_path):
    path = _toml(tmp_path, _replace('file = "decay.csv"', 'file = "nowhere.csv"'))
    cfg = load_config(path)
    with pytest.raises(ConfigError) as err:
        load_frame(cfg)
    assert f"{path}: [data] file" in str(err.value) and "nowhere.csv" in str(err.value)


def test_missing_config_file_and_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nfile = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_missing_column_is_a_data_error(tmp_path):
    path = _toml(tmp_path, _replace('states = ["x"]', 'states = ["y"]').replace('x = "-k*x + U(x)"', 'y = "-k*y"'))
    with pytest.raises(DataError, match=r"\[data\] states: column 'y' not in decay.csv"):
        load_frame(load_config(path))


# -- safe parsing -----------------------------------------------------------------------------------

INJECTIONS = [
    "__import__('os').system('touch {marker}')",
    "x.__class__.__base__",
    'exec(\'open("{marker}", "w")\')',
    "(lambda: __import__('os'))()",
    "open('{marker}', 'w')",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injected_code_in_equations_is_rejected_not_run(tmp_path, payload):
    marker = tmp_path / "PWNED"
    text = payload.format(marker=marker.as_posix()).replace('"', '\\"')
    path = _toml(tmp_path, _replace('x = "-k*x + U(x)"', f'x = "{text}"'))
    with pytest.raises(ConfigError) as err:
        build_model(load_config(path))
    assert f"{path}: [model.equations] x" in str(err.value)
    assert "not allowed" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "section",
    ['[data.derive]\nz = "{code}"\n', '[check.terms]\nU = ["{code}"]\n'],
)
def test_injected_code_in_derive_and_checks_is_rejected(tmp_path, section):
    marker = tmp_path / "PWNED"
    code = f"__import__('os').system('touch {marker.as_posix()}')"
    path = _toml(tmp_path, BASE + section.format(code=code))
    with pytest.raises(ConfigError, match="not allowed") as err:
        cfg = load_config(path)
        load_frame(cfg)
        expected_terms(cfg, build_model(cfg))
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_injected_library_extra_is_rejected(tmp_path):
    path = _toml(tmp_path, _replace("degree = 2", "degree = 2\nextra = [\"__import__('os')\"]"))
    cfg = load_config(path)
    with pytest.raises(ConfigError) as err:
        discovery_options(cfg, build_model(cfg))
    assert f"{path}: [discovery] extra" in str(err.value) and "not allowed" in str(err.value)


def test_undeclared_symbol_and_unknown_mismatch(tmp_path):
    path = _toml(tmp_path, _replace('x = "-k*x + U(x)"', 'x = "-k*x + q"'))
    with pytest.raises(ConfigError, match=r"\[model.equations\] x: expression '-k\*x \+ q': name 'q' is not allowed"):
        build_model(load_config(path))
    path = _toml(tmp_path, BASE + '\n[model.unknowns]\nU = ["x", "t"]\n')
    with pytest.raises(ConfigError, match=r"U\(x\) does not match the declaration"):
        build_model(load_config(path))
    path = _toml(tmp_path, BASE + '\n[model.unknowns]\nU = ["x"]\nW = ["x"]\n')
    with pytest.raises(ConfigError, match=r"\[model.unknowns\] W: declared but not used"):
        build_model(load_config(path))


def test_roles_must_not_clash(tmp_path):
    path = _toml(tmp_path, BASE.replace("k = { value = 0.5, learnable = true }", "k = 1.0\nx = 2.0"))
    with pytest.raises(ConfigError, match="declared both as state and as parameter"):
        build_model(load_config(path))


# -- building models and options ------------------------------------------------------------------


def test_unknowns_detected_from_calls_and_options_built(tmp_path):
    cfg = load_config(_toml(tmp_path))
    model = build_model(cfg)
    assert list(model.unknowns) == ["U"] and model.unknowns["U"].args == (sp.Symbol("x"),)
    assert sp.Symbol("k") in model.learnable
    opts = training_options(cfg)
    assert opts["shooting"].iterations == 20 and opts["shooting"].segment_length == 4 and opts["full"] is None
    d = discovery_options(cfg, model)
    assert d["library"]["U"].degree == 2 and d["selection"].sweeps == 1 and d["refit"] is False
    # keys left out keep Selection's defaults; given ones reach it
    assert d["selection"].bootstrap == ud.Selection().bootstrap
    text = _replace("sweeps = 1", "sweeps = 1\nbootstrap = 7\nrescore = 2\njoint = 1")
    d = discovery_options(load_config(_toml(tmp_path, text)), model)
    assert (d["selection"].bootstrap, d["selection"].rescore, d["selection"].joint) == (7, 2, 1)
    # no library settings at all: discover's automatic library (degree 2, escalated while inadequate)
    d = discovery_options(load_config(_toml(tmp_path, _replace("degree = 2\n", ""))), model)
    assert d["library"] is None


def test_fast_overrides_merge(tmp_path):
    text = BASE + "\n[fast.training.shooting]\niterations = 3\n"
    cfg = load_config(_toml(tmp_path, text), fast=True)
    assert training_options(cfg)["shooting"].iterations == 3
    assert training_options(cfg)["warm_start"].iterations == 40  # untouched
    bad = BASE + "\n[fast.model]\nwidth = 3\n"
    with pytest.raises(ConfigError, match=r"\[fast\] model: unknown key"):
        load_config(_toml(tmp_path, bad), fast=True)


def test_derived_columns(tmp_path):
    text = _replace('time = "t"', 'time = "tt"') + '\n[data.derive]\ntt = "2*t + 1"\nxs = "sqrt(x)"\n'
    cfg = load_config(_toml(tmp_path, text))
    df = load_frame(cfg)
    np.testing.assert_allclose(df["tt"], 2 * df["t"] + 1)
    np.testing.assert_allclose(df["xs"], np.sqrt(df["x"]))


@pytest.mark.parametrize("name", ["lotka_volterra.toml", "lynx_hare.toml", "weather.toml"])
def test_bundled_examples_validate(name):
    for fast in (False, True):
        cfg = load_config(EXAMPLES / name, fast=fast)
        df = load_frame(cfg)
        model = build_model(cfg)
        training_options(cfg)
        discovery_options(cfg, model)
        assert set(cfg.data["states"]) <= set(df.columns)
        assert model.unknowns


def test_prepared_weather_csv_is_reproducible(tmp_path):
    from udesci.pipelines.weather import PREPARED_FILE, write_prepared_csv

    fresh = write_prepared_csv(tmp_path / "w.csv")
    assert fresh.read_text() == (ROOT / "data" / PREPARED_FILE).read_text()


# -- the command ------------------------------------------------------------------------------------


def test_cli_run_usage_errors_exit_2(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "absent.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    path = _toml(tmp_path, _replace("iterations = 20", 'iterations = "many"'))
    assert cli.main(["run", str(path), "--quiet"]) == 2
    assert "[training.shooting] iterations: expected an int >= 0, received 'many'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["run", "--help"], ["example", "weather", "--help"], ["example", "lynx-hare", "--help"]]
)
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--out", "--seed", "--fast", "--quiet", "--json"):
        assert flag in out


def test_cli_run_end_to_end_and_check_exit_code(tmp_path, capsys):
    text = _replace('states = ["x"]', 'states = ["x"]\ntrain = [0.0, 3.0]\ntest = [3.0, 4.0]')
    text += '\n[output]\ndir = "result"\n\n[check]\nmax_train_rmse = 1e-12\n'
    path = _toml(tmp_path, text)
    code = cli.main(["run", str(path), "--json", "--seed", "1"])
    captured = capsys.readouterr()
    assert code == 1  # the (impossible) check fails: exit 1, outputs still written
    summary = json.loads(captured.out)
    out = tmp_path / "result"
    assert summary["out"] == str(out) and summary["seed"] == 1
    assert not summary["check"]["passed"] and "max_train_rmse" in summary["check"]["failures"][0]
    for name in (
        "summary.json",
        "report.md",
        "equations.json",
        "equations.tex",
        "model.py",
        "pipeline.toml",
        "fit.png",
        "loss.png",
        "unknown_U.png",
    ):
        assert (out / name).is_file(), name
    assert np.isfinite(summary["metrics"]["train_rmse"]["x"]) and np.isfinite(summary["metrics"]["test_rmse"]["x"])
    report = (out / "report.md").read_text()
    assert "\\begin{align*}" in report and "](fit.png)" in report and "](unknown_U.png)" in report
    assert "pysindy" in report and "Seed: `1`" in report
    assert "U" in summary["unknowns"]


INJECTED_TITLE = "<script>alert(1)</script> ``` &amp; [x](javascript:alert(1))"


def test_cli_run_escapes_input_in_the_report(tmp_path, capsys):
    """A title, a config comment and notes from input cannot inject HTML or close the config's code fence."""
    text = _replace('title = "decay"', f"title = {json.dumps(INJECTED_TITLE)}")
    text = text.replace("refit = false", "refit = false\nenabled = false")
    text = "# ```` </details><script>alert(2)</script>\n" + text
    path = _toml(tmp_path, text)
    assert cli.main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    heading = report.splitlines()[0]
    assert heading == "# &lt;script&gt;alert(1)&lt;/script&gt; ``` &amp;amp; [x]\\(javascript:alert(1))"
    outside_code = report.split("`````toml\n")[0]  # the config is in a fence longer than its ```` run
    assert "<script>" not in outside_code and "</details>" not in outside_code
    config = report.split("`````toml\n")[1].split("\n`````\n")[0]
    assert config == path.read_text().rstrip()
    capsys.readouterr()


def test_report_intro_escapes_names_and_notes(tmp_path):
    path = _toml(tmp_path, name="we`ird.toml")
    cfg = load_config(path)
    intro = report_intro(cfg, ["solver said <b>no</b>\n# heading"], ["terms.U: expected ['x'], discovered ['<i>']"])
    assert f"`` {path}``" not in intro and f"``{path}``" in intro  # a fence longer than the name's backtick run
    assert "<b>" not in intro and "<i>" not in intro and "\n# heading" not in intro
    assert "Notes: solver said &lt;b&gt;no&lt;/b&gt; # heading" in intro and "FAILED" not in intro  # no [check] table


def test_run_without_unknowns_exports_the_fitted_model(tmp_path):
    text = _replace('x = "-k*x + U(x)"', 'x = "-k*x"').replace("iterations = 20", "iterations = 5")
    text = text.split("[discovery]")[0] + "[output]\nplots = false\n\n[check]\nterms = {}\n"
    out = tmp_path / "out"
    res = run_config(_toml(tmp_path, text), out=out, quiet=True)
    assert res["unknowns"] == {} and res["equations"] == {"x": "-k*x"} and set(res["parameters"]) == {"k"}
    for name in ("model.json", "equations.tex", "model.py", "pipeline.toml", "report.md", "summary.json"):
        assert (out / name).is_file(), name
    assert not (out / "equations.json").exists() and not (out / "fit.png").exists()
    model, _ = ud.load_json(out / "model.json")
    assert model.parameter_values()[sp.Symbol("k")] == pytest.approx(res["parameters"]["k"])
    assert "\\frac{d x}{d t}" in (out / "equations.tex").read_text()
    assert res["check"] == {"passed": True, "failures": [], "configured": True}
    assert json.loads((out / "summary.json").read_text())["metrics"] == res["metrics"]


def test_seed_override_is_validated(tmp_path):
    path = _toml(tmp_path)
    assert load_config(path, seed=7).seed == 7
    with pytest.raises(ConfigError, match=r"\(top level\) seed: expected an int >= 0, received -1"):
        load_config(path, seed=-1)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["example", "lotka-volterra", "--noise", "-1"], "--noise"),
        (["example", "duffing", "--noise", "-0.5"], "--noise"),
        (["example", "logistic", "--noise", "nan"], "--noise"),
        (["study", "recovery", "--noise", "0.01,-0.1", "--runs", "1"], "--noise"),
        (["example", "lotka-volterra", "--seed", "-1"], "--seed"),
        (["example", "forced", "--seed", "-2"], "--seed"),
        (["example", "weather", "--seed", "-1"], "--seed"),
        (["example", "lynx-hare", "--seed", "-1"], "--seed"),
        (["run", "pipeline.toml", "--seed", "-1"], "--seed"),
    ],
)
def test_common_options_are_checked_the_same_everywhere(argv, flag, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"udesci: error: {flag}: expected")


@pytest.mark.parametrize(
    "argv",
    [
        ["example", "lotka-volterra", "--noise", "lots"],
        ["example", "duffing", "--noise", "lots"],
        ["study", "recovery", "--noise", "lots"],
        ["run", "pipeline.toml", "--seed", "one"],
    ],
)
def test_common_options_that_are_not_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert f"argument {argv[-2]}" in capsys.readouterr().err


def test_rational_library_from_toml(tmp_path):
    """``rational = true`` or a table of RationalTerms options reaches the Library; bad options are errors
    naming the file and key."""
    cfg = load_config(_toml(tmp_path, _replace("degree = 2", "degree = 1\nrational = true")))
    lib = discovery_options(cfg, build_model(cfg))["library"]["U"]
    assert lib.rational == ud.RationalTerms()
    cfg = load_config(_toml(tmp_path, _replace("degree = 2", "degree = 1\nrational = { powers = [2], times = 0 }")))
    lib = discovery_options(cfg, build_model(cfg))["library"]["U"]
    assert lib.rational.powers == (2,) and lib.rational.times == 0
    for bad, match in (('"yes"', "true, false or a table"), ("{ powers = [9] }", "ints from 1 to 8"),
                       ("{ hill = 2 }", "unknown options")):  # fmt: skip
        path = _toml(tmp_path, _replace("degree = 2", f"degree = 1\nrational = {bad}"))
        with pytest.raises(ConfigError, match=match) as err:
            load_config(path)
        assert f"{path}: [discovery] rational" in str(err.value)


def test_training_initial_values_from_toml(tmp_path):
    """``[training.initial]`` reaches ``fit(initial=...)``; a name that is not a state or a value that is not
    a finite number is an error naming the file and key."""
    cfg = load_config(_toml(tmp_path, BASE + "\n[training.initial]\nx = 0.5\n"))
    assert training_options(cfg)["initial"] == {"x": 0.5}
    cfg = load_config(_toml(tmp_path, BASE + "\n[training.initial]\nx = [0.5]\n"))
    assert training_options(cfg)["initial"] == {"x": [0.5]}
    path = _toml(tmp_path, BASE + "\n[training.initial]\nz = 1.0\n")
    with pytest.raises(ConfigError, match=r"\[training\] initial: \['z'\] are not states") as err:
        training_options(load_config(path))
    assert str(path) in str(err.value)
    path = _toml(tmp_path, BASE + '\n[training.initial]\nx = "high"\n')
    with pytest.raises(ConfigError, match=r"\[training.initial\] x: expected a finite number"):
        load_config(path)
