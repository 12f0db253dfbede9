"""Self-contained reports of a fitted (and discovered) hybrid model: Markdown and HTML.

:func:`write_report` writes ``report.md`` into an output folder together with the PNG plots it
references by relative path (so the folder can be moved or zipped as a whole), and
``report.html`` next to it: one file, the same content, every image embedded as a
``data:image/png;base64`` URI, no script and no external resource.  Both hold:

* a data summary (trajectories, points, missing values, time span, train/test split),
* the metrics with their definitions and units,
* the equations with the fitted values substituted (4 significant digits) and a parameter table,
* for a discovery: each unknown's chosen terms with intervals and inclusion, its candidates
  sorted by score with the chosen one marked, and how well the closed form reproduces the data,
* the plots of :mod:`udesci.plots`: every trajectory's fit (or a stated selection), each
  unknown's network against its closed form, a phase portrait for two-state systems, the loss,
* what is needed to reproduce the run (command, seed, package versions, configuration).

A report is a list of blocks (:class:`Heading`, :class:`Text`, :class:`Table`, :class:`Image`,
:class:`Code`, :class:`Math`, :class:`Definitions`) rendered by :func:`markdown` and
:func:`html_document`; :func:`model_section` returns a :class:`Section`, a Markdown string that
carries its blocks for the HTML report.

Text taken from input (titles, names, expressions, notes, the config) cannot inject HTML or
Markdown structure.  In Markdown, :func:`escape_text` escapes ``&``, ``<``, ``>`` (and keeps text
on one line) in headings, captions and table cells, :func:`code_span` and :func:`fenced_block`
choose backtick fences longer than any backtick run in their text, and :func:`math_block`
writes ``<``/``>`` as ``\\lt``/``\\gt``.  In HTML every text is escaped, and a content security
policy forbids scripts and every non-embedded resource.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from . import plots as plotting  # not `plots`: write_report has an argument of that name
from .data import Dataset
from .display import (
    candidate_rows,
    data_rows,
    equations_latex,
    equations_text,
    format_number,
    parameter_rows,
    term_rows,
    unknown_forms,
)
from .errors import ConfigError, describe
from .evaluate import jsonable

METRIC_DEFINITIONS = {
    "train rmse": (
        "root-mean-square difference between the final model (the discovered closed-form model when "
        "discovery ran, else the fitted model), simulated from its initial state of each trajectory, and "
        "every observed training value of the state (all trajectories pooled); in the state's data units"
    ),
    "test rmse": (
        "the same on the held-out window (the prediction continues the fitted trajectory or restarts from "
        "the observed state, as the run's [evaluation] start says); in the state's data units"
    ),
    "fitted train rmse": (
        "train rmse of the fitted model (with its networks), before discovery; in the state's data units"
    ),
    "fitted test rmse": "test rmse of the fitted model (with its networks); in the state's data units",
    "rmse": "root-mean-square difference between model and observations, in the data's units",
}
"""What the metric names the runner and the pipelines use mean (matched case-insensitively, ``_`` as space)."""

DISCOVERY_METRIC_DEFINITIONS = {
    "data_rmse_scaled": (
        "root-mean-square misfit of the closed-form model, simulated from its initial states, to every observed "
        "training value, each state divided by its standard deviation in the data (unitless: 0.1 is a tenth of "
        "a state's spread)"
    ),
    "samples": "network samples the closed forms were fitted to",
    "adequacy": "how well the closed form reproduces the data, as assessed by discovery",
}
"""What the entries of ``Discovery.metrics`` mean."""


def versions() -> dict:
    """Versions of Python and the packages a run depends on.

    Returns
    -------
    dict
        ``python``, ``platform``, ``udesci``, ``torch``, ``sympy``, ``numpy``,
        ``scipy``, ``pysindy``, ``torchdiffeq`` (``"not installed"`` when absent).
    """
    from . import __version__

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "udesci": __version__}
    for name in ("torch", "sympy", "numpy", "scipy", "pysindy", "torchdiffeq", "pandas", "matplotlib"):
        try:
            module = __import__(name)
            out[name] = str(getattr(module, "__version__", "unknown"))
        except ImportError:
            out[name] = "not installed"
    return out


# ----------------------------------------------------------------------------------------------
# escaping: nothing taken from input may inject HTML or Markdown structure
# ----------------------------------------------------------------------------------------------
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_LINE_BREAKS = re.compile(r"[\r\n]+")


def escape_text(value) -> str:
    """``str(value)`` made safe for Markdown text: headings, captions, table cells, paragraphs.

    ``&``, ``<`` and ``>`` become HTML entities (no raw HTML, no autolinks), line breaks
    become spaces (no new block), and ``](`` becomes ``]\\(`` (no inline link or image).

    Returns
    -------
    str
    """
    return _LINE_BREAKS.sub(" ", str(value).translate(_HTML)).replace("](", "]\\(")


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall("`+", text)), default=0)


def code_span(text) -> str:
    """``str(text)`` as a Markdown inline code span that no backtick in it can close.

    Returns
    -------
    str
        E.g. ``"`x`"``; text with backticks gets a longer fence (and spaces inside).
    """
    text = _LINE_BREAKS.sub(" ", str(text))
    fence = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fenced_block(text: str, info: str = "") -> str:
    """``text`` in a fenced code block whose fence is longer than any backtick run in it.

    Parameters
    ----------
    text : str
    info : str
        Info string (language), e.g. ``"toml"``.

    Returns
    -------
    str
        Ends with a newline.
    """
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{fence}{info}\n{text}\n{fence}\n"


def math_block(latex: str) -> str:
    """A ``$$`` display-math block; ``<`` and ``>`` are written as ``\\lt`` and ``\\gt`` (no HTML).

    Returns
    -------
    str
        Ends with a newline.
    """
    return "$$\n" + latex.replace("<", "\\lt ").replace(">", "\\gt ") + "\n$$\n"


def cell_text(value) -> str:
    """A table cell's plain text: numbers with 4 significant digits, yes/no, "—" for None.

    Returns
    -------
    str
        Not escaped (each renderer escapes it).
    """
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_number(value)
    if value is None:
        return "—"
    return str(value)


def _md_cell(value) -> str:
    return escape_text(cell_text(value)).replace("|", "\\|")


def table_cells(rows: Mapping | Sequence, columns: Sequence[str] | None = None, *, index: str = "") -> tuple:
    """The header and body of a table, as plain text (see :func:`markdown_table` for ``rows``).

    Returns
    -------
    (list of str, list of list of str)
    """
    if isinstance(rows, Mapping) and rows and not any(isinstance(v, Mapping) for v in rows.values()):
        return [cell_text(index or "metric"), "value"], [[cell_text(k), cell_text(v)] for k, v in rows.items()]
    items = list(rows.items()) if isinstance(rows, Mapping) else [(None, r) for r in rows]
    if columns is None:
        columns = []
        for _, r in items:
            for c in r:
                if c not in columns:
                    columns.append(c)
    labelled = isinstance(rows, Mapping)
    head = [cell_text(c) for c in ([index] if labelled else []) + [str(c) for c in columns]]
    body = [([cell_text(label)] if labelled else []) + [cell_text(r.get(c)) for c in columns] for label, r in items]
    return head, body


def markdown_table(rows: Mapping | Sequence, columns: Sequence[str] | None = None, *, index: str = "") -> str:
    """A Markdown table.

    Parameters
    ----------
    rows : mapping row label -> (mapping column -> value | value), or sequence of mappings
        A flat mapping gives a two-column ``name | value`` table.
    columns : sequence of str, optional
        Column order (default: first-seen order).
    index : str
        Header of the row-label column.

    Returns
    -------
    str
    """
    head, body = table_cells(rows, columns, index=index)
    return _markdown_grid(head, body)


def _markdown_grid(head: list, body: list) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# blocks, and their Markdown and HTML renderings
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Heading:
    """A heading of ``level`` 1–4 (plain text)."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    """A paragraph (or several, separated by blank lines) of Markdown written by udesci or a pipeline.

    Text from input in it must already be escaped (:func:`escape_text`, :func:`code_span`); the HTML
    rendering understands inline code spans and ``**bold**``, and escapes everything else.
    """

    markdown: str


@dataclass(frozen=True)
class Table:
    """A table (``rows``, ``columns``, ``index`` as in :func:`markdown_table`) or a ready ``header``/``body``."""

    rows: object = None
    columns: Sequence[str] | None = None
    index: str = ""
    header: list | None = None
    body: list | None = None

    def cells(self) -> tuple:
        """``(header, body)`` as plain text."""
        if self.header is not None:
            return [cell_text(h) for h in self.header], [[cell_text(c) for c in row] for row in self.body or []]
        return table_cells(self.rows, self.columns, index=self.index)


@dataclass(frozen=True)
class Image:
    """A PNG file on disk with its caption (plain text)."""

    caption: str
    path: Path


@dataclass(frozen=True)
class Code:
    """Verbatim text in a code block (``info``: its language)."""

    text: str
    info: str = ""


@dataclass(frozen=True)
class Math:
    """Equations: their LaTeX source (Markdown: display math) and a plain-text form (HTML)."""

    latex: str
    text: str = ""


@dataclass(frozen=True)
class Definitions:
    """Terms with their definitions (plain text)."""

    items: tuple = field(default_factory=tuple)


def _rel(path, out_dir: Path) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        return os.path.relpath(p.resolve(), out_dir.resolve()).replace(os.sep, "/")


def _image(caption: str, path, out_dir: Path) -> str:
    caption = escape_text(caption)
    return f"![{caption}]({quote(_rel(path, out_dir))})\n\n*{caption}*\n"


def markdown(blocks: Sequence, out_dir) -> str:
    """The blocks as Markdown; images are linked relative to ``out_dir``.

    Parameters
    ----------
    blocks : sequence of blocks (or Markdown strings, written as they are)
    out_dir : path
        The folder the Markdown file lives in.

    Returns
    -------
    str
    """
    out_dir = Path(out_dir)
    parts = []
    for b in blocks:
        if isinstance(b, str):
            parts.append(b)
        elif isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {escape_text(b.text)}\n")
        elif isinstance(b, Text):
            parts.append(b.markdown.strip() + "\n")
        elif isinstance(b, Table):
            parts.append(_markdown_grid(*b.cells()) + "\n")
        elif isinstance(b, Image):
            parts.append(_image(b.caption, b.path, out_dir))
        elif isinstance(b, Code):
            parts.append(fenced_block(b.text, b.info))
        elif isinstance(b, Math):
            parts.append(math_block(b.latex))
        elif isinstance(b, Definitions):
            parts.append("\n".join(f"- **{escape_text(term)}**: {escape_text(text)}" for term, text in b.items) + "\n")
        else:
            raise ConfigError(f"blocks: expected report blocks or Markdown strings, received {describe(b)}.")
    return "\n".join(parts)


class Section(str):
    """A report section: its Markdown (the string itself) and its :attr:`blocks` for the HTML report.

    Parameters
    ----------
    blocks : sequence of blocks
    out_dir : path
        The folder the report lives in (images are linked relative to it).
    """

    blocks: tuple

    def __new__(cls, blocks: Sequence, out_dir):
        obj = super().__new__(cls, markdown(blocks, out_dir))
        obj.blocks = tuple(blocks)
        return obj


_ENTITY = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _inline_html(text: str) -> str:
    """Markdown inline text (entities already escaped, code spans, ``**bold**``) as safe HTML."""
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(text):
        out.append(_prose_html(text[pos : m.start()]))
        code = m.group(2)
        if code.startswith(" ") and code.endswith(" ") and code.strip():
            code = code[1:-1]
        out.append(f"<code>{html.escape(code)}</code>")
        pos = m.end()
    out.append(_prose_html(text[pos:]))
    return "".join(out)


def _prose_html(text: str) -> str:
    # the text carries entities from escape_text: keep them, escape a bare & and every < >
    safe = _ENTITY.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;").replace("]\\(", "](")
    safe = safe.replace('"', "&quot;")
    return _BOLD.sub(r"<strong>\1</strong>", safe)


def _html_table(head: list, body: list) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{rows}</tbody></table>"


def _data_uri(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:980px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:1.7em;border-bottom:2px solid #2b6cb0;padding-bottom:6px}
h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #d5dae1;padding-bottom:4px}
h3{font-size:1.08em;margin-top:1.5em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.9em}
th,td{border:1px solid #d5dae1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7}
tbody tr:nth-child(even){background:#fafbfc}
pre{background:#f3f5f8;border:1px solid #e1e5ea;padding:8px 10px;overflow-x:auto;font-size:.85em}
code{background:#f3f5f8;padding:0 3px}
figure{margin:12px 0 20px}
figure img{max-width:100%;height:auto;border:1px solid #e1e5ea}
figcaption{font-size:.88em;color:#4a5363;margin-top:4px}
dt{font-weight:600;margin-top:6px}
dd{margin-left:18px}
nav ul{columns:2;font-size:.9em}
details summary{cursor:pointer;color:#2b6cb0;font-size:.9em}
""".strip()


def html_blocks(blocks: Sequence) -> str:
    """The blocks as an HTML fragment, images embedded as base64 PNG data URIs.

    Parameters
    ----------
    blocks : sequence of blocks (or Markdown strings, shown verbatim in a ``<pre>``)

    Returns
    -------
    str
    """
    parts = []
    n_heading = 0
    for b in blocks:
        if isinstance(b, Section):
            parts.append(html_blocks(b.blocks))
        elif isinstance(b, str):
            parts.append(f"<pre>{html.escape(b)}</pre>")
        elif isinstance(b, Heading):
            n_heading += 1
            level = min(max(b.level, 1), 4)
            parts.append(f'<h{level} id="{_anchor(b.text)}">{html.escape(b.text)}</h{level}>')
        elif isinstance(b, Text):
            parts += [f"<p>{_inline_html(p.strip())}</p>" for p in re.split(r"\n\s*\n", b.markdown.strip()) if p]
        elif isinstance(b, Table):
            parts.append(_html_table(*b.cells()))
        elif isinstance(b, Image):
            cap = html.escape(b.caption)
            parts.append(f'<figure><img src="{_data_uri(b.path)}" alt="{cap}"><figcaption>{cap}</figcaption></figure>')
        elif isinstance(b, Code):
            parts.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        elif isinstance(b, Math):
            if b.text:
                parts.append(f"<pre>{html.escape(b.text)}</pre>")
            parts.append(f"<details><summary>LaTeX source</summary><pre>{html.escape(b.latex)}</pre></details>")
        elif isinstance(b, Definitions):
            items = "".join(f"<dt>{html.escape(t)}</dt><dd>{html.escape(d)}</dd>" for t, d in b.items)
            parts.append(f"<dl>{items}</dl>")
        else:
            raise ConfigError(f"blocks: expected report blocks or Markdown strings, received {describe(b)}.")
    return "\n".join(parts)


def _anchor(text: str) -> str:
    return "s-" + (re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "section")


def _headings(blocks: Sequence, level: int = 2) -> list:
    out = []
    for b in blocks:
        if isinstance(b, Section):
            out += _headings(b.blocks, level)
        elif isinstance(b, Heading) and b.level == level:
            out.append(b.text)
    return out


def html_document(title: str, blocks: Sequence) -> str:
    """A complete, self-contained HTML page: the title, a table of contents and the blocks.

    The page loads nothing: styles are inline, images are data URIs, and its content security
    policy forbids scripts and every other resource.

    Returns
    -------
    str
    """
    toc = "".join(f'<li><a href="#{_anchor(h)}">{html.escape(h)}</a></li>' for h in _headings(blocks))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        + (f"<nav><ul>{toc}</ul></nav>\n" if toc else "")
        + html_blocks(blocks)
        + "\n</main>\n</body>\n</html>\n"
    )


