"""Fuzz: model JSON files (``udesci.load_json``) and pipeline TOML files (``udesci.config.load_config``).

Both start from a valid file: a small model written by ``udesci.save_json`` and
``examples/lotka_volterra.toml``.  Mutations delete keys, change types, put in random values (huge
numbers, NaN, names, expression strings, payloads), nest values thousands of levels deep, and edit the
bytes (invalid UTF-8, truncation, integer literals of thousands of digits).  Property: a udesci error
or a valid result, no hang, no marker file.  A loaded JSON model is evaluated; a loaded TOML config is
taken as far as a run goes before training: ``build_model``, ``training_options``,
``discovery_options``, ``expected_terms`` and ``udesci.runner.load`` (CSV, derived columns, dataset).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import tomllib
import torch
from fuzz_support import (
    PROFILES,
    arithmetic_text,
    evaluate_field,
    json_values,
    payloads,
    run_contract,
    run_property,
)
from hypothesis import strategies as st

import udesci as ud
from udesci import config, runner
from udesci.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TOML = ROOT / "examples" / "lotka_volterra.toml"
EXAMPLE_CSV = ROOT / "data" / "lotka_volterra_noise0.05_seed0.csv"

NEST = "__fuzz_nest__"
#: Bugs a mutated file may run into; each has a strict-xfail reproducer in test_fuzz_model.py.
FILE_BUGS = ()


# ----------------------------------------------------------------------------------------------
# mutations
# ----------------------------------------------------------------------------------------------
def slots(doc):
    """Every (container, key) of a nested dict/list document."""
    out, stack = [], [doc]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, value in pairs:
            out.append((item, key))
            stack.append(value)
    return out


def mutated(base: dict, marker: Path):
    """Strategy: ``base`` with 0-3 structural mutations; may hold the ``NEST`` placeholder for deep nesting."""
    values = st.one_of(
        json_values(marker), arithmetic_text(("x", "y", "alpha", "delta", "t"), ("U", "V"), max_leaves=5)
    )
    return mutations(base, marker, values)


@st.composite
def mutations(draw, base: dict, marker: Path, values):
    doc = copy.deepcopy(base)
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        places = slots(doc)
        if not places:
            break
        parent, key = draw(st.sampled_from(places))
        op = draw(st.sampled_from(["delete", "replace", "replace", "wrap", "retype", "add", "nest", "payload"]))
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(values)
        elif op == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"v": parent[key]}]))
        elif op == "retype":
            value = parent[key]
            parent[key] = draw(st.sampled_from([str(value), [value], None, True, 0, 1e308, -1, 2**64]))
        elif op == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=8))] = draw(values)
        elif op == "nest":
            parent[key] = NEST
        elif op == "payload":
            parent[key] = draw(st.sampled_from(payloads(marker)))
    return doc


@dataclass(frozen=True)
class ByteEdit:
    """An edit of a file's bytes; ``where`` is a position as a fraction of the length."""

    op: str
    where: float
    data: bytes
    depth: int

    def apply(self, text: str) -> bytes:
        """``text`` as UTF-8 with the ``NEST`` placeholder nested ``depth`` levels deep, then edited."""
        out = text.replace(f'"{NEST}"', "[" * self.depth + "1" + "]" * self.depth).encode("utf-8")
        i = int(self.where * len(out))
        if self.op == "insert":
            return out[:i] + self.data + out[i:]
        if self.op == "delete":
            return out[:i] + out[i + len(self.data) :]
        if self.op == "truncate":
            return out[:i]
        if self.op == "digits":  # the first number literal becomes thousands of digits long
            return re.sub(rb"(?<=[ \[:])[0-9]+(\.[0-9]+)?", self.data, out, count=1)
        return out


