"""Joint choice: every combination of each unknown's best candidates refit together."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import sympy as sp
import torch

from .batch_lm import Layout, refit_candidates
from .criteria import information_criterion, parsimonious
from .results import Candidate
from .uncertainty import block_counts, bootstrap_inclusion, per_block


def joint_choice(field_, prep, whole, solver, y0, details, work, selection, n_per_state, blocks, n_blocks, counts):
    """Re-decide all unknowns together: every combination of each unknown's best ``selection.joint``
    candidates, refit on whole trajectories in one batched solve, scored by the criterion.

    Coordinate-wise sweeps decide one unknown with the others fixed; two wrong forms can
    compensate each other there.  The chosen combination is written into the field's
    TermSums and each unknown's candidate list (chosen first); the inclusion probabilities
    become those of the joint bootstrap selection.
    """
    names = list(details)
    tops = []
    for name in names:
        ranked = [c for c in details[name].candidates if math.isfinite(c.score) and c.values]
        tops.append(ranked[: selection.joint])
    if any(not t for t in tops):
        return
    combos = list(product(*tops))[:64]
    layout = Layout.of(field_)
    slices = dict(layout.nets)
    if any(name not in slices for name in names):
        return
    current = layout.vector(field_)
    thetas, actives, joint_cands = [], [], []
    offsets = np.cumsum([0] + [len(details[n].terms) for n in names])
    for combo in combos:
        v = current.clone()
        act = [at for _, at in layout.params]
        for name, cand in zip(names, combo, strict=True):
            sl = slices[name]
            v[sl] = torch.as_tensor(cand.coefficients, dtype=v.dtype)
            act += [sl.start + i for i in cand.support]
        thetas.append(torch.cat([v, y0.reshape(-1)]))
        actives.append(act)
        flat = tuple(int(offsets[u] + i) for u, cand in enumerate(combo) for i in cand.support)
        joint_cands.append(Candidate(flat, np.zeros(int(offsets[-1])), sp.Integer(0), math.nan, math.nan))
    theta, _, sse = refit_candidates(
        field_,
        prep,
        whole,
        y0,
        0.0,
        solver,
        layout,
        torch.stack(thetas),
        actives,
        selection.refine_iterations,
        free_starts=True,
    )
    block_sse = per_block(sse, blocks, n_blocks)
    for jc, s_, pb in zip(joint_cands, sse, block_sse, strict=True):
        jc.data_sse = float(s_.sum())
        jc.score = float(information_criterion(pb.sum(0), n_per_state, len(jc.support), selection.criterion))
        jc.segment_sse = pb
    order = sorted(range(len(combos)), key=lambda i: (joint_cands[i].score, len(joint_cands[i].support)))
    if not math.isfinite(joint_cands[order[0]].score):
        return
    best = parsimonious([joint_cands[i] for i in order], selection.parsimony)
    k = joint_cands.index(best)
    th = theta[k]
    with torch.no_grad():
        for name, cand in zip(names, combos[k], strict=True):
            module = work[name].module
            sl = slices[name]
            module.coef.copy_(th[sl])
            module.mask.zero_()
            module.mask[list(cand.support)] = 1.0
            det = details[name]
            cand.coefficients = th[sl].numpy().copy()
            cand.expression = work[name].expression(cand.coefficients)
            det.candidates = [cand] + [c for c in det.candidates if c is not cand]
            det.expression = cand.expression
        for name, at in layout.params:
            field_.learnable[name].copy_(th[at].reshape(field_.learnable[name].shape))
    if selection.bootstrap:
        ok = [jc for jc in joint_cands if math.isfinite(jc.score)]
        inc, _ = bootstrap_inclusion(
            ok,
            np.stack([jc.segment_sse for jc in ok]),
            block_counts(prep, blocks, n_blocks),
            counts,
            int(offsets[-1]),
            selection.criterion,
            selection.parsimony,
        )
        for u, name in enumerate(names):
            det = details[name]
            det.inclusion = {str(term): float(inc[offsets[u] + i]) for i, term in enumerate(det.terms)}