# ----------------------------------------------------------------------------------------------
# content
# ----------------------------------------------------------------------------------------------
def data_summary(data: Dataset, held_out: Mapping | None = None, *, time_name: str = "t") -> list:
    """Blocks: a table of the trajectories (points, time span, missing values) and the train/test split.

    Parameters
    ----------
    data : Dataset
        The training data.
    held_out : mapping int -> (t, y), optional
        Held-out observations by trajectory (see :func:`udesci.plotting.held_out_by_trajectory`).
    time_name : str
        Name of the time axis.

    Returns
    -------
    list of blocks
    """
    rows = data_rows(data)
    if data.n_trajectories > 1:
        points = sum(tr.t.size for tr in data.trajectories)
        missing = sum(int(np.isnan(tr.y).sum()) for tr in data.trajectories)
        values = sum(tr.y.size for tr in data.trajectories)
        t0 = min(tr.t[0] for tr in data.trajectories)
        t1 = max(tr.t[-1] for tr in data.trajectories)
        rows.append(["all", str(points), f"{t0:g} – {t1:g}", f"{missing} of {values}"])
    states = data.state_names or []
    head = (f"{data.n_trajectories} trajectories" if data.n_trajectories > 1 else "1 trajectory") + (
        f" of {', '.join(states)}" if states else ""
    )
    if data.input_names:
        head += f", measured inputs {', '.join(data.input_names)}"
    if data.time_unit:
        head += f"; time in {data.time_unit} since {data.time_origin}"
    if held_out:
        pieces = [
            f"{t.size} points of trajectory {k} ({time_name} from {t[0]:g} to {t[-1]:g})"
            for k, (t, _) in sorted(held_out.items())
        ]
        split = (
            "Train/test split: every point in the table was used for training; held out (not trained on): "
            + "; ".join(pieces)
            + "."
        )
    else:
        split = "Train/test split: no held-out data; every point in the table was used for training."
    return [
        Text(escape_text(head) + "."),
        Table(header=["trajectory", "points", f"time span ({time_name})", "missing values"], body=rows),
        Text(escape_text(split)),
    ]


