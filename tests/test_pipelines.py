"""Tests of the weather and lynx–hare pipelines, the report writer and the ResNet-vs-neural-ODE example.

The pipeline tests run the fast modes (a handful of iterations): they check that the pipelines run end to
end on the real data, write every output, report finite metrics and a report with LaTeX and image links —
not the accuracy, which needs the full runs (numbers in the pipelines' reports).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

import udesci as ud
from udesci import cli
from udesci.report import code_span, escape_text, fenced_block, markdown_table, math_block, write_report

ROOT = Path(__file__).resolve().parents[1]


def _finite_leaves(obj) -> list:
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _finite_leaves(x)]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return [obj]
    return []


# -- data --------------------------------------------------------------------------------------------


def test_real_data_loaders():
    from udesci.pipelines import lynx_hare, weather

    g = weather.greensboro_frame()
    assert len(g) == 744 and g["t"].iloc[0] == 1 and g["t"].iloc[-1] == 744
    assert g["S"].between(0, 1.2).all() and g["C"].between(0, 1).all() and (g["D"] <= g["T"]).all()
    assert g["T"].between(10, 40).all()
    d = weather.dwd_frame()
    assert len(d) == 744 and np.all(np.diff(d["t"]) == 1.0) and d["T"].between(5, 40).all()
    lh = lynx_hare.load_frame()
    assert len(lh) == 21 and lh["t"].iloc[0] == 0 and lh["H"].iloc[0] == pytest.approx(3.0)


# -- forcing inputs end to end ----------------------------------------------------------------------


def test_fit_and_discover_with_a_forcing_input():
    """A UDE with a measured input learns an input-driven term, and discovery finds it in closed form.

    Truth ``dx/dt = -0.5 x + 2 S`` with ``S = sin(t)``; model ``-k x + U(S)`` (k learnable).  With noise-free
    data the discovered U is a multiple of S; its coefficient depends on how k and U share the linear
    response, so only the structure and a 20% band are checked."""
    x, S, k = sp.symbols("x S k")
    U = sp.Function("U")
    truth = ud.HybridModel({x: -0.5 * x + 2 * S}, inputs=[S])
    t = np.linspace(0, 12, 61)
    y = ud.simulate(truth, [0.5], t, inputs={"S": np.sin(t)})
    data = ud.Dataset(t, y, states=["x"], inputs=np.sin(t)[:, None], input_names=["S"], interpolation="cubic")
    torch.manual_seed(0)
    model = ud.HybridModel({x: -k * x + U(S)}, {k: ud.Learnable(0.5)}, inputs=[S])
    fitted = ud.fit(
        model,
        data,
        warm_start=ud.WarmStart(iterations=300),
        shooting=ud.Shooting(iterations=100),
        progress=False,
        threads=1,
    )
    found = ud.discover(
        fitted,
        library=ud.Library(degree=2),
        refit=False,
        selection=ud.Selection(sweeps=1, shortlist=3, refine_iterations=5, exhaustive=1),
    )
    coef = sp.expand(found.unknowns["U"]).as_coefficients_dict()
    assert S in coef and abs(float(coef[S]) - 2.0) < 0.4
    pred = ud.simulate(found.model, [0.5], t, inputs={"S": np.sin(t)})
    assert np.sqrt(np.mean((pred - y) ** 2)) < 0.05


# -- report -----------------------------------------------------------------------------------------


def test_write_report_without_discovery(tmp_path):
    x, k = sp.symbols("x k")
    t = np.linspace(0, 3, 16)
    data = ud.Dataset(t, 2 * np.exp(-0.7 * t), states=["x"])
    fitted = ud.fit(
        ud.HybridModel({x: -k * x}, {k: ud.Learnable(0.3)}),
        data,
        warm_start=ud.WarmStart(iterations=50),
        shooting=None,
        progress=False,
    )
    path = write_report(
        tmp_path / "r",
        title="Decay",
        config={"k": 0.3},
        fitted=fitted,
        metrics={"rmse": 0.1},
        held_out=(np.array([3.5, 4.0]), np.array([[0.17], [0.12]])),
        seed=3,
        command="python x.py",
    )
    text = path.read_text()
    assert text.startswith("# Decay") and "\\begin{align*}" in text and "](fit.png)" in text
    assert "](loss.png)" in text and "| torch |" in text and "Seed: `3`" in text and '"k": 0.3' in text
    assert (tmp_path / "r" / "fit.png").stat().st_size > 5000
    # data summary, parameter table, equations with the fitted value substituted (4 significant digits)
    assert "## Data\n" in text and "| 0 | 16 | 0 – 3 | 0 of 16 |" in text
    assert "2 points of trajectory 0 (t from 3.5 to 4)" in text
    k_fit = fitted.model.parameter_values()[k]
    assert f"| k | {k_fit:.4g} | yes | — |" in text
    assert f"\\frac{{d x}}{{d t}} &= - {k_fit:.4g} x" in text
    assert "The trajectory: observations (dots; held out: open circles)" in text
    # the same report as one HTML file, its images embedded
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == text.count("![") == 2  # fit and loss
    with pytest.raises(ud.ConfigError):
        write_report(tmp_path, title=3)
    with pytest.raises(ud.ConfigError, match="filename: expected a name ending in '.md'"):
        write_report(tmp_path, title="x", filename="report.txt")


def test_markdown_table_formats():
    t = markdown_table({"a": {"x": 1.23456, "y": math.inf}, "b": {"x": None, "y": float("nan")}}, index="m")
    assert t.splitlines()[0] == "| m | x | y |" and "| a | 1.235 | ∞ |" in t and "| b | — | n/a |" in t


def test_markdown_escaping_helpers():
    assert escape_text("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert escape_text("line\n# heading\r\n|x") == "line # heading |x"
    assert escape_text("[x](javascript:alert(1))") == "[x]\\(javascript:alert(1))"
    assert code_span("x") == "`x`" and code_span("a`b") == "``a`b``" and code_span("`a") == "`` `a ``"
    assert fenced_block("x = 1", "toml") == "```toml\nx = 1\n```\n"
    assert fenced_block("a\n````\nb").startswith("`````\n") and fenced_block("a\n````\nb").endswith("\n`````\n")
    assert math_block("x < y") == "$$\nx \\lt  y\n$$\n"


def test_write_report_escapes_injected_names(tmp_path):
    """Nothing taken from input can inject HTML: title, state names in tables, captions, config, command."""
    evil = "<script>alert(1)</script>"
    config = f'title = "{evil}"\n# ```\n# </code></pre>{evil}\n'
    path = write_report(
        tmp_path,
        title=f"{evil} ```",
        config=config,
        metrics={evil: {"train rmse": 0.5, "note": "<img src=x onerror=alert(1)>"}},
        tables={f"table {evil}": {"row": {evil: "a|b"}}},
        command=f"udesci run '{evil}' ```",
        seed=0,
        metrics_index=evil,
    )
    text = path.read_text()
    assert text.splitlines()[0] == "# &lt;script&gt;alert(1)&lt;/script&gt; ```"
    assert "| &lt;script&gt;alert(1)&lt;/script&gt; | 0.5 | &lt;img src=x onerror=alert(1)&gt; |" in text
    assert "### table &lt;script&gt;alert(1)&lt;/script&gt;" in text and "| a\\|b |" in text
    # the code blocks hold the text verbatim, in fences no backtick run inside can close
    assert f"````toml\n{config.rstrip()}\n````\n" in text
    assert f"````bash\nudesci run '{evil}' ```\n````\n" in text
    outside = text.replace(f"````toml\n{config.rstrip()}\n````\n", "").replace(f"udesci run '{evil}'", "")
    assert "<script>" not in outside and "<img" not in outside and "</code>" not in outside
    page = path.with_suffix(".html").read_text()
    assert "<script" not in page and "<img" not in page and page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5


# -- pipelines (fast modes) -------------------------------------------------------------------------


def test_lynx_hare_cli_fast(tmp_path, capsys):
    code = cli.main(["example", "lynx-hare", "--fast", "--json", "--out", str(tmp_path)])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["terms"]) == {"U", "V"} and res["U"] and res["V"]
    assert all(math.isfinite(v) for v in _finite_leaves(res["rmse_thousands"]["UDE (networks)"]))
    assert all(math.isfinite(v) for v in _finite_leaves(res["rmse_thousands"]["Lotka–Volterra fit"]))
    assert set(res["rmse_thousands"]) == {"UDE (networks)", "discovered model", "Lotka–Volterra fit"}
    for name in (
        "report.md",
        "summary.json",
        "equations.json",
        "equations.tex",
        "model.py",
        "fit.png",
        "phase.png",
        "loss.png",
        "unknown_U.png",
        "unknown_V.png",
    ):
        assert (tmp_path / name).is_file(), name
    report = (tmp_path / "report.md").read_text()
    assert "\\begin{align*}" in report and "](phase.png)" in report and "](unknown_V.png)" in report
    assert "inclusion probability" in report and "pelts / 10000" in report.replace("10 000", "10000")
    # discover rescores its shortlist on whole trajectories itself: no second, pipeline-side rescoring
    assert not (tmp_path / "equations_rescored.tex").exists() and "re-scoring" not in report


@pytest.mark.slow
def test_run_lotka_volterra_toml_fast(tmp_path, capsys):
    code = cli.main(["run", str(ROOT / "examples" / "lotka_volterra.toml"), "--fast", "--json", "--out", str(tmp_path)])
    res = json.loads(capsys.readouterr().out)
    assert code in (0, 1)  # 1 = ran, but the fast fit missed the exact x*y structure
    assert code == (0 if res["check"]["passed"] else 1)
    assert math.isfinite(res["metrics"]["train_rmse"]["x"])
    report = (tmp_path / "report.md").read_text()
    assert "\\begin{align*}" in report and "](phase.png)" in report and "](unknown_V.png)" in report


@pytest.mark.slow
def test_resnet_vs_node_fast():
    spec = importlib.util.spec_from_file_location("_resnet_vs_node", ROOT / "examples" / "resnet_vs_node.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dtype = torch.get_default_dtype()
    try:
        res = mod.run(fast=True, seed=0)
    finally:
        torch.set_default_dtype(dtype)
    assert len(res["rows"]) == 6
    assert {r["model"] for r in res["rows"]} >= {"NN map", "ResNet", "neural ODE"}
    assert all(r["grid"] > 0 for r in res["rows"])
    assert "intermediate" in mod.format_table(res)
