"""Hybrid models: unknown functions backed by networks, parameters, and specification errors.

Numeric checks compare the compiled field with the same formula evaluated by hand from the model's own
networks, in float64.  Tolerance 1e-13: both sides apply the same network to the same inputs and then
combine the results with a handful of float64 operations (possibly in another order after SymPy's
common-subexpression elimination), so they agree to a few ulps of O(1) values (~1e-15).
"""

from __future__ import annotations

import pickle

import pytest
import sympy as sp
import torch
from torch import nn

import udesci as ud
from udesci.errors import ConfigError, ModelError

pytestmark = pytest.mark.usefixtures("one_thread")

t, x, y, z, w = sp.symbols("t x y z w")
alpha, beta, k = sp.symbols("alpha beta k")
S = sp.Symbol("S")
U, V = sp.Function("U"), sp.Function("V")
TOL = 1e-13  # same network, a few float64 operations in another order (module docstring)
F64 = torch.float64


def _f64(model: ud.HybridModel) -> ud.HybridModel:
    model.module.to(F64)
    return model


def _states(*batch, n=2, seed=0):
    return torch.randn(*batch, n, dtype=F64, generator=torch.Generator().manual_seed(seed))


class Weighted(nn.Module):
    """A fixed network ``z -> z @ weights`` with a known closed form."""

    def __init__(self, weights):
        super().__init__()
        self.register_buffer("weights", torch.tensor(weights, dtype=F64))

    def forward(self, z):
        return (z * self.weights).sum(-1, keepdim=True)


# ------------------------------------------------------------------------------------------------
# unknowns and networks


def test_each_unknown_gets_its_own_configured_mlp():
    model = ud.HybridModel({x: -U(x, y), y: V(x) - y}, width=8, depth=3, activation="relu")
    assert set(model.unknowns) == {"U", "V"}
    assert model.unknowns["U"] == ud.Unknown("U", (x, y))
    assert model.unknowns["V"].args == (x,)
    nets = model.networks()
    assert nets["U"] is not nets["V"]
    for name, n_in in (("U", 2), ("V", 1)):
        net = nets[name]
        assert isinstance(net, ud.MLP)
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        assert len(linears) == 4  # depth hidden layers + output layer
        assert [lin.in_features for lin in linears] == [n_in, 8, 8, 8]
        assert linears[-1].out_features == 1
        assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 3
    # the networks are registered in the module, so optimisers and solvers see them
    param_ids = {id(p) for p in model.module.parameters()}
    assert all(id(p) in param_ids for p in nets["U"].parameters())


def test_default_mlp_options():
    net = ud.HybridModel({x: U(x)}).networks()["U"]
    assert (net.width, net.depth, net.activation) == (32, 2, "tanh")


def test_unknown_anywhere_in_an_expression():
    model = _f64(ud.HybridModel({x: alpha * x * U(y), y: -y}, {alpha: 0.7}, width=8))
    yv = _states(3, 5)
    out = model.module(torch.tensor(0.0, dtype=F64), yv)
    u = model.networks()["U"](yv[..., 1:2]).squeeze(-1)
    torch.testing.assert_close(out[..., 0], 0.7 * yv[..., 0] * u, rtol=TOL, atol=TOL)
    torch.testing.assert_close(out[..., 1], -yv[..., 1], rtol=0, atol=0)  # a negation: exact


def test_unknown_shared_between_equations_has_one_network():
    model = _f64(ud.HybridModel({x: -U(x), y: U(x) - y}, width=8))
    assert list(model.networks()) == ["U"]
    yv = _states(7)
    out = model.module(torch.tensor(0.0, dtype=F64), yv)
    u = model.networks()["U"](yv[..., :1]).squeeze(-1)
    assert u.abs().max() > 1e-3  # a non-trivial network output, so the check below means something
    torch.testing.assert_close(out[..., 0], -u, rtol=TOL, atol=TOL)
    torch.testing.assert_close(out[..., 1], u - yv[..., 1], rtol=TOL, atol=TOL)


def test_user_network_is_used_as_given():
    net = Weighted([1.0, 10.0, 100.0])
    model = ud.HybridModel({x: -x + U(x, S, t)}, inputs=[S], networks={"U": net})
    assert model.networks()["U"] is net
    assert model.unknowns["U"].args == (x, S, t)  # argument order is call order
    _f64(model)
    tv = torch.tensor([0.5, 1.5, 2.0], dtype=F64)
    yv = torch.tensor([[1.0], [2.0], [-1.0]], dtype=F64)
    with model.module.bound_inputs(lambda tt, _rows: (2.0 * tt).unsqueeze(-1), None):  # S(t) = 2 t
        out = model.module(tv, yv)[:, 0]
    # -x + (x + 10 S + 100 t) = 10 * 2t + 100 t = 120 t; exact in binary for these t
    torch.testing.assert_close(out, 120.0 * tv, rtol=TOL, atol=TOL)


