"""Tests of udesci.spec, the one builder behind the TOML and JSON loaders, and of the role check it shares
with HybridModel.  Nothing here trains: every test builds models and checks their structure or the
message of the error raised (source, place, reason)."""

from __future__ import annotations

import json

import pytest
import sympy as sp

import udesci as ud
from udesci.errors import ConfigError, ModelError
from udesci.export import load_json, model_to_dict, to_latex
from udesci.expr import detect_unknowns
from udesci.model import symbol_roles
from udesci.spec import ModelText, Places, build_model, resolve

t, x, y, k = sp.symbols("t x y k")
U = sp.Function("U")
PLACES = Places(
    source="m.toml",
    model="[model]",
    equation=lambda s: f"[model.equations] {s}",
    unknown=lambda n: f"[model.unknowns] {n}",
)


def test_symbol_roles_and_the_clash_message():
    assert symbol_roles([x], [k], [y], t) == {x: "state", k: "parameter", y: "input", t: "time"}
    with pytest.raises(ModelError) as err:
        symbol_roles([x, y], [x], [x, y], t)
    assert str(err.value) == (
        "symbols ['x', 'y'] are declared in more than one role (state, parameter, input, time): "
        "'x' is declared as state, parameter, input; 'y' is declared both as state and as input; "
        "give each symbol one role."
    )


@pytest.mark.parametrize(
    ("text", "clash"),
    [
        (ModelText({"x": "-x"}, {"x": 1.0}), "'x' is declared both as state and as parameter"),
        (ModelText({"x": "-x"}, inputs=("t",)), "'t' is declared both as input and as time"),
        (ModelText({"x": "-k*x"}, {"k": 1.0}, inputs=("k",)), "'k' is declared both as parameter and as input"),
    ],
)
def test_one_role_check_for_every_loader(tmp_path, text, clash):
    with pytest.raises(ConfigError) as err:
        build_model(text, PLACES)
    assert str(err.value).startswith("m.toml: [model]: symbols [") and clash in str(err.value)
    # the JSON loader goes through the same check
    data = model_to_dict(ud.HybridModel({x: -x}, {k: 1.0}))
    data["parameters"]["x"] = 1.0
    path = tmp_path / "clash.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="'x' is declared both as state and as parameter") as err:
        load_json(path)
    assert str(err.value).startswith(f"{path}: invalid model: symbols ['x']")


def test_unknowns_detected_from_calls_with_keyword_symbols():
    text = ModelText({"x": "-lambda*x + U(x, y)", "y": "-y + V(t)"}, {"lambda": 0.5})
    model = build_model(text, PLACES)
    assert list(model.unknowns) == ["U", "V"]
    assert model.unknowns["U"].args == (x, y) and model.unknowns["V"].args == (t,)
    assert detect_unknowns("-lambda*x + U(x) + sin(W(x)) + __import__('os')", {"lambda", "x"}) in (
        ["U", "W"],
        ["W", "U"],
    )
    assert detect_unknowns("x +", {"x"}) == [] and detect_unknowns(3) == []


def test_declared_unknowns():
    declared = ModelText({"x": "-k*x + U(x)"}, {"k": 1.0}, unknowns={"U": ("x",)})
    assert build_model(declared, PLACES).unknowns["U"].args == (x,)
    cases = [
        ({"U": ("x", "t")}, r"^m.toml: \[model.equations\] x: U\(x\) does not match the declaration "
                                r"\[model.unknowns\] U = \['x', 't'\] \(another number of arguments\)\.$"),
        ({"U": ("t",)}, r"^m.toml: \[model.equations\] x: U\(x\) is the first application of U and does not "
                        r"match the declaration \[model.unknowns\] U = \['t'\]; an unknown applied in several"),
        ({"U": ("x",), "W": ("x",)}, r"^m.toml: \[model.unknowns\] W: declared but not used in any equation\.$"),
        ({"U": ("k",)}, r"^m.toml: \[model.unknowns\] U: expected arguments among states \['x'\], inputs \[\] "
                        r"or time 't', received \['k'\]\.$"),
        ({"U": ("x",), "k": ("x",)}, r"^m.toml: \[model.unknowns\] k: unknown function name clashes with a parameter"),
    ]  # fmt: skip
    for unknowns, message in cases:
        with pytest.raises(ConfigError, match=message):
            build_model(ModelText({"x": "-k*x + U(x)"}, {"k": 1.0}, unknowns=unknowns), PLACES)
    # unused declarations are accepted where asked for (a JSON file lists substituted unknowns)
    resolved = resolve(ModelText({"x": "-k*x"}, {"k": 1.0}, unknowns={"U": ("x",)}), PLACES, allow_unused=True)
    assert resolved.used_unknowns == [] and resolved.parse("-x*k", "closed form") == -k * x


def test_json_stored_arguments_must_match_the_equations(tmp_path):
    data = model_to_dict(ud.HybridModel({x: -k * x + U(x), y: -y}, {k: 1.0}))
    data["unknowns"]["U"]["args"] = ["x", "y"]
    path = tmp_path / "args.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_json(path)
    assert str(err.value) == (
        f"{path}: equations['x']: U(x) does not match the declaration unknowns['U'] = ['x', 'y'] "
        "(another number of arguments)."
    )


def test_parse_errors_name_the_source_and_place():
    with pytest.raises(ConfigError, match=r"^m.toml: \[model.equations\] x: expression '-k\*x \+ q': name 'q'"):
        build_model(ModelText({"x": "-k*x + q"}, {"k": 1.0}), PLACES)
    with pytest.raises(ConfigError, match=r"^m.toml: \[model.equations\] x: expected an expression string"):
        build_model(ModelText({"x": 3}), PLACES)
    bare = Places("", "model", lambda s: f"equations[{s!r}]", lambda n: n)
    with pytest.raises(ConfigError, match=r"^equations\['x'\]: expression"):
        build_model(ModelText({"x": "-q"}), bare)
    with pytest.raises(ConfigError, match=r"^model: .*width"):
        build_model(ModelText({"x": "U(x)"}, net_options={"width": 0}), bare)


def test_closed_form_arguments_are_states_inputs_or_time():
    model = ud.HybridModel({x: -k * x + U(x)}, {k: 1.0})
    with pytest.raises(ConfigError, match=r"unknowns\['U'\]\['args'\]: 'k' is not a state, input or the time"):
        to_latex(model, unknowns={"U": {"expression": -x, "args": ["k"]}})
