"""Report markup: blocks of a report and their Markdown and HTML renderings, with escaping.

A report is a list of blocks — :class:`Heading`, :class:`Text`, :class:`Table`, :class:`Image`,
:class:`Code`, :class:`Math`, :class:`Definitions` — rendered by :func:`markdown` (images linked by
relative path) and :func:`html_document` (one self-contained page: inline styles, images as
``data:image/png;base64`` URIs, a content security policy that forbids scripts and every other
resource).  A :class:`Section` is the Markdown of some blocks (a ``str``) carrying the blocks.

Text taken from input (titles, names, expressions, notes, configs) cannot inject HTML or Markdown
structure.  In Markdown, :func:`escape_text` escapes ``&``, ``<``, ``>`` (and keeps text on one line)
in headings, captions and table cells, :func:`code_span` and :func:`fenced_block` choose backtick
fences longer than any backtick run in their text, and :func:`math_block` writes ``<``/``>`` as
``\\lt``/``\\gt``.  In HTML every text is escaped.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .display import format_number
from .errors import ConfigError, describe

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


@dataclass(frozen=True)
class Alert:
    """A warning the reader must not miss: a title and its points (plain text).

    Markdown: a block quote opening with the bold title; HTML: a red-bordered box with
    ``role="alert"``.  Alerts at the start of a document's blocks are shown directly under its title,
    before the table of contents.
    """

    title: str
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
        elif isinstance(b, Alert):
            lines = [f"> **⚠ {escape_text(b.title)}**"] + ([">"] if b.items else [])
            parts.append("\n".join(lines + [f"> - {escape_text(item)}" for item in b.items]) + "\n")
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
.alert{border:3px solid #c53030;background:#fff5f5;color:#742a2a;padding:10px 14px;margin:12px 0 20px}
.alert ul{margin:6px 0 0}
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
        elif isinstance(b, Alert):
            items = "".join(f"<li>{html.escape(item)}</li>" for item in b.items)
            parts.append(
                f'<div class="alert" role="alert"><strong>⚠ {html.escape(b.title)}</strong>'
                + (f"<ul>{items}</ul>" if items else "")
                + "</div>"
            )
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
    lead = 0
    while lead < len(blocks) and isinstance(blocks[lead], Alert):
        lead += 1
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        + (html_blocks(blocks[:lead]) + "\n" if lead else "")
        + (f"<nav><ul>{toc}</ul></nav>\n" if toc else "")
        + html_blocks(blocks[lead:])
        + "\n</main>\n</body>\n</html>\n"
    )
