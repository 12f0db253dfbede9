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

import pytest
import sympy as sp
import tomllib
import torch
from fuzz_support import (
    PROFILES,
    Outcome,
    arithmetic_text,
    evaluate_field,
    json_values,
    max_int,
    payloads,
    run_contract,
    run_property,
    slow_paths,
)
from hypothesis import strategies as st

import udesci as ud
from udesci import config, runner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TOML = ROOT / "examples" / "lotka_volterra.toml"
EXAMPLE_CSV = ROOT / "data" / "lotka_volterra_noise0.05_seed0.csv"

#: Bugs a mutated file may run into; each has a strict-xfail reproducer below or in the other modules.
FILE_BUGS = (
    "invalid-utf8", "deep-nesting", "int-digits", "float-overflow", "seed-range", "derive-zoo", "long-path",
    "unhashable-activation",
)  # fmt: skip
MODEL_BUGS = ("float-overflow", "int-digits", "complex-constant")
#: Sizes above these are not built (the unbounded-sizes known bug: a 10**4-layer network takes seconds,
#: a 10**5-wide one gigabytes); such examples are recorded as that bug.
SIZE_LIMITS = {"width": 256, "depth": 16, "n_in": 64, "n_out": 64, "degree": 12}
NEST = "__fuzz_nest__"


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


def parsed(data: bytes, loads):
    """The document ``data`` holds, or None where ``loads`` fails (that is for the loader to report)."""
    try:
        return loads(data.decode("utf-8"))
    except Exception:  # noqa: BLE001
        return None


def sizes_too_large(doc) -> bool:
    return any(max_int(doc, {key}) > limit for key, limit in SIZE_LIMITS.items())


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
        if sizes_too_large(parsed(data, json.loads)):
            return Outcome(known="unbounded-sizes")
        path.write_bytes(data)
        known = FILE_BUGS + MODEL_BUGS + slow_paths(data.decode("latin-1"))
        return run_contract(load_and_evaluate, path, marker=marker, known=known)

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
        if sizes_too_large(parsed(data, tomllib.loads)):
            return Outcome(known="unbounded-sizes")
        path.write_bytes(data)
        known = FILE_BUGS + MODEL_BUGS + slow_paths(data.decode("latin-1"))
        return run_contract(load_everything, path, fast, seed, known=known, marker=marker)

    seeds = st.one_of(st.none(), st.integers(0, 10), st.sampled_from([-1, 2**64, 10**30, True]))
    strategy = st.tuples(mutated(pipeline_toml, marker), byte_edits, st.booleans(), seeds)
    run_property(profile, "files: mutated pipeline TOML", strategy, check)


# ----------------------------------------------------------------------------------------------
# known bugs found by the properties above (strict xfail: the lead flips them when fixed)
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


@pytest.mark.xfail(
    strict=True,
    raises=ValueError,
    reason="int-digits: an integer literal of more than 4300 digits makes json.loads / tomllib raise "
    "ValueError ('Exceeds the limit (4300 digits)'); expected a ConfigError",
)
@pytest.mark.parametrize("loader", ["json", "toml"])
def test_known_long_integer_literal(loader, write):
    if loader == "json":
        run_contract(ud.load_json, write("m.json", b"9" * 5000))
    else:
        run_contract(config.load_config, write("p.toml", b"seed = " + b"9" * 5000))


@pytest.mark.xfail(
    strict=True,
    raises=OverflowError,
    reason="float-overflow: integers beyond the float range raise OverflowError: JSON parameters (math.isfinite "
    "in model_from_dict) and network weights (torch.as_tensor), TOML [model.parameters] (build_model), "
    "[data] train windows and [fast...] lr (_window, _pos); expected ConfigErrors naming the key",
)
@pytest.mark.parametrize("where", ["json-parameter", "json-weights", "toml-parameter", "toml-window", "toml-lr"])
def test_known_huge_integer_values(where, write, model_json):
    huge = "9" * 400
    if where.startswith("json"):
        doc = copy.deepcopy(model_json)
        if where == "json-parameter":
            doc["parameters"]["a"] = 10**400
        else:
            doc["networks"]["U"]["layers"][0]["bias"] = [10**400] * 3
        run_contract(ud.load_json, write("m.json", json.dumps(doc).encode()))
        return
    text = EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(EXAMPLE_CSV.parent) + "/")
    text = {
        "toml-parameter": text.replace("alpha = 1.3", f"alpha = {huge}"),
        "toml-window": text.replace("train = [0.0, 3.0]", f"train = [0, {huge}]"),
        "toml-lr": text.replace("lr = 0.01", f"lr = {huge}"),
    }[where]
    path = write("p.toml", text.encode())
    run_contract(lambda: config.build_model(config.load_config(path, fast=True)))


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


@pytest.mark.xfail(
    strict=True,
    raises=KeyError,
    reason="derive-zoo: a [data.derive] expression that evaluates to zoo ('1/0', 'log(0)*x') parses, then "
    "sympy.lambdify's numpy printer raises KeyError 'ComplexInfinity' in load_frame; expected a ConfigError "
    "naming the derived column (or a column of inf/nan)",
)
def test_known_derived_column_of_complex_infinity(write):
    text = EXAMPLE_TOML.read_text(encoding="utf-8").replace("../data/", str(EXAMPLE_CSV.parent) + "/")
    path = write("p.toml", text.replace("[model]\n", '[data.derive]\nz = "1/0"\n\n[model]\n', 1).encode())
    run_contract(lambda: config.load_frame(config.load_config(path)))


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