def _dashed(rows: list) -> list:
    """Rows with empty cells (an interval nobody estimated) shown as "—"."""
    return [[c if c != "" else "—" for c in row] for row in rows]


def adequacy_text(found) -> str:
    """The adequacy slot: ``found.metrics["adequacy"]``, or ``"Adequacy: not assessed ..."`` without one.

    Returns
    -------
    str
        Plain text.
    """
    value = found.metrics.get("adequacy")
    if value is None:
        return "Adequacy: not assessed (discovery reports no adequacy measure for this closed form)."
    shown = json.dumps(jsonable(value)) if isinstance(value, (Mapping, list, tuple)) else cell_text(value)
    return f"Adequacy: {shown}."


def discovery_blocks(found, *, candidates: int = 8) -> list:
    """Blocks: chosen terms with intervals, candidates sorted by score, and the closed form's fit to the data.

    Parameters
    ----------
    found : Discovery
    candidates : int, default 8
        Candidates listed per unknown (the chosen one is always listed).

    Returns
    -------
    list of blocks
    """
    crit = found.selection.criterion
    out = [Heading("Discovered terms", 3)]
    body = _dashed([[name, *row] for name, det in found.details.items() for row in term_rows(det)])
    out.append(Table(header=["unknown", "term", "coefficient", "95% interval", "inclusion probability"], body=body))
    out.append(
        Heading(f"Candidates, sorted by {crit.upper()} (lower is better; → marks the chosen one)", 3),
    )
    for name, det in found.details.items():
        rows = candidate_rows(det, candidates)
        label = f"{name}({', '.join(map(str, det.args))})"
        out.append(Table(header=["chosen", f"candidate for {label}", crit, "terms"], body=rows))
    out.append(Heading("How well the closed form reproduces the data", 3))
    if found.metrics:
        out.append(Table(found.metrics, index="measure"))
        defs = [(k, DISCOVERY_METRIC_DEFINITIONS[k]) for k in found.metrics if k in DISCOVERY_METRIC_DEFINITIONS]
        if defs:
            out.append(Definitions(tuple(defs)))
    out.append(Text(escape_text(adequacy_text(found))))
    for note in found.notes:
        out.append(Text("Note: " + escape_text(note)))
    return out


