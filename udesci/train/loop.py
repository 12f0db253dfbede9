"""The training loop: optimisers, history, best weights, progress, checkpoints and resume."""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable

import torch

from ..budget import advice, explained, gave_up
from .adam import Adam


class TrainingWarning(UserWarning):
    """Training stopped early (non-finite loss, the solver giving up, or interrupt); best weights were kept."""


def solver_gave_up(exc: BaseException) -> bool:
    """True if ``exc`` is a solve giving up: :class:`~udesci.budget.SolverGaveUp` (step or wall-clock
    budget, step-size underflow) or torchdiffeq's own step-size underflow / step budget ``AssertionError``."""
    return gave_up(exc)


class Progress:
    """A labelled tqdm bar per training stage on stderr (``stage [####----] it/total, loss``).

    In a terminal or a notebook the bar redraws in place; in a log (no terminal) tqdm writes a line
    at most every few seconds.  ``enabled=False`` shows nothing.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.stage = None

    def update(self, stage: str, it: int, total: int, loss: float, start: float, force: bool = False):
        """Show iteration ``it`` of ``total`` of ``stage``; ``force`` marks the stage finished.

        ``start`` (the stage's start time) is kept for callers; tqdm measures the elapsed time itself.
        """
        if not self.enabled:
            return
        if self.bar is None or self.stage != stage:
            self.close()
            from tqdm.auto import tqdm

            tty = sys.stderr.isatty() or "ipykernel" in sys.modules
            self.bar = tqdm(
                total=total, desc=f"fit: {stage}", unit="it", file=sys.stderr, leave=True,
                mininterval=0.2 if tty else 5.0, dynamic_ncols=True,
            )  # fmt: skip
            self.stage = stage
        self.bar.total = total
        self.bar.n = min(it, total)
        self.bar.set_postfix_str(f"loss={loss:.4g}", refresh=False)
        if force:
            self.bar.refresh()
            self.close()
        else:
            self.bar.update(0)  # redraws when mininterval has passed

    def close(self) -> None:
        """Finish the current bar (if any)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None


class TrainingLoop:
    """Runs stages (Adam then L-BFGS), keeps history and best weights, checkpoints and resumes."""

    def __init__(self, model, extras: dict, progress: bool, checkpoint, every: int, resume_state):
        self.model = model
        self.extras = extras  # name -> tensor (trainable non-module tensors, e.g. segment starts)
        self.history: list = []
        self.progress = Progress(progress)
        self.checkpoint = os.fspath(checkpoint) if checkpoint else None
        self.every = every
        self.resume = resume_state
        self.done: list[str] = []
        self.status, self.message = "ok", ""
        self.seconds: dict = {}
        if resume_state is not None:
            self.history = [dict(h) for h in resume_state["history"]]
            self.done = list(resume_state["done"])
            self.restore({"module": resume_state["module"], "extras": resume_state["extras"]})
            torch.set_rng_state(resume_state["rng"])

    def resuming(self, stage: str) -> bool:
        """True if the checkpoint being resumed stopped inside ``stage``."""
        return self.resume is not None and self.resume["stage"].split(":")[0] == stage

    def state(self, stage, it, opt, best):
        return {
            "format": "udesci-checkpoint-1",
            "stage": stage,
            "iteration": it,
            "module": self.model.module.state_dict(),
            "extras": {k: v.detach().clone() for k, v in self.extras.items()},
            "optimizer": opt.state_dict() if opt is not None else {},
            "rng": torch.get_rng_state(),
            "history": [dict(h) for h in self.history],
            "done": list(self.done),
            "best_loss": best[0],
            "best": best[1],
        }

    def save(self, stage, it, opt, best):
        if not self.checkpoint:
            return
        tmp = self.checkpoint + ".tmp"
        torch.save(self.state(stage, it, opt, best), tmp)
        os.replace(tmp, self.checkpoint)

    def snapshot(self):
        return {
            "module": {k: v.detach().clone() for k, v in self.model.module.state_dict().items()},
            "extras": {k: v.detach().clone() for k, v in self.extras.items()},
        }

    def restore(self, snap):
        self.model.module.load_state_dict(snap["module"])
        with torch.no_grad():
            for k, v in snap["extras"].items():
                self.extras[k].copy_(v)

    @staticmethod
    def stop_message(stage: str, value: float, iteration: int, best: float, failure: BaseException | None) -> str:
        """Why a stage stopped at a non-finite loss, and what to try (the solver's give-up, if it was one)."""
        head = f"stage {stage!r}: the loss became {value} at iteration {iteration}"
        if math.isfinite(best):
            tail = f"training stopped and the best weights (loss {best:.4g}) were kept."
        else:
            tail = "training stopped and the starting weights were kept."
        if failure is None:
            return f"{head}; {tail} {advice()}"
        why = explained(failure)
        return f"{head} because the solver gave up ({why.reason}); {tail} {advice(why.method)}"

    def run(
        self, stage: str, params: list, loss_fn: Callable[[], torch.Tensor], iterations: int, lr: float, lbfgs: int = 0
    ) -> bool:
        """Adam for ``iterations`` then L-BFGS for ``lbfgs`` steps on ``loss_fn``; False if skipped."""
        try:
            return self._run_stage(stage, params, loss_fn, iterations, lr, lbfgs)
        finally:
            self.progress.close()  # however the stage ended (done, non-finite, interrupted)

    def _run_stage(self, stage, params, loss_fn, iterations, lr, lbfgs) -> bool:
        if self.status != "ok" or stage in self.done:
            return False
        params = [p for p in params if p.requires_grad]
        start = time.perf_counter()
        best = (math.inf, self.snapshot())
        phases = [("adam", iterations), ("lbfgs", lbfgs)]
        first_it = 0
        resume_phase = None
        if self.resuming(stage):
            resume_phase = self.resume["stage"].split(":")[1]
            first_it = self.resume["iteration"]
            best = (self.resume["best_loss"], self.resume["best"])
        total = iterations + lbfgs
        it_global = 0
        phase, opt, next_it = None, None, 0
        try:
            for phase, count in phases:
                opt, next_it = None, 0
                if count == 0:
                    continue
                if phase == "adam":
                    opt = Adam(params, lr=lr)
                else:
                    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
                it0 = 0
                if resume_phase is not None:
                    if resume_phase != phase:
                        it_global += count
                        continue
                    opt.load_state_dict(self.resume["optimizer"])
                    it0 = first_it
                    resume_phase = None
                    self.resume = None
                next_it = it0  # first iteration of this phase not completed yet
                last_loss = [math.nan]
                failure: list = [None]  # the solver's give-up in this iteration, if any

                def closure(opt=opt, last_loss=last_loss, failure=failure):
                    opt.zero_grad(set_to_none=True)
                    try:
                        loss = loss_fn()
                        if torch.isfinite(loss):
                            loss.backward()  # an adjoint's backward solve can give up too
                    except AssertionError as exc:
                        if not solver_gave_up(exc):
                            raise
                        # the solver gave up at these weights: an infinite loss makes L-BFGS's line
                        # search step back, and stops Adam with the best weights kept
                        opt.zero_grad(set_to_none=True)
                        failure[0] = exc
                        loss = torch.tensor(math.inf)
                    last_loss[0] = float(loss.detach())
                    return loss

                for it in range(it0, count):
                    # `value` is the loss of the weights *before* this iteration's update: snapshot those
                    # weights, so the best weights kept are the ones that produced the best loss (not the
                    # ones one update later, which may be the very update that made the loss non-finite)
                    last_loss[0] = math.nan
                    failure[0] = None
                    before = None
                    if phase == "adam":
                        closure()
                        value = last_loss[0]
                        if math.isfinite(value):
                            if value < best[0]:
                                before = self.snapshot()
                            opt.step()
                    else:
                        before = self.snapshot()
                        value = float(opt.step(closure).detach())  # L-BFGS returns the loss at its start point
                    self.history.append({"stage": stage, "iteration": it_global + it, "loss": value})
                    next_it = it + 1
                    if not math.isfinite(value):
                        self.restore(best[1])
                        self.status = "nonfinite"
                        self.message = self.stop_message(stage, value, it_global + it, best[0], failure[0])
                        warnings.warn(self.message, TrainingWarning, stacklevel=3)
                        return True
                    converged = phase == "lbfgs" and abs(best[0] - value) <= 1e-10 * abs(value) + 1e-300
                    if value < best[0]:
                        best = (value, before)
                    self.progress.update(stage, it_global + it + 1, total, value, start)
                    if self.checkpoint and (it + 1) % self.every == 0:
                        self.save(f"{stage}:{phase}", it + 1, opt, best)
                    if converged:  # L-BFGS made no progress: further steps would repeat the same point
                        break
                it_global += count
        except KeyboardInterrupt:
            # checkpoint the *current* weights and optimiser state (not the best weights restored below) at
            # the first iteration not completed, so that resuming continues exactly where training stopped
            saved = bool(self.checkpoint) and opt is not None
            if saved:
                self.save(f"{stage}:{phase}", next_it, opt, best)
            self.restore(best[1])
            self.status = "interrupted"
            self.message = f"stage {stage!r} interrupted; the best weights (loss {best[0]:.4g}) were kept."
            if saved:
                self.message += f" Resume with fit(..., resume={self.checkpoint!r})."
            warnings.warn(self.message, TrainingWarning, stacklevel=3)
            return True
        self.restore(best[1])
        self.done.append(stage)
        self.seconds[stage] = time.perf_counter() - start
        self.progress.update(stage, total, total, best[0], start, force=True)
        if self.checkpoint:
            self.save(f"{stage}:done", 0, None, best)
        return True
