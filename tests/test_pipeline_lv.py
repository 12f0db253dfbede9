"""End-to-end Lotka–Volterra recovery in the fast configuration, and the command line."""

import json

import numpy as np
import pytest

import udesci as ud
from udesci.cli import main
from udesci.pipelines.lotka_volterra import U0, run_pipeline


@pytest.fixture(scope="module")
def lv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lv")
    return run_pipeline(noise=0.005, seed=0, out=out, quiet=True, fast=True), out


def test_recovers_exactly_the_xy_terms(lv_run):
    res, _ = lv_run
    assert res["U_terms"] == ["x*y"] and res["V_terms"] == ["x*y"], res["equations"]
    # the acceptance bound: beta and gamma within 5%
    assert res["beta_rel_error"] < 0.05 and res["gamma_rel_error"] < 0.05, res


def test_writes_every_output(lv_run):
    _, out = lv_run
    for name in ("equations.json", "equations.tex", "model.py", "fit.png", "loss.png", "phase.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "equations.json").read_text())
    assert doc["states"] == ["x", "y"]
    assert set(doc["parameters"]) >= {"alpha", "delta"}
    assert set(doc["equations"]) == {"x", "y"}
    assert doc["unknowns"]["U"]["args"] == ["x", "y"]
    assert (out / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, _ = ud.load_json(out / "equations.json")
    sim = ud.simulate(model, U0, np.linspace(0, 3, 31))
    assert np.all(np.isfinite(sim))


def test_cli_help_and_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["example", "lotka-volterra", "--help"])
    assert exc.value.code == 0
    assert "--noise" in capsys.readouterr().out
    assert main([]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["example", "lotka-volterra", "--noise", "lots"])
    assert exc.value.code == 2