def model_blocks(fitted=None, found=None) -> list:
    """Blocks: the equations (symbolic, and with the fitted values substituted) and the parameter table.

    Returns
    -------
    list of blocks
    """
    out = []
    if found is not None:
        model = found.model
        out += [Heading("Discovered equations", 3), Math(found.to_latex()), Code(found.summary(), "text")]
    elif fitted is not None:
        from .export import to_latex

        model = fitted.model
        out += [Heading("Equations", 3), Math(to_latex(model))]
    else:
        return out
    forms_latex = unknown_forms(found, latex=True) if found is not None else None
    forms_text = unknown_forms(found) if found is not None else None
    out.append(Heading("Equations with the fitted values (4 significant digits)", 3))
    out.append(Math(equations_latex(model, extra=forms_latex), "\n".join(equations_text(model, extra=forms_text))))
    out.append(Heading("Parameters", 3))
    if model.params:
        out.append(
            Table(header=["parameter", "value", "learnable", "95% interval"], body=_dashed(parameter_rows(model)))
        )
    else:
        out.append(Text("The model has no parameters."))
    return out


def _bounds_caption(nonneg: Sequence[str]) -> str:
    if not nonneg:
        return ""
    return (
        f" Axes of {', '.join(nonneg)} start at 0: all their observations are ≥ 0, so they are treated as nonnegative."
    )


