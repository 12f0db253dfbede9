"""Adam without ``torch.optim``: the same update as ``torch.optim.Adam`` (defaults, CPU, one tensor
at a time), without the first-use import of ``torch._dynamo`` that every ``torch.optim`` optimiser
triggers (1.5–3 s of each fresh process's first fit).  Its state dict has ``torch.optim.Adam``'s
layout, so checkpoints written by either load into the other."""

from __future__ import annotations

import torch

from ..errors import ConfigError

BETAS = (0.9, 0.999)
EPS = 1e-8


class Adam:
    """Adam (Kingma & Ba) with ``torch.optim.Adam``'s default settings and arithmetic.

    Parameters
    ----------
    params : list of torch.Tensor
        Leaf tensors with ``requires_grad``; updated in place by :meth:`step` from their ``.grad``.
    lr : float
        Learning rate (> 0).

    Raises
    ------
    ConfigError
        If ``lr`` is not a positive number or ``params`` holds something that is not a tensor.
    """

    def __init__(self, params, lr: float):
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, torch.Tensor):
                raise ConfigError(f"params[{i}]: expected a torch.Tensor, received {type(p).__name__}.")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ConfigError(f"lr: expected a positive number, received {lr!r}.")
        self.params = params
        self.lr = float(lr)
        self.state: dict[int, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for p in self.params:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        beta1, beta2 = BETAS
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            st = self.state.get(i)
            if st is None:
                st = self.state[i] = {
                    "step": torch.tensor(0.0),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            grad = p.grad
            st["step"] += 1
            st["exp_avg"].lerp_(grad, 1 - beta1)
            st["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = st["step"].item()
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            denom = (st["exp_avg_sq"].sqrt() / bias_correction2**0.5).add_(EPS)
            p.addcdiv_(st["exp_avg"], denom, value=-(self.lr / bias_correction1))

    def state_dict(self) -> dict:
        """The moments and step counts, laid out as ``torch.optim.Adam.state_dict()``."""
        group = {
            "lr": self.lr, "betas": BETAS, "eps": EPS, "weight_decay": 0, "amsgrad": False, "maximize": False,
            "foreach": None, "capturable": False, "differentiable": False, "fused": None,
            "decoupled_weight_decay": False, "params": list(range(len(self.params))),
        }  # fmt: skip
        return {
            "state": {i: {k: v.clone() for k, v in st.items()} for i, st in self.state.items()},
            "param_groups": [group],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore moments and step counts from :meth:`state_dict` (or ``torch.optim.Adam``'s).

        Raises
        ------
        ConfigError
            If the state does not match these parameters (count or shapes).
        """
        try:
            groups = state["param_groups"]
            entries = state["state"]
            n = sum(len(g["params"]) for g in groups)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"optimizer state: expected an Adam state dict, missing {exc}.") from None
        if n != len(self.params):
            raise ConfigError(f"optimizer state: holds {n} parameters, this optimiser has {len(self.params)}.")
        restored = {}
        for key, st in entries.items():
            i = int(key)
            p = self.params[i]
            if tuple(st["exp_avg"].shape) != tuple(p.shape):
                got = tuple(st["exp_avg"].shape)
                raise ConfigError(f"optimizer state: parameter {i} has shape {tuple(p.shape)}, the state {got}.")
            restored[i] = {
                "step": torch.as_tensor(st["step"], dtype=torch.float32).clone(),
                "exp_avg": st["exp_avg"].to(p).clone(),
                "exp_avg_sq": st["exp_avg_sq"].to(p).clone(),
            }
        self.state = restored
