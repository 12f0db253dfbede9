"""No input ever executes code: every entry point that reads text, and every exporter that writes it.

Each payload would create a marker file (or import a module) if any part of udesci evaluated it.  Every
test checks (a) that a udesci error (ConfigError/ModelError) names the key or symbol at fault and (b) that
the marker does not exist afterwards.  Entry points: string equations and ``substitute`` expressions of
the Python API, ``[model.equations]`` of a pipeline TOML, a model JSON file, and the ``udesci run``
command.  Exporters: ``to_python``, ``to_latex`` and ``save_json`` with names built to break out of a
string literal, a comment, a docstring or a LaTeX command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy as sp
import torch

import udesci as ud
from udesci.config import build_model, load_config
from udesci.errors import ConfigError, ModelError
from udesci.export import load_json, model_to_dict, save_json, to_latex, to_python

x, y, k = sp.symbols("x y k")
U = sp.Function("U")
ROOT = Path(__file__).resolve().parents[1]

# expressions; "{m}" is the marker file's path
EXPRESSIONS = {
    "os.system": "__import__('os').system('touch {m}')",
    "open": "open('{m}', 'w')",
    "exec": "-k*x + exec(\"open('{m}', 'w')\")",
    "eval": "eval(\"__import__('os').system('touch {m}')\")",
    "class chain": "().__class__.__base__.__subclasses__()",
    "dunder attribute": "x.__class__",
    "getattr": "getattr(x, '__class__')",
    "lambda": "(lambda: __import__('os').system('touch {m}'))()",
    "newline": "-k*x\n__import__('os').system('touch {m}')",
    "statement": "-k*x; __import__('os').system('touch {m}')",
    "quotes": '-k*x + \'"; __import__("os").system("touch {m}"); "\'',
}

# names; "{m}" is the marker file's path
NAMES = {
    "newline": "a\n__import__('os').system('touch {m}')",
    "quote": "a'); __import__('os').system('touch {m}'); ('",
    "docstring": '"""\n__import__("os").system("touch {m}")\n"""',
    "comment": "a  # \r__import__('os').system('touch {m}')",
    "dunder": "__class__",
    "import": "__import__",
    "class chain": "().__class__",
    "latex": "\\immediate\\write18{{touch {m}}}",
}


def _marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def _fill(template: str, marker: Path) -> str:
    return template.format(m=marker.as_posix())


# --------------------------------------------------------------------------------------------
# entry points: the Python API
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", list(EXPRESSIONS.values()), ids=list(EXPRESSIONS))
def test_api_string_equation_is_parsed_not_run(tmp_path, payload):
    marker = _marker(tmp_path)
    with pytest.raises(ConfigError) as err:
        ud.HybridModel({"x": _fill(payload, marker), "y": "-y"}, {"k": 1.0})
    assert str(err.value).startswith("equation for x: ")
    assert not marker.exists()


@pytest.mark.parametrize("payload", list(EXPRESSIONS.values()), ids=list(EXPRESSIONS))
def test_api_substitute_string_is_parsed_not_run(tmp_path, payload):
    marker = _marker(tmp_path)
    model = ud.HybridModel({x: -k * x + U(x)}, {k: 1.0})
    with pytest.raises(ConfigError) as err:
        model.substitute({"U": _fill(payload, marker)})
    assert str(err.value).startswith("expressions['U']: ")
    assert not marker.exists()


def test_api_strings_inside_containers_are_not_sympified(tmp_path):
    # sympy.sympify would evaluate the strings inside a list or tuple; only SymPy objects and numbers pass
    marker = _marker(tmp_path)
    code = _fill(EXPRESSIONS["os.system"], marker)
    with pytest.raises(ModelError, match=r"^equation for x: expected a sympy expression"):
        ud.HybridModel({x: [code]})
    model = ud.HybridModel({x: -k * x + U(x)}, {k: 1.0})
    with pytest.raises(ModelError, match=r"^expressions\['U'\]: expected a sympy expression"):
        model.substitute({"U": (code,)})
    assert not marker.exists()


def test_api_string_equations_build_the_same_model():
    # strings use the same symbols and unknown-detection rule as the TOML loader
    lam = sp.Symbol("lambda")
    model = ud.HybridModel({"x": "-k*x + U(x, y)", "y": "-lambda*y + sin(t)"}, {k: 0.5, lam: ud.Learnable(1.0)})
    assert model.equations == {x: -k * x + U(x, y), y: -lam * y + sp.sin(sp.Symbol("t"))}
    assert model.unknowns["U"].args == (x, y) and model.learnable == {lam}
    closed = model.substitute({"U": "-c*x*y"}, params={sp.Symbol("c"): 0.9})
    assert closed.equations[x] == -k * x - sp.Symbol("c") * x * y


# --------------------------------------------------------------------------------------------
# entry points: files and the command
# --------------------------------------------------------------------------------------------
def _pipeline(folder: Path, equation: str) -> Path:
    t = np.linspace(0.0, 2.0, 11)
    pd.DataFrame({"t": t, "x": np.exp(-t)}).to_csv(folder / "decay.csv", index=False)
    path = folder / "pipeline.toml"
    text = f"""
    [data]
    file = "decay.csv"
    time = "t"
    states = ["x"]

    [model.equations]
    x = {json.dumps(equation)}

    [model.parameters]
    k = 0.5

    [training.warm_start]
    iterations = 1
    """
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("payload", list(EXPRESSIONS.values()), ids=list(EXPRESSIONS))
def test_toml_equation_is_parsed_not_run(tmp_path, payload):
    marker = _marker(tmp_path)
    path = _pipeline(tmp_path, _fill(payload, marker))
    with pytest.raises(ConfigError) as err:
        build_model(load_config(path))
    assert str(err.value).startswith(f"{path}: [model.equations] x: ")
    assert not marker.exists()


def _model_file(tmp_path: Path, mutate) -> Path:
    data = model_to_dict(ud.HybridModel({x: -k * x + U(x)}, {k: 0.5}))
    mutate(data)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("payload", list(EXPRESSIONS.values()), ids=list(EXPRESSIONS))
@pytest.mark.parametrize("key", ["equation", "unknown expression"])
def test_json_expression_is_parsed_not_run(tmp_path, payload, key):
    marker = _marker(tmp_path)
    code = _fill(payload, marker)
    if key == "equation":
        path = _model_file(tmp_path, lambda d: d["equations"].update(x=code))
        where = "equations['x']"
    else:
        path = _model_file(tmp_path, lambda d: d["unknowns"]["U"].update(expression=code))
        where = "unknowns['U']['expression']"
    with pytest.raises(ConfigError) as err:
        load_json(path)
    assert str(err.value).startswith(f"{path}: {where}: ")
    assert not marker.exists()


def _rename(data: dict, role: str, name: str) -> None:
    if role == "state":
        data["states"] = [name]
        data["equations"] = {name: data["equations"]["x"]}
    elif role == "time":
        data["time"] = name
    elif role == "input":
        data["inputs"] = [name]
    elif role == "parameter":
        data["parameters"][name] = 1.0
    elif role == "unknown":
        data["unknowns"][name] = {"args": ["x"], "expression": None}


@pytest.mark.parametrize("name", list(NAMES.values()), ids=list(NAMES))
@pytest.mark.parametrize("role", ["state", "time", "input", "parameter", "unknown"])
def test_json_names_are_checked(tmp_path, role, name):
    marker = _marker(tmp_path)
    name = _fill(name, marker)
    path = _model_file(tmp_path, lambda d: _rename(d, role, name))
    with pytest.raises(ConfigError, match="expected identifier names") as err:
        load_json(path)
    assert str(err.value).startswith(f"{path}: key ") and repr(name) in str(err.value)
    assert not marker.exists()


def test_cli_run_with_an_injected_equation_exits_2_and_runs_nothing(tmp_path):
    marker = _marker(tmp_path)
    path = _pipeline(tmp_path, _fill(EXPRESSIONS["os.system"], marker))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "udesci.cli", "run", str(path), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{path}: [model.equations] x: " in proc.stderr and "'__import__' is not allowed" in proc.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists()  # it stopped before writing anything


# --------------------------------------------------------------------------------------------
# exporters
# --------------------------------------------------------------------------------------------
def _model_with(role: str, name: str) -> ud.HybridModel:
    s = sp.Symbol(name)
    if role == "state":
        return ud.HybridModel({s: -s, y: -y})
    if role == "parameter":
        return ud.HybridModel({x: -s * x}, {s: 1.0})
    if role == "input":
        return ud.HybridModel({x: -x + s}, inputs=[s])
    if role == "time":
        return ud.HybridModel({x: -x * s}, time=s)
    return ud.HybridModel({x: -x + sp.Function(name)(x)})


def _cases():
    for label, name in NAMES.items():
        for role in ("state", "parameter", "input", "time", "unknown"):
            if role == "unknown" and (not name.isidentifier() or name.startswith("_")):
                continue  # HybridModel refuses such unknown names already (test_unknown_function_names_...)
            yield pytest.param(role, name, id=f"{role}-{label}")


@pytest.mark.parametrize(("role", "name"), list(_cases()))
@pytest.mark.parametrize("exporter", ["python", "latex", "json"])
def test_exporters_reject_names_that_are_not_identifiers(tmp_path, exporter, role, name):
    marker = _marker(tmp_path)
    name = _fill(name, marker)
    model = _model_with(role, name)
    path = tmp_path / f"out.{exporter}"
    with pytest.raises(ConfigError) as err:
        if exporter == "python":
            to_python(model, path)
        elif exporter == "latex":
            to_latex(model)
        else:
            save_json(model, path)
    kind = "unknown" if role == "unknown" else "symbol"
    assert str(err.value).startswith(f"{kind} {name!r}: cannot be exported")
    assert not path.exists() and not marker.exists()


@pytest.mark.parametrize("payload", list(EXPRESSIONS.values()), ids=list(EXPRESSIONS))
@pytest.mark.parametrize("exporter", ["python", "latex", "json"])
def test_exporters_parse_closed_form_strings(tmp_path, exporter, payload):
    marker = _marker(tmp_path)
    model = ud.HybridModel({x: -k * x + U(x)}, {k: 1.0})
    unknowns = {"U": {"expression": _fill(payload, marker)}}
    path = tmp_path / f"out.{exporter}"
    with pytest.raises(ConfigError) as err:
        if exporter == "python":
            to_python(model, path, unknowns=unknowns)
        elif exporter == "latex":
            to_latex(model, unknowns=unknowns)
        else:
            save_json(model, path, unknowns=unknowns)
    assert str(err.value).startswith("unknowns['U']: ")
    assert not path.exists() and not marker.exists()


def test_python_module_with_hostile_but_valid_names_imports_cleanly(tmp_path):
    # identifiers that shadow what the generated code uses (numpy, np, the locals _p and _u, builtins),
    # one that Python reads as "numpy" after NFKC normalisation, and a keyword: all become other local
    # names inside rhs(); the module imports in a fresh interpreter without running anything else
    # and evaluates the same vector field as the model
    marker = _marker(tmp_path)
    names = ["numpy", "np", "_p", "_u", "exec", "open", "os", "\uff4e\uff55\uff4d\uff50\uff59", "lambda", "y"]
    syms = [sp.Symbol(n) for n in names]
    p_numpy, p_np, p_p, p_u, p_exec, p_open, p_os, p_wide, p_lambda = syms[:-1]
    state_y = syms[-1]
    model = ud.HybridModel(
        {
            x: -p_numpy * x + p_np * state_y - p_p * sp.sin(x) + p_exec * U(x, state_y),
            state_y: -p_u * state_y + p_open * x - p_os * p_wide * sp.tanh(state_y) + p_lambda,
        },
        {s: float(i + 1) / 10 for i, s in enumerate(syms[:-1])},
    )
    path = to_python(model, tmp_path / "hostile.py")
    z = np.random.default_rng(0).normal(size=(7, 2))
    np.save(tmp_path / "z.npy", z)
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        import numpy as np
        spec = importlib.util.spec_from_file_location("hostile", {str(path)!r})
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert "torch" not in sys.modules and "udesci" not in sys.modules and "sympy" not in sys.modules
        np.save({str(tmp_path / "out.npy")!r}, mod.rhs(0.3, np.load({str(tmp_path / "z.npy")!r}).T).T)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists() and proc.stdout == ""
    with torch.no_grad():
        expected = model.module(torch.tensor(0.3), torch.as_tensor(z)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# the remaining routes into SymPy: torch_function, Library(extra=...) containers, odd unknown names
# ------------------------------------------------------------------------------------------------
def test_torch_function_and_library_never_sympify_strings(tmp_path):
    marker = tmp_path / "ran"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    xs = sp.Symbol("x")
    with pytest.raises(ud.ModelError, match=r"exprs\[0\]: expected a SymPy expression, received str"):
        ud.torch_function([payload], [xs])
    for extra in ((payload,), [(payload,)], [{payload: 1}]):
        with pytest.raises(ud.ConfigError):
            ud.Library(extra=extra).terms([xs])
    assert not marker.exists()


@pytest.mark.parametrize("name", ["a.b", "__class__", "_U", "U V"])
def test_unknown_function_names_must_be_identifiers(name):
    xs = sp.Symbol("x")
    with pytest.raises(ud.ModelError, match="unknown function name"):
        ud.HybridModel({xs: sp.Function(name)(xs)})
