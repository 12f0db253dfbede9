"""Runnable end-to-end pipelines (also behind ``udesci example ...``)."""

from __future__ import annotations

import os
from pathlib import Path

from ..evaluate import write_text_atomic


def write_discovery(found, folder: str | os.PathLike, *, prefix: str = "", python: bool = True) -> dict:
    """Write a pipeline's discovered model: ``equations.json``, ``equations.tex`` and ``model.py``.

    Parameters
    ----------
    found : Discovery
    folder : str or PathLike
        Output folder (created if missing).
    prefix : str, default ""
        Put before each file name (e.g. ``"dwd_"`` for one case of several).
    python : bool, default True
        Write the standalone simulation module ``model.py`` too.

    Returns
    -------
    dict
        The paths written, by kind: ``json``, ``latex`` and (with ``python``) ``python``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / f"{prefix}equations.json", "latex": folder / f"{prefix}equations.tex"}
    found.to_json(paths["json"])
    write_text_atomic(paths["latex"], found.to_latex() + "\n")
    if python:
        paths["python"] = folder / f"{prefix}model.py"
        found.to_python(paths["python"])
    return paths
