"""Training survives the solver giving up; unrelated errors still surface."""

import math

import pytest
import sympy as sp

import udesci as ud
from udesci.train import TrainingLoop, TrainingWarning, solver_gave_up

x, k = sp.symbols("x k")


def _loop_and_loss(fail_at, message):
    model = ud.HybridModel({x: -k * x}, params={k: ud.Learnable(1.0)})
    calls = [0]
    param = model.module.learnable["k"]

    def loss():
        calls[0] += 1
        if calls[0] == fail_at:
            raise AssertionError(message)
        return (param - 2.0) ** 2

    return model, TrainingLoop(model, {}, False, None, 10, None), loss


def test_solver_failure_stops_adam_with_best_weights():
    model, loop, loss = _loop_and_loss(4, "underflow in dt 1.58e-18")
    with pytest.warns(TrainingWarning, match="inf"):
        loop.run("stage", list(model.module.parameters()), loss, iterations=10, lr=0.1)
    assert loop.status == "nonfinite"
    value = model.module.learnable["k"].item()
    # three Adam steps of lr 0.1 from 1.0 towards 2.0: the best weights are those of the third loss
    assert math.isfinite(value) and 1.15 < value < 1.25


def test_lbfgs_survives_a_failed_solve_in_its_line_search():
    model, loop, loss = _loop_and_loss(2, "max_num_steps exceeded (100>=100)")
    loop.run("stage", list(model.module.parameters()), loss, iterations=0, lr=0.1, lbfgs=10)
    # no crash, and the weights kept are finite and no worse than the start (loss 1 at k = 1)
    assert loop.status == "ok"
    value = model.module.learnable["k"].item()
    assert math.isfinite(value) and (value - 2.0) ** 2 <= 1.0


def test_other_assertions_are_not_swallowed():
    model, loop, loss = _loop_and_loss(2, "a genuine bug")
    with pytest.raises(AssertionError, match="genuine"):
        loop.run("stage", list(model.module.parameters()), loss, iterations=5, lr=0.1)
    assert solver_gave_up(AssertionError("underflow in dt 1e-20"))
    assert not solver_gave_up(RuntimeError("underflow in dt"))
