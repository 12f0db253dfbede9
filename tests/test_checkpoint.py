"""Checkpoints: fit(..., checkpoint=, checkpoint_every=) and fit(..., resume=).

Resume equality is exact (tolerance 0).  A resumed run restores a bitwise copy of the weights, the
trainable initial states, the optimiser state, the loss history and the RNG state, then replays the same
float64 operations on one thread; the initial weights themselves come from fit's seed (``init="seed"``),
not from how the model was built, so the reference run and the killed-and-resumed run in another process
start from the same bits.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import udesci as ud
from udesci.errors import ConfigError
from udesci.train import TrainingWarning

pytestmark = pytest.mark.usefixtures("one_thread")

RTOL = 0.0  # exact: see the module docstring

JOB = '''
"""Builds the model and data of the checkpoint tests; run as a script, trains with checkpoints."""
import sys

import numpy as np
import sympy as sp
import torch

import udesci as ud

x, y, k = sp.symbols("x y k")
U = sp.Function("U")
OPTIONS = dict(
    warm_start=ud.WarmStart(iterations=30),
    shooting=ud.Shooting(iterations=60, lr=0.01),
    seed=0,
    threads=1,
    progress=False,
)


def build(networks=None):
    # no seeding here: fit draws the initial weights from its own seed
    model = ud.HybridModel(
        {x: -k * x + U(x, y), y: x - y}, {k: ud.Learnable(0.5)}, width=8, networks=networks
    )
    truth = ud.HybridModel({x: -1.3 * x, y: x - y})
    truth.module.to(torch.float64)
    t = np.linspace(0.0, 3.0, 31)
    sol = ud.simulate(truth, [2.0, 1.0], t, solver=ud.Solver("dopri5", rtol=1e-10, atol=1e-10))
    return model, ud.Dataset(t, sol, states=["x", "y"])


if __name__ == "__main__":
    torch.set_num_threads(1)
    model, data = build()
    ud.fit(model, data, checkpoint=sys.argv[1], checkpoint_every=5, **OPTIONS)
'''


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    path = tmp_path_factory.mktemp("job") / "job.py"
    path.write_text(JOB)
    spec = importlib.util.spec_from_file_location("checkpoint_job", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.PATH = path
    return module


@pytest.fixture(scope="module")
def reference(job, tmp_path_factory):
    """One uninterrupted run (with checkpoints every 7 iterations), shared by the tests below."""
    path = tmp_path_factory.mktemp("reference") / "run.ckpt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, data = job.build()
        result = ud.fit(model, data, checkpoint=path, checkpoint_every=7, **job.OPTIONS)
    finally:
        torch.set_num_threads(threads)
    return result, path


def _assert_same_run(resumed: ud.FitResult, reference: ud.FitResult):
    assert [(h["stage"], h["iteration"]) for h in resumed.history] == [
        (h["stage"], h["iteration"]) for h in reference.history
    ]
    np.testing.assert_allclose(resumed.loss(), reference.loss(), rtol=RTOL, atol=0)
    a, b = resumed.model.module.state_dict(), reference.model.module.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=RTOL, atol=0, err_msg=name)
    np.testing.assert_allclose(resumed.initial_states, reference.initial_states, rtol=RTOL, atol=0)
    assert resumed.status == reference.status == "ok"


def _load(path):
    return torch.load(path, weights_only=True)


# ------------------------------------------------------------------------------------------------


def test_checkpoint_file_and_resume_from_a_finished_run(job, reference):
    reference, path = reference
    assert path.exists() and not path.with_name("run.ckpt.tmp").exists()  # written atomically
    state = _load(path)  # plain tensors and containers: loadable with weights_only=True
    assert state["format"] == "udesci-checkpoint-1"
    assert state["stage"] == "shooting:done" and state["done"] == ["warm_start", "shooting"]
    assert state["history"] == reference.history
    assert set(state["module"]) == set(reference.model.module.state_dict())
    assert state["best_loss"] == reference.loss("shooting").min()  # the very value recorded in the history
    # resuming a finished run trains nothing and returns the same result, fitted initial states included
    model, data = job.build()
    resumed = ud.fit(model, data, resume=path, **job.OPTIONS)
    _assert_same_run(resumed, reference)


@pytest.mark.parametrize("stage", ["warm_start", "shooting"])
def test_resume_after_kill_equals_uninterrupted_run(job, reference, tmp_path, stage):
    """Train in a subprocess with checkpoint_every=5, SIGKILL it once a checkpoint of ``stage`` with
    iteration > 0 exists, resume here: the result equals an uninterrupted run."""
    reference, _ = reference
    _, data = job.build()

    path = tmp_path / "killed.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(job.PATH), str(path)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    seen = None
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if path.exists():
                try:
                    state = _load(path)
                except Exception:  # noqa: BLE001 - a file being replaced: read it on the next poll
                    state = None
                if state and state["stage"] == f"{stage}:adam" and state["iteration"] > 0:
                    os.kill(proc.pid, signal.SIGKILL)
                    seen = state
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and seen is None:
            proc.kill()
        _, err = proc.communicate(timeout=60)
    assert seen is not None, f"no {stage} checkpoint seen while training ran (rc {proc.returncode}): {err[-2000:]}"
    assert proc.returncode == -signal.SIGKILL  # killed mid-training, not finished

    state = _load(path)  # the last checkpoint written before the kill (atomic replace: never torn)
    assert state["stage"].split(":")[0] in ("warm_start", "shooting") and not state["stage"].endswith("done")
    n_done = len(state["history"])
    assert 0 < n_done < len(reference.history)
    # the subprocess computed the same run as this process up to the kill
    np.testing.assert_allclose([h["loss"] for h in state["history"]], reference.loss()[:n_done], rtol=RTOL, atol=0)

    resumed = ud.fit(job.build()[0], data, resume=path, **job.OPTIONS)
    _assert_same_run(resumed, reference)


class InterruptingMLP(ud.MLP):
    """The default network, raising KeyboardInterrupt (as Ctrl-C would) on its ``at``-th call."""

    def __init__(self, *args, at=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.at, self.calls = at, 0

    def forward(self, z):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().forward(z)


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(job, reference, tmp_path):
    reference, _ = reference

    def build(at=None):
        # the same initial weights as job.build()'s default MLP (same seed, same layers)
        torch.manual_seed(0)
        net = InterruptingMLP(2, 1, width=8, at=at)
        return job.build(networks={"U": net})

    path = tmp_path / "ctrl_c.ckpt"
    # warm start: one network call per iteration (30); shooting: 5 rk4 steps x 4 calls per iteration, so
    # call 30 + 20 * 12 + 3 falls inside shooting iteration 12, between the loss and the update
    model, data = build(at=30 + 20 * 12 + 3)
    with pytest.warns(TrainingWarning, match=r"stage 'shooting' interrupted.*Resume with fit\(\.\.\., resume="):
        stopped = ud.fit(model, data, checkpoint=path, checkpoint_every=1000, **job.OPTIONS)
    assert stopped.status == "interrupted"
    state = _load(path)
    assert state["stage"] == "shooting:adam"
    # the checkpoint resumes at the first iteration not completed
    assert state["iteration"] == sum(h["stage"] == "shooting" for h in state["history"]) == 12

    resumed = ud.fit(build()[0], data, resume=path, **job.OPTIONS)
    _assert_same_run(resumed, reference)


def test_resume_errors(job, tmp_path):
    """A missing file, a file that is not a torch file, and a torch file that is not a checkpoint."""
    model, data = job.build()
    missing = tmp_path / "missing.ckpt"
    with pytest.raises(ConfigError, match=r"resume: checkpoint file '.*missing.ckpt' does not exist"):
        ud.fit(model, data, resume=missing, **job.OPTIONS)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match=r"resume: '.*notes.txt' is not a readable udesci checkpoint"):
        ud.fit(model, data, resume=text, **job.OPTIONS)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match=r"resume: '.*other.pt' is not a udesci checkpoint"):
        ud.fit(model, data, resume=other, **job.OPTIONS)


def test_checkpoint_from_another_model_or_other_data_is_refused(job, reference, tmp_path):
    """A checkpoint is only resumed by the model, data and stages that wrote it; a checkpoint path in a missing
    folder is refused before training starts."""
    _, path = reference
    model, data = job.build()
    wider = ud.HybridModel(
        {job.x: -job.k * job.x + job.U(job.x, job.y), job.y: job.x - job.y}, {job.k: ud.Learnable(0.5)}, width=16
    )
    with pytest.raises(ConfigError, match=r"written for another model: .* has shape"):
        ud.fit(wider, data, resume=path, **job.OPTIONS)
    t = np.linspace(0.0, 3.0, 41)  # more points: more shooting segments
    longer = ud.Dataset(t, np.vstack([np.exp(-t), np.exp(-t)]).T, states=["x", "y"])
    with pytest.raises(ConfigError, match="written for other data: starts has shape"):
        ud.fit(model, longer, resume=path, **job.OPTIONS)
    options = {**job.OPTIONS, "shooting": None}
    with pytest.raises(ConfigError, match="written with other training stages"):
        ud.fit(model, data, resume=path, **options)
    with pytest.raises(ConfigError, match=r"checkpoint: folder '.*nowhere' does not exist"):
        ud.fit(model, data, checkpoint=tmp_path / "nowhere" / "run.ckpt", **job.OPTIONS)
