"""The compiled vector field of a hybrid model: lambdified physics plus one network per unknown.

:class:`VectorField` is the ``torch.nn.Module`` every solver integrates.  It owns everything
trainable (network weights, learnable parameters) and the state bound for one solve (measured
inputs, per-row values of batched candidate refits), which only its own context managers set.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import contextmanager

import sympy as sp
import torch
from torch import nn

from .errors import ModelError, describe
from .lambdify import broadcast_outputs, torch_function
from .sparse_field import SPARSE_MIN_STATES, SparsePolynomial


class VectorField(nn.Module):
    """The compiled right-hand side of a :class:`~udesci.HybridModel` as a torch module.

    Everything trainable (network weights, learnable parameters) is registered
    here, so solvers and adjoints see it.

    Call ``field(t, y)`` with ``t`` of shape ``()`` or ``(...)`` and ``y`` of
    shape ``(..., n_states)``; returns ``dy/dt`` of shape ``(..., n_states)``.
    Measured inputs are bound for a batch with :meth:`bound_inputs`; per-row
    coefficients and parameter values (batched candidate refits) with
    :meth:`row_values`.  Both are context managers: the field owns its state,
    and nothing outside sets it.
    """

    def __init__(self, model, nets: nn.ModuleDict):
        super().__init__()
        self.nets = nets
        self.learnable = nn.ParameterDict(
            {
                str(s): nn.Parameter(torch.tensor(model.params[s], dtype=torch.float64))
                for s in sorted(model.learnable, key=str)
            }
        )
        self.fixed = [(s, model.params[s]) for s in model.params if s not in model.learnable]
        self.unknown_specs = list(model.unknowns.values())
        # one placeholder per application of each unknown, in the order of the specs and their calls
        self.placeholders = [sp.Dummy(f"unk_{u.name}") for u in self.unknown_specs for _ in u.calls]
        applications = [app for u in self.unknown_specs for app in u.applications]
        repl = dict(zip(applications, self.placeholders, strict=True))
        rhs = [model.equations[s].xreplace(repl) for s in model.states]
        self.param_syms = [s for s in model.params if s in model.learnable]
        self.arg_syms = [model.time, *model.states, *model.inputs, *self.param_syms, *self.placeholders]
        fixed = {s: v for s, v in model.params.items() if s not in model.learnable}
        self._exprs = []
        for state, expr in zip(model.states, rhs, strict=True):
            try:
                self._exprs.append(expr.subs(fixed))
            except (TypeError, ValueError) as exc:  # SymPy comparing a quantity the values made complex
                values = ", ".join(f"{k} = {v}" for k, v in fixed.items())
                raise ModelError(
                    f"equation for {state}: with the fixed parameter values ({values}) a compared quantity is "
                    f"not real (SymPy: {exc}); expected values for which every comparison, Min and Max is "
                    "between real numbers."
                ) from None
        self.state_index = {s: i for i, s in enumerate(model.states)}
        self.input_index = {s: i for i, s in enumerate(model.inputs)}
        self.time_symbol = model.time
        self.n_states, self.n_inputs = len(model.states), len(model.inputs)
        # a large model evaluates its polynomial right-hand sides from index tables (sparse_field.py)
        self._sparse = SparsePolynomial(self._exprs, self.arg_syms) if self.n_states >= SPARSE_MIN_STATES else None
        self._fn = None if self._sparse is not None else torch_function(self._exprs, self.arg_syms)
        # each application's arguments as positions in the columns (time, states, inputs): (n_calls, n_args)
        position = {model.time: 0, **{s: 1 + i for i, s in enumerate(model.states)}}
        position.update({s: 1 + self.n_states + j for j, s in enumerate(model.inputs)})
        for i, u in enumerate(self.unknown_specs):
            index = torch.tensor([[position[a] for a in call] for call in u.calls], dtype=torch.long)
            self.register_buffer(f"_calls{i}", index, persistent=False)
        self._input_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        # per-row values while `row_values` is open: {unknown: (B, p) TermSum coefficients} and
        # {learnable name: (B,)}; None means the registered modules and parameters
        self._row_coefficients: dict | None = None
        self._row_params: dict | None = None
        self.nfe = 0
        # carries the dtype through .to(...) for models without any parameter (physics only, or all
        # unknowns substituted); non-persistent, so it is not part of state_dict or checkpoints
        self.register_buffer("_dtype_ref", torch.zeros(()), persistent=False)

    @property
    def sparse(self) -> SparsePolynomial | None:
        """The index tables a model of ``SPARSE_MIN_STATES`` (8) states or more is evaluated with
        (:class:`~udesci.sparse_field.SparsePolynomial`); None for a smaller one (lambdified)."""
        return self._sparse

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the field (float64 unless moved with ``.to``)."""
        return self._dtype_ref.dtype

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fn", None)
        state["_input_fn"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # the lambdified function is not picklable: rebuild it from the stored expressions
        self._fn = None if self._sparse is not None else torch_function(self._exprs, self.arg_syms)

    def __deepcopy__(self, memo):
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            if k in ("_fn", "_input_fn"):
                new.__dict__[k] = v
            else:
                new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    def _time(self, t, y: torch.Tensor) -> torch.Tensor:
        """The time at every row of ``y``, shape ``(...)``."""
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t, dtype=y.dtype)
        return t.expand(y.shape[:-1]) if t.dim() <= y.dim() - 1 else t

    def _inputs(self, t: torch.Tensor) -> torch.Tensor:
        """The bound inputs at times ``t`` (...), shape ``(..., n_inputs)``."""
        if self._input_fn is None:
            raise ModelError(
                "this model has inputs but no input series was supplied; pass inputs= "
                "(or a Dataset with input columns) to simulate/fit."
            )
        return self._input_fn(t)

    def columns(self, t: torch.Tensor, y: torch.Tensor) -> dict:
        """Values of time, states and inputs as tensors of shape ``(...)``, keyed by symbol."""
        cols = dict(zip(self.state_index, y.unbind(-1), strict=True))
        cols[self.time_symbol] = self._time(t, y)
        if self.n_inputs:
            cols.update(zip(self.input_index, self._inputs(cols[self.time_symbol]).unbind(-1), strict=True))
        return cols

    def _unknown_at(self, spec, z: torch.Tensor, calls: bool) -> torch.Tensor:
        """Unknown ``spec``'s value at arguments ``z``: ``(..., n_args) -> (...)``, or with ``calls``
        ``(..., n_calls, n_args) -> (..., n_calls)`` (batch rows of per-row coefficients before the calls)."""
        net = self.nets[spec.name]
        rows = self._row_coefficients or {}
        if spec.name in rows:  # a closed form with its own coefficients in every batch row
            coef = rows[spec.name].unsqueeze(-2) if calls else rows[spec.name]
            return (net.features(z) * coef).sum(-1)
        return net(z).squeeze(-1)

    def call_arguments(self, cols: dict, spec) -> torch.Tensor:
        """The arguments of every application of unknown ``spec``, shape ``(..., n_calls, n_args)``."""
        return torch.stack([torch.stack([cols[a] for a in call], dim=-1) for call in spec.calls], dim=-2)

    def unknown_outputs(self, cols: dict) -> dict[str, torch.Tensor]:
        """Each unknown's value at every application, by name: shape ``(..., n_calls)``."""
        values, out, at = self.unknown_values(cols), {}, 0
        for spec in self.unknown_specs:
            out[spec.name] = torch.stack(values[at : at + len(spec.calls)], dim=-1)
            at += len(spec.calls)
        return out

    def unknown_values(self, cols: dict) -> list[torch.Tensor]:
        """Network outputs at each application of each unknown (the order of :attr:`placeholders`),
        shape ``(...)`` each."""
        if self._fused is not None:
            return self._fused_values(cols)
        out = []  # every field evaluation comes here: no calls' axis for an unknown applied once
        for spec in self.unknown_specs:
            if len(spec.calls) == 1:
                out.append(self._unknown_at(spec, torch.stack([cols[a] for a in spec.args], dim=-1), calls=False))
            else:
                out.extend(self._unknown_at(spec, self.call_arguments(cols, spec), calls=True).unbind(-1))
        return out

    # -- state bound for one solve -------------------------------------------------------------
    @contextmanager
    def bound_inputs(self, interp, index: torch.Tensor):
        """Bind the measured inputs of a batch while the context is open.

        Parameters
        ----------
        interp : InputInterpolator or None
            The input series (``None`` for a model without inputs).
        index : torch.Tensor of shape (B,)
            Trajectory of each batch row.

        The previous binding is restored on exit, so bindings nest.  Open it around
        everything that evaluates the field for this batch, including the backward pass
        of an adjoint solve.
        """
        old = self._input_fn
        self._input_fn = None if interp is None else (lambda t: interp(t, index))
        try:
            yield self
        finally:
            self._input_fn = old

    @contextmanager
    def row_values(self, coefficients: dict, params: dict):
        """Evaluate with per-row closed-form coefficients and parameter values while open.

        Parameters
        ----------
        coefficients : dict unknown name -> torch.Tensor of shape (B, p)
            Coefficients of the unknown's :class:`~udesci.networks.TermSum` terms in each
            batch row (its mask is not applied: zero coefficients drop terms).
        params : dict learnable name -> torch.Tensor of shape (B,)
            Value of each learnable parameter in each batch row.

        Raises
        ------
        ModelError
            If a name is not a TermSum unknown or a learnable parameter of the field.
        """
        from .networks import TermSum

        for name in coefficients:
            if name not in self.nets or not isinstance(self.nets[name], TermSum):
                raise ModelError(f"coefficients: {name!r} is not an unknown backed by a TermSum.")
        for name in params:
            if name not in self.learnable:
                raise ModelError(f"params: {name!r} is not a learnable parameter ({sorted(self.learnable)}).")
        old = self._row_coefficients, self._row_params
        self._row_coefficients, self._row_params = dict(coefficients), dict(params)
        try:
            yield self
        finally:
            self._row_coefficients, self._row_params = old

    def initialize_networks(self) -> list[str]:
        """Re-draw the weights of every default :class:`~udesci.networks.MLP` from torch's
        global generator, in the order of the unknowns (the order the model built them in).

        Networks supplied by the user (``networks=``) and closed forms are left as they are.

        Returns
        -------
        list of str
            The unknowns whose networks were re-initialised.
        """
        from .networks import MLP

        done = []
        for spec in self.unknown_specs:
            net = self.nets[spec.name]
            if type(net) is MLP:
                net.initialize()
                done.append(spec.name)
        return done

    def set_network(self, name: str, module: nn.Module) -> None:
        """Put ``module`` behind unknown ``name`` (e.g. a closed form during discovery).

        Raises
        ------
        ModelError
            If ``name`` is not an unknown of the field or ``module`` is not a torch module.
        """
        if name not in self.nets:
            raise ModelError(f"name: {name!r} is not an unknown of this field ({sorted(self.nets)}).")
        if not isinstance(module, nn.Module):
            raise ModelError(f"module: expected a torch.nn.Module, received {describe(module)}.")
        self.nets[name] = module

    # -- fused evaluation ----------------------------------------------------------------------
    _fused = None

    @contextmanager
    def fused(self):
        """Evaluate all default MLPs as one block-diagonal network while the context is open.

        The block weights are built once on entry (differentiably, from the individual
        networks' parameters), so every field evaluation inside runs one matrix product per
        layer instead of one per unknown.  Use it around a solve whose gradients flow by
        backpropagation; never around an adjoint solve, which must see the parameters inside
        the function it integrates.
        """
        from .networks import MLP

        nets = [self.nets[s.name] for s in self.unknown_specs]
        ok = len(nets) > 1 and all(type(n) is MLP for n in nets) and self._sparse is None
        ok = ok and all(len(s.calls) == 1 for s in self.unknown_specs)
        ok = ok and len({(n.depth, n.activation) for n in nets}) == 1
        if not ok or self._fused is not None:
            yield self
            return
        depth = nets[0].depth
        weights = []
        for layer in range(depth + 1):
            mods = [n.net[2 * layer] for n in nets]
            weights.append((torch.block_diag(*[m.weight for m in mods]), torch.cat([m.bias for m in mods])))
        self._fused = {
            "loc": torch.cat([n.in_loc for n in nets]),
            "scale": torch.cat([n.in_scale for n in nets]),
            "out": torch.cat([n.out_scale for n in nets]),
            "weights": weights,
            "act": nets[0].activation,
            "args": [a for s in self.unknown_specs for a in s.args],
        }
        try:
            yield self
        finally:
            self._fused = None

    def _fused_values(self, cols: dict) -> list[torch.Tensor]:
        from .networks import FUNCTIONAL_ACTIVATIONS

        f = self._fused
        h = (torch.stack([cols[a] for a in f["args"]], dim=-1) - f["loc"]) / f["scale"]
        act = FUNCTIONAL_ACTIVATIONS[f["act"]]
        *hidden, (w_last, b_last) = f["weights"]
        for w, b in hidden:
            h = act(torch.nn.functional.linear(h, w, b))
        return list((torch.nn.functional.linear(h, w_last, b_last) * f["out"]).unbind(-1))

    def _sparse_forward(self, t, y: torch.Tensor) -> torch.Tensor:
        """The right-hand side of a large model: one matrix of columns, :class:`SparsePolynomial`."""
        tt = self._time(t, y)
        parts = [tt.unsqueeze(-1), y]
        if self.n_inputs:
            parts.append(self._inputs(tt))
        x = torch.cat(parts, dim=-1)
        rows = self._row_params
        params = [self.learnable[str(s)] if rows is None else rows[str(s)] for s in self.param_syms]
        params = [p.to(y.dtype).expand(y.shape[:-1]).unsqueeze(-1) for p in params]
        values = [
            self._unknown_at(spec, x[..., getattr(self, f"_calls{i}")], calls=True)
            for i, spec in enumerate(self.unknown_specs)
        ]
        return self._sparse(torch.cat([x, *params, *values], dim=-1))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        if self._sparse is not None:
            return self._sparse_forward(t, y)
        cols = self.columns(t, y)
        args = [cols[self.time_symbol]]
        args += [cols[s] for s in self.state_index]
        args += [cols[s] for s in self.input_index]
        rows = self._row_params
        args += [self.learnable[str(s)] if rows is None else rows[str(s)] for s in self.param_syms]
        args += self.unknown_values(cols)
        return broadcast_outputs(self._fn(*args), y[..., 0])