def test_empty_container_network_is_not_replaced():
    """``nn.Sequential()`` (the identity) is falsy; it must still be used rather than a new MLP."""
    model = _f64(ud.HybridModel({x: -U(x)}, networks={"U": nn.Sequential()}))
    assert isinstance(model.networks()["U"], nn.Sequential)
    yv = _states(4, n=1)
    torch.testing.assert_close(
        model.module(torch.tensor(0.0, dtype=F64), yv), -yv, rtol=0, atol=0
    )  # identity network: exact


def test_network_for_unknown_name_or_not_a_module_is_rejected():
    with pytest.raises(ModelError, match=r"networks: received a network for 'W'.*expected one of \['U'\]"):
        ud.HybridModel({x: -U(x)}, networks={"W": nn.Linear(1, 1)})
    with pytest.raises(ModelError, match=r"networks\['U'\]: expected a torch.nn.Module, received function"):
        ud.HybridModel({x: -U(x)}, networks={"U": lambda z: z})


def test_bad_mlp_options_are_config_errors():
    with pytest.raises(ConfigError, match="MLP width: expected a positive int, received 0"):
        ud.HybridModel({x: U(x)}, width=0)
    with pytest.raises(ConfigError, match="MLP activation.*received 'swish'"):
        ud.HybridModel({x: U(x)}, activation="swish")


# ------------------------------------------------------------------------------------------------
# parameters


def test_learnable_and_fixed_parameters():
    model = _f64(ud.HybridModel({x: -k * x + alpha, y: beta * y}, {k: ud.Learnable(0.5), alpha: 2.0, beta: -1}))
    assert model.learnable == {k}
    assert set(model.module.learnable) == {"k"}
    param = model.module.learnable["k"]
    assert isinstance(param, nn.Parameter) and param.requires_grad
    assert any(p is param for p in model.module.parameters())
    assert len(list(model.module.parameters())) == 1  # fixed alpha and beta are not parameters
    assert model.parameter_values() == {k: 0.5, alpha: 2.0, beta: -1.0}  # all exact in binary
    yv = torch.tensor([[3.0, 2.0]], dtype=F64)
    out = model.module(torch.tensor(0.0, dtype=F64), yv)
    torch.testing.assert_close(out, torch.tensor([[-0.5 * 3 + 2, -2.0]], dtype=F64), rtol=TOL, atol=TOL)
    out[0, 0].backward()
    assert float(param.grad) == -3.0  # d(-k x + alpha)/dk = -x, exact


def test_learnable_value_checks():
    assert ud.Learnable(2).value == 2.0 and isinstance(ud.Learnable(2).value, float)
    with pytest.raises(ConfigError, match=r"Learnable value: expected a real number, received str 'abc'"):
        ud.Learnable("abc")
    with pytest.raises(ConfigError, match="expected a finite number, received nan"):
        ud.Learnable(float("nan"))
    with pytest.raises(ConfigError, match=r"params\[alpha\]: expected a number or ud.Learnable"):
        ud.HybridModel({x: -alpha * x}, {alpha: "abc"})


def test_symbols_may_be_given_as_names():
    model = ud.HybridModel({"x": "-k*x"}, {"k": 2.0}, states=["x"])
    assert model.states == (x,) and model.params == {k: 2.0}
    assert model.state_names == ["x"]


def test_copy_is_independent():
    model = _f64(ud.HybridModel({x: -k * U(x)}, {k: ud.Learnable(1.0)}, width=4))
    other = model.copy()
    with torch.no_grad():
        other.module.learnable["k"].fill_(3.0)
        next(other.networks()["U"].parameters()).add_(1.0)
    assert float(model.module.learnable["k"].detach()) == 1.0
    assert not torch.equal(next(model.networks()["U"].parameters()), next(other.networks()["U"].parameters()))


def test_pickle_round_trip_rebuilds_the_compiled_field():
    model = _f64(ud.HybridModel({x: -k * U(x) + sp.sin(t)}, {k: ud.Learnable(1.25)}, width=4))
    loaded = pickle.loads(pickle.dumps(model))
    yv, tv = _states(6, n=1), torch.linspace(0, 1, 6, dtype=F64)
    # same weights, same compiled expression: bit-for-bit equal
    assert torch.equal(model.module(tv, yv), loaded.module(tv, yv))


