"""Exporting hybrid models: JSON files, LaTeX and standalone NumPy/SciPy modules.

A model is written as SymPy-printed expression strings.  Reading a file never
evaluates its text: :func:`parse_expression` walks the Python syntax tree of
each string and admits only arithmetic, numbers, the model's symbols and a
fixed table of functions, building the SymPy objects itself.  Writing checks
every name first: only plain identifiers reach a file.

Modules
-------
common
    The model's names, the check that they can be written, closed forms of unknowns.
json_io
    :func:`model_to_dict`, :func:`save_json`, :func:`model_from_dict`,
    :func:`load_json`: JSON round trip (``"format": "udesci-model-1"``), including
    the weights of :class:`~udesci.networks.MLP` networks behind unknowns.
latex
    :func:`to_latex`: ``align*`` block of the equations (and discovered unknowns).
python_module
    :func:`to_python`: standalone module (numpy + scipy only) with ``rhs`` and
    ``simulate``, filled into the template ``standalone_template.py``.

The parser (:func:`parse_expression`, :data:`FUNCTIONS`, :data:`CONSTANTS`,
:data:`MAX_EXPRESSION_LENGTH`) lives in :mod:`udesci.expr` and is re-exported here.
"""

from __future__ import annotations

from ..expr import CONSTANTS, FUNCTIONS, MAX_EXPRESSION_LENGTH, parse_expression
from .json_io import FORMAT, load_json, model_from_dict, model_to_dict, save_json
from .latex import to_latex
from .python_module import to_python

__all__ = [
    "CONSTANTS", "FORMAT", "FUNCTIONS", "MAX_EXPRESSION_LENGTH", "load_json", "model_from_dict", "model_to_dict",
    "parse_expression", "save_json", "to_latex", "to_python",
]  # fmt: skip
