"""udesci's Adam against torch.optim.Adam: identical updates and interchangeable state dicts."""

import pytest
import torch

from udesci.errors import ConfigError
from udesci.train.adam import Adam


def quadratic_problem(seed):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(4, 3, generator=gen, dtype=torch.float64).requires_grad_(True),
              torch.randn(5, generator=gen, dtype=torch.float64).requires_grad_(True)]  # fmt: skip
    targets = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]

    def loss():
        return sum(((p - t) ** 4).sum() + (p * t).sin().sum() for p, t in zip(params, targets, strict=True))

    return params, loss


def run(opt, params, loss, steps):
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()
    return [p.detach().clone() for p in params]


def test_adam_updates_are_bit_identical_to_torch():
    mine_params, mine_loss = quadratic_problem(0)
    ref_params, ref_loss = quadratic_problem(0)
    mine = run(Adam(mine_params, lr=1e-2), mine_params, mine_loss, 200)
    ref = run(torch.optim.Adam(ref_params, lr=1e-2), ref_params, ref_loss, 200)
    for a, b in zip(mine, ref, strict=True):
        assert torch.equal(a, b)


def test_adam_state_dict_round_trips_with_torch():
    params, loss = quadratic_problem(1)
    ref_params, ref_loss = quadratic_problem(1)
    torch_opt = torch.optim.Adam(ref_params, lr=5e-3)
    run(torch_opt, ref_params, ref_loss, 30)
    with torch.no_grad():
        for p, q in zip(params, ref_params, strict=True):
            p.copy_(q)
    mine = Adam(params, lr=5e-3)
    mine.load_state_dict(torch_opt.state_dict())  # resume a torch.optim checkpoint with udesci's Adam
    a = run(mine, params, loss, 20)
    b = run(torch_opt, ref_params, ref_loss, 20)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    again = torch.optim.Adam(ref_params, lr=5e-3)
    again.load_state_dict(mine.state_dict())  # and the other way round
    assert torch.equal(again.state_dict()["state"][0]["exp_avg"], mine.state_dict()["state"][0]["exp_avg"])


def test_adam_rejects_bad_arguments():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ConfigError, match="lr"):
        Adam([p], lr=0.0)
    with pytest.raises(ConfigError, match="params"):
        Adam([1.0], lr=1e-3)
    with pytest.raises(ConfigError, match="parameters"):
        Adam([p], lr=1e-3).load_state_dict({"state": {}, "param_groups": [{"params": [0, 1]}]})