def model_section(
    out_dir,
    *,
    label: str = "",
    fitted=None,
    found=None,
    data: Dataset | None = None,
    held_out: tuple | None = None,
    predictions: Mapping | None = None,
    names: Sequence[str] | None = None,
    prefix: str = "",
    time_label: str | None = None,
    plot_title: str | None = None,
    figures: bool = True,
    summary: bool = True,
) -> Section:
    """Tables, equations and plots of one fitted (and possibly discovered) model.

    Parameters
    ----------
    out_dir : path
        Folder the plots are written to (and the report lives in).
    label : str
        Heading of the section (empty: no heading).
    fitted : FitResult, optional
    found : Discovery, optional
    data : Dataset, optional
        Training data (default ``fitted.data``, else ``found.data``).
    held_out : (t, y) with t of shape (T2,) and y of shape (T2, n), optional
        Held-out observations of trajectory 0.
    predictions : dict label -> (t (M,), y (M, n)) or list of such pairs, optional
        Precomputed curves of trajectory 0 for the fit plot (``fit.png``); the fit plot of every
        trajectory (``fit_trajectories.png``) is then added when there are several.  Default:
        one fit plot of every trajectory (or a stated selection) simulated by
        :func:`udesci.plotting.plot_fit`.
    names : sequence of str, optional
        Labels of the model's states for the plots (default: their names).
    prefix : str
        Prefix of the plot file names (to keep several sections apart).
    time_label : str, optional
        x-axis label (default: the model's time and the data's time unit).
    plot_title : str, optional
        Title of the fit plot.
    figures : bool, default True
        Draw the plots (else only tables and equations).
    summary : bool, default True
        Start with the data summary (:func:`data_summary`).

    Returns
    -------
    Section
        Markdown (images linked relative to ``out_dir``) that carries its blocks.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks: list = [Heading(label, 2)] if label else []
    data = data if data is not None else getattr(fitted, "data", None) or getattr(found, "data", None)
    model = fitted.model if fitted is not None else found.model if found is not None else None
    held: dict = {}
    if data is not None and model is not None:
        held = plotting.held_out_by_trajectory(held_out, len(plotting.observed_columns(model, data)))
        if summary:
            tname = time_label or plotting.time_label(model, data)
            blocks += [Heading("Data", 3), *data_summary(data, held, time_name=tname)]
    blocks += model_blocks(fitted, found)
    if found is not None:
        blocks += discovery_blocks(found)
    if fitted is not None and figures:
        if data is None:
            raise ConfigError("data: the fitted result holds no data; pass data= to plot it.")
        blocks += _figure_blocks(out_dir, fitted, found, data, held, predictions, names, prefix, time_label, plot_title)
    return Section(blocks, out_dir)


def _shown(selection) -> str:
    """``"The trajectory"``, ``"Both trajectories"``, ``"All 5 trajectories"`` or the selection's note."""
    if selection.note:
        return selection.note.rstrip(".")
    return {1: "The trajectory", 2: "Both trajectories"}.get(selection.total, f"All {selection.total} trajectories")


