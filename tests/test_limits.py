"""Limits on what input may cost (udesci.limits): every cap is refused fast, with a message naming where the
value came from, the limit and how to raise it; raising a limit with UDESCI_LIMITS lets the value through.

Nothing here trains or allocates anything large: each test must finish in well under a second (the
parser tests assert < 2 s each, a generous bound for a loaded machine).
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy as sp

import udesci as ud
from udesci import limits
from udesci.config import build_model, discovery_options, load_config
from udesci.errors import ConfigError
from udesci.export import load_json, model_from_dict, model_to_dict
from udesci.expr import parse_expression
from udesci.networks import check_size, parameter_count

x, y = sp.symbols("x y")
SYMS = {"x": x, "y": y}
HINT = "to raise it deliberately, set the environment variable UDESCI_LIMITS="


def _assert_limit(message: str, name: str, where: str = "") -> None:
    """The message names ``where``, the limit by name and value, and how to raise it."""
    assert message.startswith(where), message
    assert f"the limit {name} = {limits.current(name)}" in message, message
    assert f"{HINT}'{name}=<n>'" in message, message


def _parse_fails(text: str, name: str, fragment: str | None = None) -> str:
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        parse_expression(text, SYMS, where="equations['x']")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{text[:40]!r} took {elapsed:.2f} s"
    message = str(err.value)
    _assert_limit(message, name, "equations['x']: expression ")
    if fragment is not None:
        assert fragment in message, message
    return message


# -- the parser ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "fragment"),
    [
        ("sqrt(2)**(10**12)", "exponent", "exponent 1000000000000 is too large"),
        ("2**(10**12)", "number_bits", "too large to evaluate exactly"),
        ("2**10**9", "number_bits", "too large"),
        ("(1 + x)**(10**9)", "exponent", "exponent 1000000000 is too large"),
        ("1.5**(10**12)", "exponent", "too large"),
        ("x**(10**12)", "exponent", "too large"),
        ("pi**(10**12)", "exponent", "too large"),
        ("E**(10**12)", "exponent", "too large"),
        ("2**1e300", "exponent", "too large"),
        ("2**(x + 10**12)", "exponent", "too large"),  # expand would compute 2**x * 2**(10**12)
        ("(1 + x + y)**1000", "expansion_terms", "more than 10000 terms"),
        ("(1 + x)**1000 * (1 + y)**1000", "expansion_terms", "more than 10000 terms"),
        ("(3**3000*x)**100", "number_bits", "bits"),  # SymPy would distribute the power over the product
        ("(2**5000 + x)**3", "number_bits", "bits"),  # only expanding would compute the big number
        ("*".join(["2**4000"] * 400), "number_bits", "the product is an exact number"),
        ("sqrt(3**60000)", "number_bits", "too large"),
        ("x + " * 6000 + "x", "expression_length", "expected at most 20000"),
        ("-" * 5000 + "x", "expression_depth", "nested too deeply"),
        ("sin(" * 150 + "x" + ")" * 150, "expression_depth", "nested more than 100 levels"),
    ],
)
def test_parser_refuses_costly_expressions_fast(text, name, fragment):
    _parse_fails(text, name, fragment)


def test_powers_made_by_combining_factors_are_capped_too(monkeypatch):
    monkeypatch.setenv("UDESCI_LIMITS", "exponent=50")  # (the default, 1000, takes SymPy ~1 s of products to reach)
    # a product is built as one Mul of its factors: the power it combines to is (1+x)**60
    _parse_fails("*".join(["(1+x)"] * 60), "exponent", "exponent 60 is too large")


@pytest.mark.parametrize("text", ["(1 + x)**1000", "2**2000", "(x + y)**3", "10**-6*x", "x**-1.5", "sqrt(2)**1000"])
def test_parser_accepts_what_is_within_the_limits(text):
    start = time.perf_counter()
    parse_expression(text, SYMS)
    assert time.perf_counter() - start < 2.0


NESTED = {
    "unary minus": "- " * 100_000 + "x",
    "unary mix": "-+~" * 33_334 + "x",
    "brackets": "(" * 100_000 + "x" + ")" * 100_000,
    "calls": "sin(" * 100_000 + "x" + ")" * 100_000,
    "powers": "x**" * 100_000 + "x",
    "sum": "+".join(["x"] * 100_000),
}


@pytest.mark.parametrize("text", list(NESTED.values()), ids=list(NESTED))
def test_nesting_100000_levels_is_a_config_error_not_a_recursion_error(monkeypatch, text):
    """With the length limit raised out of the way, 100,000 levels of any nesting end as a ConfigError."""
    monkeypatch.setenv("UDESCI_LIMITS", "expression_length=1000000")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="nested too deeply|too long for Python's parser") as err:
        parse_expression(text, SYMS, where="eq")
    assert time.perf_counter() - start < 2.0
    assert str(err.value).startswith("eq: expression ")
    # with the default length limit the same text is refused even earlier, by its length
    monkeypatch.delenv("UDESCI_LIMITS")
    with pytest.raises(ConfigError, match="the limit expression_length = 20000"):
        parse_expression(text, SYMS)


def test_unary_chain_message_names_the_depth_limit(monkeypatch):
    monkeypatch.setenv("UDESCI_LIMITS", "expression_length=1000000")
    message = _parse_fails("- " * 100_000 + "x", "expression_depth", "100000 unary signs in a row")
    assert "more than 100 levels" in message


def test_limits_are_raised_deliberately_with_the_environment(monkeypatch):
    with pytest.raises(ConfigError, match="the limit exponent = 1000"):
        parse_expression("x**2000", SYMS)
    monkeypatch.setenv("UDESCI_LIMITS", "exponent=5000, expansion_terms=20_000")
    assert parse_expression("x**2000", SYMS) == x**2000
    assert limits.current("expansion_terms") == 20_000
    monkeypatch.setenv("UDESCI_LIMITS", "exponent=10")  # lowering works the same way
    with pytest.raises(ConfigError, match="the limit exponent = 10 "):
        parse_expression("x**11", SYMS)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("exponnent=5", "names among"), ("exponent", "name=value pairs"), ("exponent=-1", "positive int"),
     ("exponent=lots", "positive int")],
)  # fmt: skip
def test_a_malformed_limits_variable_is_a_config_error(monkeypatch, value, fragment):
    monkeypatch.setenv("UDESCI_LIMITS", value)
    with pytest.raises(ConfigError, match=f"UDESCI_LIMITS: .*{fragment}"):
        parse_expression("x", SYMS)


def test_every_limit_is_documented():
    for name, limit in limits.LIMITS.items():
        assert isinstance(limit.default, int) and limit.default > 0 and limit.what, name
        assert name in limits.note(name) and limit.what in limits.note(name)


# -- pipeline TOML -------------------------------------------------------------------------------------

BASE = """
[data]
file = "decay.csv"
time = "t"
states = ["x"]

