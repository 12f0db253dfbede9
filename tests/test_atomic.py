"""Crash-safe writes: exports and reports replace a file atomically, so an interrupted write leaves the old
file whole and no temporary file behind (the write is simulated to die between writing and renaming)."""

from __future__ import annotations

import os

import pytest
import sympy as sp

import udesci as ud
from udesci.evaluate import write_text_atomic

x = sp.Symbol("x")


def _dying_replace(*_args, **_kwargs):
    raise OSError("simulated crash before the rename")


def test_write_text_atomic_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_text_atomic(path, "old\n")
    monkeypatch.setattr(os, "replace", _dying_replace)
    with pytest.raises(OSError, match="simulated crash"):
        write_text_atomic(path, "new\n" * 1000)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temporary file left


@pytest.mark.parametrize("writer", ["json", "python"])
def test_exports_are_atomic(tmp_path, monkeypatch, writer):
    model = ud.HybridModel({x: -0.5 * x})
    path = tmp_path / ("m.json" if writer == "json" else "m.py")
    (ud.save_json if writer == "json" else ud.to_python)(model, path)
    before = path.read_text()
    monkeypatch.setattr(os, "replace", _dying_replace)
    bigger = ud.HybridModel({x: -0.25 * x + 0.125 * x**2})
    with pytest.raises(OSError, match="simulated crash"):
        (ud.save_json if writer == "json" else ud.to_python)(bigger, path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