def _figure_blocks(out_dir, fitted, found, data, held, predictions, names, prefix, time_label, plot_title) -> list:
    model = fitted.model
    labels = list(names) if names is not None else model.state_names
    obs = plotting.observed_columns(model, data)
    tname = time_label or plotting.time_label(model, data)
    shown = _shown(plotting.select_trajectories(data.n_trajectories))
    nonneg = plotting.nonnegative_states(data, [model.state_names[i] for i in obs], held)
    nonneg_labels = [labels[model.state_names.index(s)] for s in nonneg]
    out = [Heading("Fit and held-out prediction" if held else "Fit", 3)]
    models = "fitted model (solid)" + (", discovered model (dash-dot)" if found is not None else "")
    if predictions is not None:
        t_test, y_test = held.get(0, (np.zeros(0), np.zeros((0, len(obs)))))
        curves = {}
        for key, piece in predictions.items():
            pieces = piece if isinstance(piece, list) else [piece]
            curves[key] = [(tc, np.asarray(yc).reshape(len(tc), -1)[:, obs]) for tc, yc in pieces]
        tr = data.trajectories[0]
        fig = plotting.plot_forecast(
            tr.t,
            tr.y,
            t_test,
            y_test,
            curves,
            [labels[i] for i in obs],
            t_split=tr.t[-1],
            title=plot_title or "data, fit and held-out prediction",
            xlabel=tname,
        )
        which = "Trajectory 0" + (f" of {data.n_trajectories}" if data.n_trajectories > 1 else "")
        out.append(
            Image(
                f"{which}: training data (black), held-out data (red circles) and model simulations."
                + _bounds_caption(nonneg_labels),
                plotting.save(fig, out_dir / f"{prefix}fit.png"),
            )
        )
        if data.n_trajectories > 1:
            fig = plotting.plot_fit(fitted, data, found=found, held_out=held, names=names, time_name=tname)
            out.append(
                Image(
                    f"{shown}: observations (dots) and the {models}." + _bounds_caption(nonneg_labels),
                    plotting.save(fig, out_dir / f"{prefix}fit_trajectories.png"),
                )
            )
    else:
        fig = plotting.plot_fit(
            fitted, data, found=found, held_out=held, names=names, time_name=tname, title=plot_title
        )
        out.append(
            Image(
                f"{shown}: observations (dots{'; held out: open circles' if held else ''}) and the {models}."
                + _bounds_caption(nonneg_labels),
                plotting.save(fig, out_dir / f"{prefix}fit.png"),
            )
        )
    if found is not None:
        samples = plotting.unknown_samples(found, fitted, data)
        out.append(Heading("Unknown functions: network against discovered closed form", 3))
        for name, s in samples.items():
            fig = plotting.plot_unknowns(found, fitted, data=data, unknowns=[name], samples=samples, time_name=tname)
            note = (
                "; the discovered model's known parameters differ from the network model's, so the closed form plus "
                "the change in the known part of its equation (dotted) is the like-for-like comparison"
                if s.adjusted is not None
                else ""
            )
            out.append(
                Image(
                    f"{s.label}: trained network against the discovered closed form along the trajectories (left) "
                    f"and against its arguments (right); RMS difference {s.rms_difference():.3g}{note}.",
                    plotting.save(fig, out_dir / f"{prefix}unknown_{name}.png"),
                )
            )
    if len(model.states) == 2 and len(obs) == 2:
        fig = plotting.plot_phase(fitted, data, found=found, held_out=held, names=names)
        out.append(Heading("Phase portrait", 3))
        out.append(
            Image(
                f"Phase portrait: observations (dots) and the {models} of each trajectory."
                + _bounds_caption(nonneg_labels),
                plotting.save(fig, out_dir / f"{prefix}phase.png"),
            )
        )
    if fitted.history:
        out.append(Heading("Training loss", 3))
        out.append(
            Image(
                "Loss by training stage, each stage relative to its first loss (stages minimise different "
                "objectives, so a jump at a boundary is not divergence).",
                plotting.save(plotting.plot_history(fitted), out_dir / f"{prefix}loss.png"),
            )
        )
    return out