INVALID_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]
unedited = st.builds(ByteEdit, st.just("none"), st.just(0.0), st.just(b""), st.sampled_from([5, 200, 2000, 50_000]))
byte_edits = st.one_of(
    unedited,
    unedited,
    unedited,
    st.builds(ByteEdit, st.sampled_from(["insert", "delete", "truncate"]), st.floats(0, 1),
              st.one_of(st.binary(min_size=1, max_size=6), st.text("[]{}=,\"' \n#.01x", min_size=1).map(str.encode)),
              st.just(5)),
    st.builds(ByteEdit, st.just("insert"), st.floats(0, 1), st.sampled_from(INVALID_UTF8), st.just(5)),
    st.builds(ByteEdit, st.just("digits"), st.just(0.0), st.sampled_from([b"9" * 400, b"9" * 5000]), st.just(5)),
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------
x, y, a, b = sp.symbols("x y a b")


@pytest.fixture(scope="module")
def model_json(tmp_path_factory) -> dict:
    torch.manual_seed(0)  # the weights are part of the file: the default profile stays deterministic
    model = ud.HybridModel(
        {x: a * x + sp.Function("U")(x, y), y: -b * y + sp.Function("V")(x)},
        {a: ud.Learnable(1.5), b: 0.5},
        width=3,
        depth=1,
    )
    path = ud.save_json(model, tmp_path_factory.mktemp("json") / "model.json", unknowns={"V": 2 * x})
    return json.loads(path.read_text())


def load_and_evaluate(path):
    model, data = ud.load_json(path)
    assert isinstance(model, ud.HybridModel) and isinstance(data, dict)
    evaluate_field(model)
    return model


@pytest.mark.parametrize("profile", PROFILES)
def test_mutated_json(profile, tmp_path, model_json):
    marker = tmp_path / "udesci-fuzz-marker-json"
    path = tmp_path / "model.json"

    def check(example):
        doc, edit = example
        data = edit.apply(json.dumps(doc))
        path.write_bytes(data)
        return run_contract(load_and_evaluate, path, marker=marker, known=FILE_BUGS)

    run_property(profile, "files: mutated model JSON", st.tuples(mutated(model_json, marker), byte_edits), check)


# ----------------------------------------------------------------------------------------------
# TOML
# ----------------------------------------------------------------------------------------------
def toml_string(text: str) -> str:
    body = json.dumps(text, ensure_ascii=False)[1:-1].replace("\x7f", "\\u007f")
    return f'"{body}"'


def toml_value(value) -> str | None:
    """``value`` as a TOML value (None: leave the key out; TOML has no null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(v if v is not None else '""' for v in map(toml_value, value)) + "]"
    items = [(toml_string(str(k)), toml_value(v)) for k, v in value.items()]
    return "{" + ", ".join(f"{k} = {v}" for k, v in items if v is not None) + "}"


def toml_dumps(doc: dict) -> str:
    """A TOML document of ``doc`` (top-level keys; tables written inline)."""
    lines = [f"{toml_string(str(k))} = {toml_value(v)}" for k, v in doc.items() if v is not None]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def pipeline_toml() -> dict:
    doc = tomllib.loads(EXAMPLE_TOML.read_text(encoding="utf-8"))
    doc["data"]["file"] = str(EXAMPLE_CSV)
    doc["data"]["derive"] = {"z": "x*y/10"}
    doc["discovery"]["extra"] = ["sin(x)"]
    assert tomllib.loads(toml_dumps(doc)) == doc
    return doc


def load_everything(path, fast: bool, seed):
    """What ``udesci run`` does with a config before training starts."""
    cfg = config.load_config(path, fast=fast, seed=seed)
    model = config.build_model(cfg)
    config.training_options(cfg)
    config.discovery_options(cfg, model)
    config.expected_terms(cfg, model)
    setup = runner.load(path, fast=fast, seed=seed)
    evaluate_field(setup.model)
    return setup


@pytest.mark.parametrize("profile", PROFILES)
def test_mutated_toml(profile, tmp_path, pipeline_toml):
    marker = tmp_path / "udesci-fuzz-marker-toml"
    path = tmp_path / "pipeline.toml"

    def check(example):
        doc, edit, fast, seed = example
        data = edit.apply(toml_dumps(doc))
        path.write_bytes(data)
        return run_contract(load_everything, path, fast, seed, marker=marker, known=FILE_BUGS)

    seeds = st.one_of(st.none(), st.integers(0, 10), st.sampled_from([-1, 2**64, 10**30, True]))
    strategy = st.tuples(mutated(pipeline_toml, marker), byte_edits, st.booleans(), seeds)
    run_property(profile, "files: mutated pipeline TOML", strategy, check)


# ----------------------------------------------------------------------------------------------
# bugs the properties above found, fixed: regression tests (the contract, no bug tolerated)
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def write(tmp_path):
    def write_file(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write_file


@pytest.mark.parametrize("loader", ["json", "toml"])
def test_known_invalid_utf8(loader, write, model_json):
    if loader == "json":
        run_contract(ud.load_json, write("m.json", json.dumps(model_json).encode().replace(b"float64", b"float\xff")))
    else:
        run_contract(config.load_config, write("p.toml", EXAMPLE_TOML.read_bytes().replace(b"Volterra", b"Volt\xff")))


@pytest.mark.parametrize("loader", ["json", "toml"])
def test_known_deep_nesting(loader, write):
    if loader == "json":
        run_contract(ud.load_json, write("m.json", b"[" * 50_000 + b"]" * 50_000))
    else:
        run_contract(config.load_config, write("p.toml", b"a = " + b"[" * 50_000 + b"]" * 50_000))


@pytest.mark.parametrize("loader", ["json", "toml"])
def test_long_integer_literal_is_a_config_error(loader, write):
    # int-digits: json.loads / tomllib raised ValueError ('Exceeds the limit (4300 digits)')
    if loader == "json":
        outcome = run_contract(ud.load_json, write("m.json", b'{"format": 1,\n "seed": ' + b"9" * 5000 + b"}"))
        where = "line 2, column 10 (5000 digits)"
    else:
        outcome = run_contract(config.load_config, write("p.toml", b"seed = " + b"9" * 5000))
        where = "line 1, column 8 (5000 digits)"
    assert isinstance(outcome.error, ConfigError)
    message = str(outcome.error)
    assert f"an integer literal at {where} is longer than the 4300 digits Python converts" in message
    assert message.startswith(str(outcome.error).split(":")[0]) and (".json" in message or ".toml" in message)


HUGE_VALUES = {
    "json-parameter": "parameters.a", "json-weights": "networks.U.layers[0].bias[1]",
    "toml-parameter": "model.parameters.alpha", "toml-window": "data.train[1]", "toml-lr": "fast.training.shooting.lr",
}  # fmt: skip


@pytest.mark.parametrize("where", list(HUGE_VALUES))
@pytest.mark.parametrize("huge", ["9" * 400, "1e400", "-1e400"])
def test_numbers_beyond_the_float_range_are_config_errors(where, huge, write, model_json):
    # float-overflow: integers beyond the float range raised OverflowError (math.isfinite, torch.as_tensor,
    # float()); floats beyond it read as inf and are refused by the key's own check
    if where.startswith("json"):
        doc = copy.deepcopy(model_json)
        if where == "json-parameter":
            doc["parameters"]["a"] = "HUGE"
        else:
            doc["networks"]["U"]["layers"][0]["bias"][1] = "HUGE"
        path = write("m.json", json.dumps(doc).replace('"HUGE"', huge).encode())
        outcome = run_contract(ud.load_json, path)
    else:
        text = EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(EXAMPLE_CSV.parent) + "/")
        text = {
            "toml-parameter": text.replace("alpha = 1.3", f"alpha = {huge}"),
            "toml-window": text.replace("train = [0.0, 3.0]", f"train = [0, {huge}]"),
            "toml-lr": text.replace("lr = 0.01", f"lr = {huge}"),
        }[where]
        path = write("p.toml", text.encode())
        outcome = run_contract(lambda: config.training_options(cfg := config.load_config(path, fast=True))
                               and config.build_model(cfg))  # fmt: skip
    assert isinstance(outcome.error, ConfigError), outcome
    message = str(outcome.error)
    assert message.startswith(str(path))
    if huge.startswith("9"):
        assert f"key {HUGE_VALUES[where]}: received an integer of 400 digits, beyond the float range" in message
    else:  # the key's own check names it in its table's form
        assert HUGE_VALUES[where].split(".")[-1].split("[")[0] in message and "inf" in message


def test_known_activation_of_a_wrong_type(write, model_json):
    doc = copy.deepcopy(model_json)
    doc["networks"]["V"]["activation"] = []
    run_contract(ud.load_json, write("m.json", json.dumps(doc).encode()))


@pytest.mark.parametrize("how", ["file", "argument"])
def test_known_seed_out_of_range(how, write):
    text = EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(EXAMPLE_CSV.parent) + "/")
    if how == "file":
        run_contract(runner.load, write("p.toml", text.replace("seed = 0", f"seed = {2**64}").encode()))
    else:
        run_contract(runner.load, write("p.toml", text.encode()), seed=2**64)


@pytest.mark.parametrize("expression", ["1/0", "log(0)*x", "x/(y - y)", "atan2(0, 0)*x"])
def test_derived_column_of_complex_infinity_is_a_config_error(expression, write):
    # derive-zoo: sympy.lambdify's numpy printer raised KeyError 'ComplexInfinity' in load_frame
    text = EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(EXAMPLE_CSV.parent) + "/")
    path = write("p.toml", text.replace("[model]\n", f'[data.derive]\nz = "{expression}"\n\n[model]\n', 1).encode())
    outcome = run_contract(lambda: config.load_frame(config.load_config(path)))
    assert isinstance(outcome.error, ConfigError)
    assert str(outcome.error).startswith(f"{path}: [data.derive] z: expression {expression!r}")
    assert "evaluates to complex infinity" in str(outcome.error) or "evaluates to an undefined value" in str(
        outcome.error
    )


def test_derived_column_with_a_pole_in_the_data_is_inf(write):
    # a pole the data reach (1/t at t = 0) is a column value, inf, not an error
    text = EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(EXAMPLE_CSV.parent) + "/")
    path = write("p.toml", text.replace("[model]\n", '[data.derive]\nw = "1/t"\n\n[model]\n', 1).encode())
    df = config.load_frame(config.load_config(path))
    t = df["t"].to_numpy()
    assert t[0] == 0.0 and np.isposinf(df["w"].iloc[0])
    np.testing.assert_allclose(df["w"].to_numpy()[1:], 1.0 / t[1:], rtol=1e-15)


@pytest.mark.parametrize("which", ["config", "data"])
def test_known_path_too_long(which, write):
    if which == "config":
        run_contract(config.load_config, "a" * 5000 + ".toml")
    else:
        text = EXAMPLE_TOML.read_text(encoding="utf-8")
        path = write("p.toml", text.replace("../data/lotka_volterra_noise0.05_seed0.csv", "a" * 5000).encode())
        run_contract(lambda: config.load_frame(config.load_config(path)))


@pytest.mark.parametrize("where", ["toml-width", "json-width", "toml-degree"])
def test_known_unbounded_sizes(where, write, model_json):
    text = EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(EXAMPLE_CSV.parent) + "/")
    if where == "toml-width":
        path = write("p.toml", text.replace("width = 32", f"width = {10**12}").encode())
        run_contract(lambda: config.build_model(config.load_config(path)), limit=5)
    elif where == "json-width":
        doc = copy.deepcopy(model_json)
        doc["networks"]["U"] = None
        doc["net_options"]["width"] = 10**12
        run_contract(ud.load_json, write("m.json", json.dumps(doc).encode()), limit=5)
    else:
        path = write("p.toml", text.replace("degree = 2", "degree = 200").encode())

        def options():
            cfg = config.load_config(path)  # the degree cap is checked here now
            return config.discovery_options(cfg, config.build_model(cfg))

        run_contract(options, limit=3)


@pytest.mark.parametrize("fast", [True, False])
def test_stage_that_is_not_a_table_is_a_config_error(fast, write):
    # found by the thorough profile: with fast=True and no [fast] table, the fast caps were merged into
    # [training] warm_start given as a list of tables, and dict() raised ValueError
    text = EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(EXAMPLE_CSV.parent) + "/")
    text = text[: text.index("[fast]")].replace(
        "[training.warm_start]\niterations = 600", "[training]\nwarm_start = [{iterations = 600}]"
    )
    path = write("p.toml", text.encode())
    outcome = run_contract(config.load_config, path, fast=fast)
    assert isinstance(outcome.error, ConfigError)
    assert str(outcome.error) == f"{path}: [training.warm_start]: expected a table, received [{{'iterations': 600}}]."
