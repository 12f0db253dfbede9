"""Neural networks standing behind unknown functions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import limits
from .errors import ConfigError

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
}


FUNCTIONAL_ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
    "softplus": nn.functional.softplus,
    "sigmoid": torch.sigmoid,
    "elu": nn.functional.elu,
}


def parameter_count(n_in: int, n_out: int, width: int, depth: int) -> int:
    """Weights and biases of an :class:`MLP` of these sizes (computed, nothing allocated).

    Parameters
    ----------
    n_in, n_out, width, depth : int
        As in :class:`MLP`.

    Returns
    -------
    int
    """
    return n_in * width + width + (depth - 1) * (width * width + width) + width * n_out + n_out


def check_size(n_in, n_out, width, depth, where: str) -> None:
    """Refuse network sizes over the limits before anything is allocated.

    Sizes that are not positive ints are left to :class:`MLP` to report.

    Parameters
    ----------
    n_in, n_out, width, depth : int
        As in :class:`MLP`.
    where : str
        Where the sizes come from, for the message (e.g. ``"model.json: networks['U']"``).

    Raises
    ------
    ConfigError
        If ``width`` is over the limit ``network_width``, ``depth`` over ``network_depth``
        or the parameter count over ``network_parameters`` (see :mod:`udesci.limits`).
    """
    sizes = (n_in, n_out, width, depth)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes):
        return
    limits.check("network_width", width, f"{where} width")
    limits.check("network_depth", depth, f"{where} depth")
    count = parameter_count(*sizes)
    if count > limits.current("network_parameters"):
        raise limits.too_large(
            "network_parameters",
            where,
            f"a network {n_in} -> {n_out} of width {width} and depth {depth} ({count} parameters)",
        )


class MLP(nn.Module):
    """Fully connected network ``R^k -> R^m`` with fixed input/output scaling.

    The affine input normalisation (``in_loc``, ``in_scale``) and output scale
    (``out_scale``) are buffers, not parameters: training sets them once from
    the data so that the network sees O(1) inputs whatever the units, and they
    travel with ``state_dict``.  The last layer starts near zero, so an
    untrained hybrid model starts from its known physics.

    Parameters
    ----------
    n_in : int
        Number of inputs ``k`` (the unknown function's arguments).
    n_out : int, default 1
        Number of outputs ``m``.
    width : int, default 32
        Hidden layer width.
    depth : int, default 2
        Number of hidden layers.
    activation : str, default "tanh"
        One of :data:`ACTIVATIONS`.

    Raises
    ------
    ConfigError
        If a size is not a positive integer or the activation is unknown.
    """

    def __init__(self, n_in: int, n_out: int = 1, width: int = 32, depth: int = 2, activation: str = "tanh"):
        super().__init__()
        for name, value in (("n_in", n_in), ("n_out", n_out), ("width", width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"MLP {name}: expected a positive int, received {value!r}.")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ConfigError(f"MLP activation: expected one of {sorted(ACTIVATIONS)}, received {activation!r}.")
        check_size(n_in, n_out, width, depth, "MLP")  # a typo such as width=10**12 must not reach the allocator
        layers: list[nn.Module] = []
        size = n_in
        for _ in range(depth):
            layers += [nn.Linear(size, width), ACTIVATIONS[activation]()]
            size = width
        last = nn.Linear(size, n_out)
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.zero_()
        layers.append(last)
        self.net = nn.Sequential(*layers)
        self.n_in, self.n_out = n_in, n_out
        self.width, self.depth, self.activation = width, depth, activation
        self.register_buffer("in_loc", torch.zeros(n_in))
        self.register_buffer("in_scale", torch.ones(n_in))
        self.register_buffer("out_scale", torch.ones(n_out))

    def initialize(self) -> None:
        """Draw fresh weights from torch's global generator, exactly as construction does.

        A network of the same shape is built (in float32, as at construction) and its
        weights are copied in, so ``torch.manual_seed(s); net.initialize()`` gives the
        weights that ``torch.manual_seed(s); MLP(...)`` gives, in any dtype.  The scaling
        buffers are kept.
        """
        fresh = MLP(self.n_in, self.n_out, width=self.width, depth=self.depth, activation=self.activation)
        with torch.no_grad():
            for mine, new in zip(self.net.parameters(), fresh.net.parameters(), strict=True):
                mine.copy_(new)

    def set_scaling(self, loc: Sequence[float], scale: Sequence[float], out_scale: Sequence[float] | float = 1.0):
        """Set the input normalisation ``(z - loc) / scale`` and the output scale.

        Parameters
        ----------
        loc, scale : sequence of float, length n_in
        out_scale : float or sequence of float, length n_out
        """
        dtype, device = self.in_loc.dtype, self.in_loc.device
        self.in_loc.copy_(torch.as_tensor(loc, dtype=dtype, device=device))
        scale_t = torch.as_tensor(scale, dtype=dtype, device=device)
        self.in_scale.copy_(torch.where(scale_t > 0, scale_t, torch.ones_like(scale_t)))
        self.out_scale.copy_(torch.as_tensor(out_scale, dtype=dtype, device=device).expand(self.n_out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Evaluate the network.

        Parameters
        ----------
        z : torch.Tensor of shape (..., n_in)

        Returns
        -------
        torch.Tensor of shape (..., n_out)
        """
        # a plain loop over the layers: nn.Sequential's per-module call overhead dominates small UDEs
        h = (z - self.in_loc) / self.in_scale
        layers = self.net
        act = FUNCTIONAL_ACTIVATIONS[self.activation]
        for i in range(0, len(layers) - 1, 2):
            lin = layers[i]
            h = act(torch.nn.functional.linear(h, lin.weight, lin.bias))
        last = layers[len(layers) - 1]
        return torch.nn.functional.linear(h, last.weight, last.bias) * self.out_scale


def monomial_exponents(term, args) -> tuple[int, ...] | None:
    """Exponents of ``term`` as a product of nonnegative integer powers of ``args``, or ``None``.

    Parameters
    ----------
    term : sympy.Expr
    args : sequence of sympy.Symbol, length k

    Returns
    -------
    tuple of int of length k, or None
        ``(e_1, ..., e_k)`` when ``term == args[0]**e_1 * ... * args[k-1]**e_k`` exactly (``1`` gives
        all zeros); ``None`` for anything else (a coefficient, another symbol, a function, a negative
        or non-integer power).
    """
    import sympy as sp

    index = {a: i for i, a in enumerate(args)}
    out = [0] * len(args)
    factors = sp.Mul.make_args(term) if term != 1 else ()
    for factor in factors:
        base, power = factor.as_base_exp()
        if base not in index or not (power.is_Integer and power > 0):
            return None
        out[index[base]] += int(power)
    return tuple(out)


def trig_position(term, args) -> int | None:
    """Where ``term`` sits among ``sin(args[0]), ..., sin(args[k-1]), cos(args[0]), ..., cos(args[k-1])``,
    or ``None`` when it is not the sine or cosine of an argument itself.

    Parameters
    ----------
    term : sympy.Expr
    args : sequence of sympy.Symbol, length k

    Returns
    -------
    int in ``[0, 2k)`` or None
    """
    import sympy as sp

    if isinstance(term, (sp.sin, sp.cos)) and term.args[0] in args:
        i = list(args).index(term.args[0])
        return i if isinstance(term, sp.sin) else len(args) + i
    return None


class TermSum(nn.Module):
    """Linear combination of fixed SymPy terms, ``sum_j mask_j c_j term_j(z)``.

    Used by discovery to put a candidate closed form where a network was,
    with trainable coefficients, without recompiling the model.

    Parameters
    ----------
    terms : sequence of sympy.Expr, length p
        Terms in the symbols ``args``.
    args : sequence of sympy.Symbol, length k
    coefficients : sequence of float, length p
    mask : sequence of bool, length p
        Which terms are active.
    """

    def __init__(self, terms, args, coefficients, mask):
        super().__init__()
        from .lambdify import broadcast_outputs, torch_function

        terms, args = list(terms), list(args)
        # monomials of the arguments (the polynomial library) are evaluated from a table of powers
        # (each argument's 1, z, ..., z^d by one cumulative product) gathered and multiplied: a few
        # tensor operations for all of them, where the lambdified function costs a power and a stack
        # entry per term (discovery evaluates features in every solver stage of every batched refit)
        exponents = [monomial_exponents(term, args) for term in terms]
        mono = [j for j, e in enumerate(exponents) if e is not None]
        # the sines and cosines of the arguments (the library's trig terms) come from one sin and one cos
        trig_at = [None if exponents[j] is not None else trig_position(terms[j], args) for j in range(len(terms))]
        trig = [j for j, at in enumerate(trig_at) if at is not None]
        rest = [j for j, e in enumerate(exponents) if e is None and trig_at[j] is None]
        self._rest_features = torch_function([terms[j] for j in rest], args) if rest else None
        self._broadcast = broadcast_outputs
        self._k = len(args)
        self._degree = max((max(exponents[j], default=0) for j in mono), default=0)
        # non-persistent buffers: derived from the terms, so neither part of state_dict nor of checkpoints;
        # row (i * (degree + 1) + e_ij) of the flattened power table, argument-major: (k * n_mono,)
        gather = [i * (self._degree + 1) + exponents[j][i] for i in range(self._k) for j in mono]
        self.register_buffer("_gather", torch.tensor(gather, dtype=torch.long), persistent=False)
        self.register_buffer("_trig", torch.tensor([trig_at[j] for j in trig], dtype=torch.long), persistent=False)
        parts = sum(1 for part in (mono, trig, rest) if part)
        order = torch.argsort(torch.tensor(mono + trig + rest)) if parts > 1 else None
        self.register_buffer("_order", order, persistent=False)
        self._n_mono = len(mono)
        self._n_trig = len(trig)
        self.coef = nn.Parameter(torch.as_tensor(coefficients, dtype=torch.float64).clone())
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float64).clone())

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """Library terms at ``z`` (..., k) -> (..., p)."""
        parts = []
        if self._n_mono:
            parts.append(self._monomials(z))
        if self._n_trig:
            parts.append(torch.cat([torch.sin(z), torch.cos(z)], dim=-1).index_select(-1, self._trig))
        if self._rest_features is not None:
            parts.append(self._broadcast(self._rest_features(*z.unbind(-1)), z[..., 0]))
        if len(parts) <= 1:
            return parts[0] if parts else z.new_zeros(*z.shape[:-1], 0)
        return torch.cat(parts, dim=-1).index_select(-1, self._order)

    def _monomials(self, z: torch.Tensor) -> torch.Tensor:
        """The monomial terms at ``z`` (..., k) -> (..., n_mono), in their order among the terms."""
        batch = z.shape[:-1]
        zt = z.movedim(-1, 0).unsqueeze(1)  # (k, 1, ...)
        table = torch.ones_like(zt)
        if self._degree:
            powers = zt.expand(self._k, self._degree, *batch).cumprod(1)
            table = torch.cat([table, powers], dim=1)  # (k, degree + 1, ...)
        picked = table.flatten(0, 1).index_select(0, self._gather).view(self._k, self._n_mono, *batch)
        return picked.prod(0).movedim(0, -1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., k) -> (..., 1)``."""
        return (self.features(z) @ (self.coef * self.mask)).unsqueeze(-1)