def metric_definitions(metrics: Mapping, definitions: Mapping | None = None) -> list:
    """``(name, definition)`` of each metric name in ``metrics`` (its keys, or its columns when nested).

    Parameters
    ----------
    metrics : mapping
    definitions : mapping name -> str, optional
        Definitions that take precedence over :data:`METRIC_DEFINITIONS`.

    Returns
    -------
    list of (str, str)
    """
    known = {k.lower().replace("_", " "): v for k, v in {**METRIC_DEFINITIONS, **(definitions or {})}.items()}
    nested = any(isinstance(v, Mapping) for v in metrics.values())
    names = []
    for key, value in metrics.items():
        for name in value if nested and isinstance(value, Mapping) else [key]:
            if name not in names:
                names.append(name)
    return [
        (str(n), known[str(n).lower().replace("_", " ")]) for n in names if str(n).lower().replace("_", " ") in known
    ]


def write_report(
    out_dir,
    *,
    title: str,
    config: Mapping | str | None = None,
    fitted=None,
    found=None,
    data: Dataset | None = None,
    metrics: Mapping | None = None,
    held_out: tuple | None = None,
    predictions: Mapping | None = None,
    plots: Mapping | None = None,
    names: Sequence[str] | None = None,
    seed: int | None = None,
    command: str | None = None,
    intro: str = "",
    sections: Sequence[str] = (),
    tables: Mapping | None = None,
    time_label: str | None = None,
    metrics_index: str = "method",
    filename: str = "report.md",
    figures: bool = True,
    definitions: Mapping | None = None,
) -> Path:
    """Write a self-contained Markdown report with its plots, and the same report as one HTML file.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created); the reports and all plots go here.
    title : str
        Report title.
    config : mapping or str, optional
        The exact configuration of the run (a dict is written as JSON, a
        string, e.g. TOML text, verbatim).
    fitted : FitResult, optional
        The trained model (data summary, equations, parameters; plots: fit, loss, phase portrait).
    found : Discovery, optional
        Its discovery (equations, terms, candidates, fit to the data, unknown-vs-closed-form plots).
    data : Dataset, optional
        Training data (default ``fitted.data``).
    metrics : mapping, optional
        Flat ``{name: value}`` or a table ``{row: {column: value}}``; names listed in
        :data:`METRIC_DEFINITIONS` (or ``definitions``) are defined below the table.
    held_out : (t (T2,), y (T2, n)), optional
        Held-out observations of trajectory 0.
    predictions : dict label -> (t, y), optional
        Curves of trajectory 0 for the fit plot (see :func:`model_section`).
    plots : dict caption -> path, optional
        Further plots (already written PNG files) to include.
    names : sequence of str, optional
        State labels.
    seed : int, optional
    command : str, optional
        Command line that reproduces the run.
    intro : str
        Markdown paragraph after the title (text from input in it must be escaped).
    sections : sequence of str
        Further sections: :class:`Section` objects (e.g. from :func:`model_section`) or
        Markdown strings (shown verbatim in the HTML report).
    tables : dict caption -> table rows, optional
        Further tables (rendered with :func:`markdown_table`).
    time_label : str, optional
        x-axis label of the plots (default: the model's time and the data's time unit).
    metrics_index : str
        Header of the row labels of a nested ``metrics`` table.
    filename : str, default "report.md"
        The HTML report gets the same name with the suffix ``.html``.
    figures : bool, default True
        Draw the model's plots (``False``: tables and equations only).
    definitions : mapping name -> str, optional
        Definitions of further metric names (units included).

    Returns
    -------
    pathlib.Path
        The Markdown report.

    Raises
    ------
    ConfigError
        If ``title`` is not a string, ``plots`` is not a mapping or ``filename`` does not end in ``.md``.
    """
    if not isinstance(title, str):
        raise ConfigError(f"title: expected a string, received {describe(title)}.")
    if plots is not None and not isinstance(plots, Mapping):
        raise ConfigError(f"plots: expected a mapping caption -> path, received {describe(plots)}.")
    if not str(filename).endswith(".md"):
        raise ConfigError(f"filename: expected a name ending in '.md', received {describe(filename)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    blocks: list = []
    if intro:
        blocks.append(Text(intro))
    source = fitted if fitted is not None else found
    used = data if data is not None else getattr(source, "data", None)
    if used is not None and source is not None:
        held = plotting.held_out_by_trajectory(held_out, len(plotting.observed_columns(source.model, used)))
        tname = time_label or plotting.time_label(source.model, used)
        blocks += [Heading("Data", 2), *data_summary(used, held, time_name=tname)]
    if metrics:
        nested = any(isinstance(v, Mapping) for v in metrics.values())
        blocks += [Heading("Metrics", 2), Table(metrics, index=metrics_index if nested else "metric")]
        defs = metric_definitions(metrics, definitions)
        if defs:
            blocks.append(Definitions(tuple(defs)))
    for caption, rows in (tables or {}).items():
        blocks += [Heading(caption, 3), Table(rows)]
    if fitted is not None or found is not None:
        section = model_section(
            out,
            fitted=fitted,
            found=found,
            data=data,
            held_out=held_out,
            predictions=predictions,
            names=names,
            time_label=time_label,
            figures=figures,
            summary=False,
        )
        blocks.append(Heading("Model", 2))
        blocks += section.blocks
    for sec in sections:
        blocks += sec.blocks if isinstance(sec, Section) else [sec]
    if plots:
        blocks.append(Heading("Further plots", 2))
        blocks += [Image(caption, Path(path)) for caption, path in plots.items()]
    blocks.append(Heading("Reproduce", 2))
    if command:
        blocks.append(Code(command, "bash"))
    if seed is not None:
        blocks.append(Text(f"Seed: {code_span(seed)}"))
    blocks.append(Table(versions(), index="package"))
    if config is not None:
        if isinstance(config, str):
            text, lang = config.rstrip(), "toml" if "=" in config else "text"
        else:
            text, lang = json.dumps(jsonable(config), indent=2), "json"
        blocks += [Text("Configuration:"), Code(text, lang)]
    path = out / filename
    path.write_text(markdown([Heading(title, 1), *blocks], out), encoding="utf-8")
    path.with_suffix(".html").write_text(html_document(title, blocks), encoding="utf-8")
    return path
