"""Plots written by pipelines and reports (matplotlib, headless)."""

from __future__ import annotations

import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)


def plot_unknown(path, name, x, network, expression, xlabel="sample") -> str:
    """A network's output against its discovered expression along the samples."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(x, network, ".", ms=3, label=f"network {name}")
    ax.plot(x, expression, "-", lw=1.2, label="discovered")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(name)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)


def plot_phase(path, y_data, curves: dict, names) -> str:
    """Phase portrait of a 2-state system."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(y_data[:, 0], y_data[:, 1], "o", ms=3, color="k", label="data")
    for label, c in curves.items():
        ax.plot(c[:, 0], c[:, 1], label=label)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)
