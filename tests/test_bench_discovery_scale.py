"""The discovery-scaling benchmark: its growth exponent, structure check and a fast smoke run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_discovery_scale", ROOT / "bench" / "bench_discovery_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exponent_recovers_a_power_law(bench):
    sizes = [6, 10, 20, 35, 56]
    assert bench.exponent(sizes, [2.0 * s**1.5 for s in sizes]) == pytest.approx(1.5, abs=1e-12)
    assert bench.exponent([10], [1.0]) is None


def test_structure_check_needs_the_same_terms_within_ten_percent(bench):
    x, y = sp.symbols("x y")

    class Found:
        unknowns = {"U": -0.95 * x * y}

    assert bench.structure_ok(Found, {"U": {x * y: -0.9}})
    assert not bench.structure_ok(Found, {"U": {x * y: -0.8}})  # 19 % off
    Found.unknowns = {"U": -0.9 * x * y + 0.01 * x}
    assert not bench.structure_ok(Found, {"U": {x * y: -0.9}})  # an extra term


def test_fast_run_prints_a_table_and_writes_json(bench, tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert bench.main(["--fast", "--axes", "states", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["size"] for r in rows] == [1, 2]
    assert all(r["correct_structure"] for r in rows)  # logistic and Lotka–Volterra, even with short training
    assert all(np.isfinite(r["discover_s"]) and r["pysindy_s"] > 0 for r in rows)
    assert "| logistic | 1 |" in capsys.readouterr().out


def test_pipeline_seconds_fast_run_reports_both_lotka_volterra_runs(capsys):
    path = ROOT / "bench" / "bench_pipeline_seconds.py"
    spec = importlib.util.spec_from_file_location("bench_pipeline_seconds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--fast"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Lotka–Volterra")]
    assert len(lines) == 2 and all("fit" in line and "discover" in line and "rescore" in line for line in lines)


def test_reaction_diffusion_fast_run_finds_the_reaction_term(tmp_path, capsys):
    path = ROOT / "bench" / "bench_reaction_diffusion.py"
    spec = importlib.util.spec_from_file_location("bench_reaction_diffusion", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "rd.json"
    assert module.main(["--fast", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    # 16 cells, 1 % noise: u - u**2 with every coefficient within 0.03, and the tables evaluate the field
    assert row["cells"] == 16 and row["right_terms"] and row["max_coefficient_error"] < 0.03 and row["adequate"]
    assert row["tables_us"] > 0 and row["lambdified_us"] > 0
    assert "| 16 | 0 |" in capsys.readouterr().out


@pytest.mark.slow
def test_a_degree_four_library_still_finds_the_single_lorenz_term(bench):
    """Lorenz ``z' = U(x, y, z) − βz`` with ``Library(degree=4)`` (35 terms): the threshold sweep alone
    proposed 17-term forms that fit the data within their noise (adequate, wrong); every pair of terms
    among the candidates puts ``x y`` up for scoring, and it wins."""
    rows = bench.run_axis("library", bench.lorenz_cases(False)[3:4], False, 0)
    assert rows[0]["size"] == 35 and rows[0]["correct_structure"], rows[0]