[model]
width = 8
depth = 1

[model.equations]
x = "-k*x + U(x)"

[model.parameters]
k = { value = 0.5, learnable = true }
"""


def _toml(folder: Path, text: str = BASE, extra: str = "") -> Path:
    t = np.linspace(0.0, 4.0, 21)
    pd.DataFrame({"t": t, "x": 2.0 * np.exp(-0.8 * t)}).to_csv(folder / "decay.csv", index=False)
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(text) + textwrap.dedent(extra))
    return path


@pytest.mark.parametrize(
    ("edit", "where", "name"),
    [
        (("width = 8", "width = 1000000"), "[model] width", "network_width"),
        (("depth = 1", "depth = 1000000000"), "[model] depth", "network_depth"),
        (("", "[training]\nthreads = 100000\n"), "[training] threads", "threads"),
        (("", "[training.warm_start]\niterations = 1000000000000\n"), "[training.warm_start] iterations", "iterations"),
        (("", "[training.shooting]\nlbfgs = 1000000000\n"), "[training.shooting] lbfgs", "iterations"),
        (("", "[training.shooting.solver]\nsubsteps = 1000000\n"), "[training.shooting.solver] substeps", "substeps"),
        (("", "[training.full.solver]\nmax_steps = 10000000000\n"), "[training.full.solver] max_steps", "max_steps"),
        (("", "[discovery]\ndegree = 1000000\n"), "[discovery] degree", "library_degree"),
        (("", "[discovery]\nbootstrap = 100000000\n"), "[discovery] bootstrap", "bootstrap"),
        (("", "[discovery]\nshortlist = 100000000\n"), "[discovery] shortlist", "candidates"),
        (("", "[discovery]\nrescore = 100000000\n"), "[discovery] rescore", "candidates"),
        (("", "[discovery]\nthresholds = 100000000\n"), "[discovery] thresholds", "thresholds"),
        (("", "[discovery]\nsweeps = 100000\n"), "[discovery] sweeps", "sweeps"),
        (("", "[discovery]\njoint = 1000\n"), "[discovery] joint", "joint"),
        (("", "[discovery]\nrefine_iterations = 100000000\n"), "[discovery] refine_iterations", "iterations"),
        (("", "[discovery.libraries.U]\ndegree = 1000\n"), "[discovery.libraries.U] degree", "library_degree"),
        (("", "[fast.training.shooting]\niterations = 10000000\n"), "[training.shooting] iterations", "iterations"),
    ],
)
def test_toml_sizes_over_a_limit_name_file_table_key_and_limit(tmp_path, edit, where, name):
    old, new = edit
    text = BASE.replace(old, new) if old else BASE + new
    path = _toml(tmp_path, text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config(path, fast="[fast." in text)  # --fast would lower the others to its own counts
    assert time.perf_counter() - start < 1.0
    _assert_limit(str(err.value), name, f"{path}: {where}: received ")


def test_toml_network_parameter_count_is_checked_before_allocating(tmp_path):
    path = _toml(tmp_path, BASE.replace("width = 8", "width = 4096").replace("depth = 1", "depth = 16"))
    cfg = load_config(path)  # width and depth are each within their limits ...
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        build_model(cfg)  # ... but the network would have 252 million parameters
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    _assert_limit(message, "network_parameters", f"{path}: [model]: network of U: received a network 1 -> 1")
    assert f"({parameter_count(1, 1, 4096, 16)} parameters)" in message


def test_toml_library_term_count(tmp_path, monkeypatch):
    text = BASE.replace('x = "-k*x + U(x)"', 'x = "-k*x + U(x, t)"')
    path = _toml(tmp_path, text, "[discovery]\ndegree = 20\n")
    cfg = load_config(path)
    model = build_model(cfg)
    discovery_options(cfg, model)  # C(22, 20) = 231 monomials: within the default limit
    monkeypatch.setenv("UDESCI_LIMITS", "library_terms=100")
    with pytest.raises(ConfigError) as err:
        discovery_options(cfg, model)  # refused before the terms are built
    _assert_limit(str(err.value), "library_terms", f"{path}: [discovery] degree: received a library of up to 231 terms")


HEAD = "[data]\nfile = 'decay.csv'\ntime = 't'\n"
MANY_STATES = "".join(f's{i} = "-s{i}"\n' for i in range(101))


@pytest.mark.parametrize(
    ("text", "where", "name"),
    [
        (
            HEAD + "states = [" + ", ".join(f"'s{i}'" for i in range(101)) + "]\n[model.equations]\n" + MANY_STATES,
            "[data] states (entries)",
            "states",
        ),
        (HEAD + "states = ['s0']\n[model.equations]\n" + MANY_STATES, "[model] equations (entries)", "states"),
        (
            HEAD
            + "states = ['x']\n[model.equations]\nx = '-x'\n[model.parameters]\n"
            + "".join(f"p{i} = 1.0\n" for i in range(1001)),
            "[model] parameters (entries)",
            "names",
        ),
        (
            HEAD + "states = ['x']\ninputs = [" + ", ".join(f"'u{i}'" for i in range(1001)) + "]\n"
            "[model.equations]\nx = '-x'\n",
            "[data] inputs (entries)",
            "names",
        ),
    ],
)
def test_toml_counts_of_states_and_names(tmp_path, text, where, name):
    path = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        build_model(load_config(path))
    _assert_limit(str(err.value), name, f"{path}: {where}: received ")


def test_toml_file_size_nesting_and_encoding(tmp_path, monkeypatch):
    path = _toml(tmp_path)
    monkeypatch.setenv("UDESCI_LIMITS", "file_bytes=100")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    _assert_limit(str(err.value), "file_bytes", f"{path}: received a file of more than 100 bytes")
    monkeypatch.delenv("UDESCI_LIMITS")
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(deep)
    _assert_limit(str(err.value), "file_depth", f"{deep}: received ")
    dotted = tmp_path / "dotted.toml"
    dotted.write_text("[" + ".".join(["a"] * 1000) + "]\nb = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(dotted)
    _assert_limit(str(err.value), "file_depth", f"{dotted}: received tables or arrays nested more than 32 levels")
    latin = tmp_path / "latin.toml"
    latin.write_bytes('title = "Würzburg"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(latin))}: not a UTF-8 text file \(byte 10: "):
        load_config(latin)


def test_toml_data_file_size(tmp_path, monkeypatch):
    from udesci.config import load_frame

    cfg = load_config(_toml(tmp_path))
    monkeypatch.setenv("UDESCI_LIMITS", "data_bytes=10")
    with pytest.raises(ConfigError) as err:
        load_frame(cfg)
    _assert_limit(str(err.value), "data_bytes", f"{cfg.name}: [data] file: ")


def test_toml_huge_values_are_shown_short(tmp_path):
    path = _toml(tmp_path, BASE + "[training.shooting]\niterations = '" + "many" * 10_000 + "'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert len(str(err.value)) < 300 and "[training.shooting] iterations: expected an int >= 0" in str(err.value)


# -- model JSON ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dict():
    model = ud.HybridModel({x: -x + sp.Function("U")(x)}, width=4, depth=1)
    return model_to_dict(model)


def _json(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "where", "name"),
    [
        (lambda d: d["net_options"].update(width=10**9), "key 'net_options'['width']", "network_width"),
        (lambda d: d["net_options"].update(depth=10**6), "key 'net_options'['depth']", "network_depth"),
        (lambda d: d["networks"]["U"].update(width=10**6), "networks['U'] width", "network_width"),
        (lambda d: d["networks"]["U"].update(depth=10**6), "networks['U'] depth", "network_depth"),
        (lambda d: d["networks"]["U"].update(n_in=10**8), "networks['U']", "network_parameters"),
        (lambda d: d["networks"]["U"].update(n_out=10**8), "networks['U']", "network_parameters"),
        (lambda d: d.update(states=[f"s{i}" for i in range(101)]), "key 'states' (entries)", "states"),
        (lambda d: d.update(inputs=[f"u{i}" for i in range(1001)]), "key 'inputs' (entries)", "names"),
        (lambda d: d["parameters"].update({f"p{i}": 1.0 for i in range(1001)}), "key 'parameters' (entries)", "names"),
    ],
)
def test_json_sizes_over_a_limit_are_refused_before_allocating(tmp_path, model_dict, edit, where, name):
    data = json.loads(json.dumps(model_dict))
    edit(data)
    path = _json(tmp_path, data)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_json(path)
    assert time.perf_counter() - start < 1.0
    _assert_limit(str(err.value), name, f"{path}: {where}")


def test_json_file_size_nesting_and_encoding(tmp_path, model_dict, monkeypatch):
    path = _json(tmp_path, model_dict)
    load_json(path)
    monkeypatch.setenv("UDESCI_LIMITS", "file_bytes=100")
    with pytest.raises(ConfigError) as err:
        load_json(path)
    _assert_limit(str(err.value), "file_bytes", f"{path}: received a file of more than 100 bytes")
    monkeypatch.delenv("UDESCI_LIMITS")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError) as err:
        load_json(deep)
    _assert_limit(str(err.value), "file_depth", f"{deep}: received ")
    nested = json.loads(json.dumps(model_dict))
    deep_value: list = [1]
    for _ in range(40):
        deep_value = [deep_value]
    nested["extra"] = {"a": deep_value}
    with pytest.raises(ConfigError) as err:
        model_from_dict(nested, source="m.json")
    _assert_limit(str(err.value), "file_depth", "m.json: received tables or arrays nested more than 32 levels")
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"format": "Würzburg"}'.encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(latin))}: not a UTF-8 text file"):
        load_json(latin)


def test_network_size_guard():
    assert parameter_count(2, 1, 32, 2) == sum(p.numel() for p in ud.MLP(2, 1, 32, 2).parameters())
    check_size(2, 1, 4096, 1, "net")  # 16385 + ... parameters: fine
    with pytest.raises(ConfigError) as err:
        check_size(2, 1, 4096, 2, "net")
    _assert_limit(str(err.value), "network_parameters", "net: received a network 2 -> 1 of width 4096 and depth 2")
    check_size("wide", 1, 2, 2, "net")  # not sizes at all: left to MLP to report