def test_substitute_replaces_an_unknown_by_a_closed_form():
    model = _f64(ud.HybridModel({x: -U(x), y: V(y)}, width=4))
    new = model.substitute({"U": k * x**2}, params={k: 0.25}, learnable=[k])
    assert set(new.unknowns) == {"V"} and new.learnable == {k}
    assert new.networks()["V"] is not model.networks()["V"]  # a copy with the same weights
    yv = _states(5)
    out = new.module(torch.tensor(0.0, dtype=F64), yv)
    torch.testing.assert_close(out[:, 0], -0.25 * yv[:, 0] ** 2, rtol=TOL, atol=TOL)
    torch.testing.assert_close(
        out[:, 1], model.module(torch.tensor(0.0, dtype=F64), yv)[:, 1], rtol=0, atol=0
    )  # same weights, same ops
    with pytest.raises(ModelError, match=r"'W' is not an unknown of this model \(\['U', 'V'\]\)"):
        model.substitute({"W": x})


def test_physics_only_model_follows_to_dtype():
    """A model without any parameter still reports (and simulates in) the dtype it was moved to."""
    model = ud.HybridModel({x: -2 * x})
    model.module.to(F64)
    assert model.module.dtype == F64
    model.module.to(torch.float32)
    assert model.module.dtype == torch.float32
    assert "_dtype_ref" not in model.module.state_dict()  # not part of checkpoints / saved weights


def test_substituting_every_unknown_keeps_float64():
    model = _f64(ud.HybridModel({x: -U(x)}, width=4))
    assert model.substitute({"U": 2 * x}).module.dtype == F64


# ------------------------------------------------------------------------------------------------
# specification errors: each names the symbol, what was expected and what was received


def test_free_symbol_that_is_not_declared():
    with pytest.raises(ModelError, match=r"equation for x: symbol beta is neither a state \['x'\].*add it to params"):
        ud.HybridModel({x: -beta * x})


def test_state_without_equation():
    with pytest.raises(
        ModelError, match=r"state z has no equation: expected .* \[x, y, z\], received equations for \[x, y\]"
    ):
        ud.HybridModel({x: -x, y: x}, states=[x, y, z])


def test_equation_for_a_non_state():
    with pytest.raises(ModelError, match=r"received an equation for w, which is not a state \(states=\[x\]\)"):
        ud.HybridModel({x: -x, w: x}, states=[x])


def test_unknown_without_arguments():
    with pytest.raises(ModelError, match=r"equation for x: unknown U\(\) has no arguments; expected .*e.g. U\(x\)"):
        ud.HybridModel({x: -U()})


@pytest.mark.parametrize(
    ("arg", "shown"), [(alpha, "alpha"), (2 * x, r"2\*x"), (x + y, r"x \+ y")], ids=["param", "2x", "x+y"]
)
def test_unknown_with_an_argument_that_is_not_a_state_input_or_time(arg, shown):
    with pytest.raises(ModelError, match=rf"unknown U has argument {shown}, expected states \['x', 'y'\].*received U"):
        ud.HybridModel({x: -U(arg), y: -y}, {alpha: 1.0})


def test_same_unknown_with_different_numbers_of_arguments():
    with pytest.raises(ModelError, match=r"unknown U is applied as U\(x\) and as U\(x, y\).*same number of arguments"):
        ud.HybridModel({x: -U(x), y: U(x, y)})


def test_symbol_in_two_roles():
    with pytest.raises(ModelError, match=r"symbols \['x'\] are declared in more than one role"):
        ud.HybridModel({x: -x}, {x: 1.0})
    with pytest.raises(ModelError, match=r"symbols \['t'\]"):
        ud.HybridModel({x: -x}, inputs=[t])


def test_unknown_named_like_a_symbol():
    with pytest.raises(ModelError, match="unknown function y has the same name as a symbol"):
        ud.HybridModel({x: -sp.Function("y")(x), y: -y})


def test_empty_or_non_mapping_equations():
    with pytest.raises(ModelError, match="equations: expected a non-empty mapping"):
        ud.HybridModel({})
    with pytest.raises(ModelError, match=r"received list"):
        ud.HybridModel([x])


def test_model_errors_are_value_errors():
    with pytest.raises(ValueError, match="symbol beta"):
        ud.HybridModel({x: beta})


def test_input_model_without_input_series():
    model = _f64(ud.HybridModel({x: -x + S}, inputs=[S]))
    with pytest.raises(ModelError, match="this model has inputs but no input series was supplied"):
        model.module(torch.tensor(0.0, dtype=F64), _states(3, n=1))
