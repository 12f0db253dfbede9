"""Plots written by pipelines and reports (matplotlib, headless)."""

from __future__ import annotations

import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> str:
    """Lay out, write ``fig`` as a PNG at 110 dpi, close it; the path written."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)


def plot_fit(path, t_data, y_data, t_model, curves: dict, names, t_train_end=None, title="") -> str:
    """Data (markers) against model curves, one panel per state.

    Parameters
    ----------
    path : str or PathLike
        PNG file to write.
    t_data : ndarray (T,), y_data : ndarray (T, n)
    t_model : ndarray (M,)
    curves : dict label -> ndarray (M, n)
    names : list of str, length n
    t_train_end : float, optional
        Draws a line where the training window ends.
    """
    plt = _plt()
    n = len(names)
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.4 * n), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(t_data, y_data[:, i], "o", ms=3, color="k", label="data")
        for label, c in curves.items():
            ax.plot(t_model, c[:, i], label=label)
        # an exploding extrapolation must not flatten everything else: clip to data (and truth) range
        ref = [y_data[:, i][np.isfinite(y_data[:, i])]]
        if "truth" in curves:
            ref.append(curves["truth"][:, i])
        ref = np.concatenate(ref)
        if ref.size:
            lo, hi = float(ref.min()), float(ref.max())
            pad = 0.25 * (hi - lo or 1.0)
            ax.set_ylim(lo - pad, hi + pad)
        if t_train_end is not None:
            ax.axvline(t_train_end, color="grey", ls=":", lw=1)
        ax.set_ylabel(names[i])
    axes[0, 0].legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("t")
    if title:
        axes[0, 0].set_title(title)
    return _save(plt, fig, path)


def plot_loss(path, history: list) -> str:
    """Loss history per training stage (log scale)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    stages: dict = {}
    for h in history:
        stages.setdefault(h["stage"], []).append(h["loss"])
    offset = 0
    for stage, losses in stages.items():
        ax.semilogy(np.arange(offset, offset + len(losses)), losses, label=stage)
        offset += len(losses)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_unknown(path, name, x, network, expression, xlabel="sample") -> str:
    """A network's output against its discovered expression along the samples."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(x, network, ".", ms=3, label=f"network {name}")
    ax.plot(x, expression, "-", lw=1.2, label="discovered")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(name)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_phase(path, y_data, curves: dict, names, margin: float | None = None) -> str:
    """Phase portrait of a 2-state system: data points and model curves.

    With ``margin``, the axes are limited to the data's neighbourhood (see
    :func:`plot_phase_limited`); without it they fit everything drawn.
    """
    plt = _plt()
    y_data = np.asarray(y_data, dtype=float)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(y_data[:, 0], y_data[:, 1], "o", ms=3, color="k", label="data")
    for label, c in curves.items():
        c = np.asarray(c, dtype=float)
        ax.plot(c[:, 0], c[:, 1], label=label, lw=1.2)
    if margin is not None:
        ax.set_xlim(*_data_limits(y_data[:, 0], margin))
        ax.set_ylim(*_data_limits(y_data[:, 1], margin))
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_forecast(
    path,
    t_train,
    y_train,
    t_test,
    y_test,
    curves: dict,
    names,
    *,
    t_split=None,
    title: str = "",
    xlabel: str = "t",
) -> str:
    """Training data, held-out data and model curves, one panel per state.

    Parameters
    ----------
    path : str or PathLike
        PNG file to write.
    t_train : ndarray of shape (T1,)
    y_train : ndarray of shape (T1, n)
        Data the model was trained on (filled black markers).
    t_test : ndarray of shape (T2,)
    y_test : ndarray of shape (T2, n)
        Held-out data (open red markers); ``T2`` may be 0.
    curves : dict label -> (t, y)
        Model curves; ``t`` of shape (M,) and ``y`` of shape (M, n).  A list of
        such pairs draws several pieces with one legend entry.
    names : list of str, length n
        State labels.
    t_split : float, optional
        Draws a vertical line where training ends.
    title, xlabel : str

    Returns
    -------
    str
        The path written.
    """
    plt = _plt()
    n = len(names)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.6 * n), sharex=True, squeeze=False)
    y_train = np.asarray(y_train, dtype=float).reshape(len(t_train), n)
    y_test = np.asarray(y_test, dtype=float).reshape(len(t_test), n)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(t_train, y_train[:, i], "o", ms=3, color="k", label="training data")
        if len(t_test):
            ax.plot(t_test, y_test[:, i], "o", ms=3.5, mfc="none", color="tab:red", label="held-out data")
        for j, (label, piece) in enumerate(curves.items()):
            pieces = piece if isinstance(piece, list) else [piece]
            color = f"C{j}"
            for m, (tc, yc) in enumerate(pieces):
                yc = np.asarray(yc, dtype=float).reshape(len(tc), -1)
                ax.plot(tc, yc[:, i], color=color, lw=1.3, label=label if m == 0 else None)
        if t_split is not None:
            ax.axvline(t_split, color="grey", ls=":", lw=1)
        ax.set_ylabel(names[i])
        ax.set_ylim(*_data_limits(np.concatenate([y_train[:, i], y_test[:, i]])))
    axes[0, 0].legend(fontsize=7, loc="best", ncol=2)
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        axes[0, 0].set_title(title, fontsize=10)
    return _save(plt, fig, path)


def plot_metric_lines(path, x, series: dict, *, xlabel: str, ylabel: str, title: str = "", logy: bool = False) -> str:
    """One line per method of a metric against a setting (e.g. RMSE against training days).

    Parameters
    ----------
    path : str or PathLike
    x : sequence of float, length k
    series : dict label -> sequence of float, length k (non-finite values are skipped)
    xlabel, ylabel, title : str
    logy : bool
        Logarithmic y axis.

    Returns
    -------
    str
        The path written.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = np.asarray(x, dtype=float)
    for label, values in series.items():
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v)
        ax.plot(x[ok], v[ok], "o-", label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_recovery(path, rows: list) -> str:
    """Recovery study: structure rate and coefficient error against noise, udesci against SINDy alone.

    Parameters
    ----------
    path : str or PathLike
        PNG file to write.
    rows : list of dict
        One per noise level, as returned by :func:`udesci.study.summarize`
        (``noise``, ``structure_rate``, ``beta_error``, ``gamma_error`` and the
        ``sindy_`` / ``sindy_bic_`` counterparts).

    Returns
    -------
    str
        The path written.
    """
    plt = _plt()
    noise = np.array([r["noise"] for r in rows], dtype=float)

    def col(key):
        return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    methods = (
        ("", "udesci", "C0"),
        ("sindy_", "SINDy alone (threshold 0.1)", "C3"),
        ("sindy_bic_", "SINDy alone (threshold by BIC)", "C1"),
    )
    for prefix, label, color in methods:
        v = col(f"{prefix}structure_rate")
        ok = np.isfinite(v)
        a1.plot(noise[ok], 100 * v[ok], "o-", color=color, label=label)
    a1.set_ylim(-5, 105)
    a1.set_ylabel("correct structure (% of runs)")
    a1.set_title("structure recovered", fontsize=10)
    for prefix, label, color in methods[:2]:
        for key, style in (("beta_error", "o-"), ("gamma_error", "s--")):
            v = col(f"{prefix}{key}")
            ok = np.isfinite(v) & (v > 0)
            name = "β" if key.startswith("beta") else "γ"
            a2.plot(noise[ok], 100 * v[ok], style, color=color, label=f"{label}: {name}")
    a2.set_yscale("log")
    a2.set_ylabel("median relative error (%)")
    a2.set_title("interaction coefficients β, γ", fontsize=10)
    for ax in (a1, a2):
        ax.set_xscale("log" if np.all(noise > 0) and noise.size > 1 else "linear")
        ax.set_xlabel("noise (fraction of each state's mean)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return _save(plt, fig, path)


def _data_limits(values, margin: float = 0.5) -> tuple[float, float]:
    """Axis limits around the finite data, widened by ``margin`` × their span on each side
    (so a diverging model curve does not squash the data)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (-1.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return lo - margin * span, hi + margin * span


def plot_phase_limited(path, y_data, curves: dict, names, margin: float = 0.5) -> str:
    """Phase portrait of a 2-state system with axes limited to the data's neighbourhood.

    Parameters
    ----------
    path : str or PathLike
    y_data : ndarray of shape (T, 2)
    curves : dict label -> ndarray of shape (M, 2)
    names : list of 2 str
    margin : float
        Axes extend ``margin`` × the data's span beyond it (diverging curves are cut).

    Returns
    -------
    str
        The path written.
    """
    return plot_phase(path, y_data, curves, names, margin=margin)


def plot_unknown_adjusted(path, name, x, network, expression, adjusted, xlabel="sample") -> str:
    """A network's output against its discovered expression, with the expression also shown plus the
    change in the known part of its equation (when a refit moved the known parameters).

    Parameters
    ----------
    path : str or PathLike
    name : str
        Label of the unknown, e.g. ``"U(x, y)"``.
    x : ndarray of shape (N,)
    network, expression, adjusted : ndarray of shape (N,)
    xlabel : str

    Returns
    -------
    str
        The path written.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(x, network, ".", ms=3, label=f"network {name}")
    ax.plot(x, expression, "-", lw=1.0, color="C1", alpha=0.6, label="discovered term")
    ax.plot(x, adjusted, "-", lw=1.4, color="C2", label="discovered term + change in known part")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(name)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)
