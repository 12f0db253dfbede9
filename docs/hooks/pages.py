"""MkDocs hook: pages generated at build time from files outside ``docs/``.

* every ``tutorials/NN_name.py`` (a jupytext percent-format notebook) becomes the page
  ``tutorials/NN_name.md`` (markdown cells as they are, code cells as Python blocks, no
  outputs: the site is built without running anything), and its source is published beside
  it as ``tutorials/NN_name.py`` and, converted by jupytext, ``tutorials/NN_name.ipynb``;
* the repository's ``README.md`` and ``data/README.md`` become ``readme.md`` and ``data.md``,
  so the site links to them instead of copying their text;
* Sphinx cross-reference roles in udesci's docstrings (``:func:`~udesci.fit```), which the
  numpydoc parser leaves as text, become links where the target is documented on the site and
  plain code otherwise.

Nothing is written into the source tree.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"
# a role as rendered: ":func:" followed by the backquoted target, which markdown turned into <code>
ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|exc|obj):<code>(~?)([\w.]+)</code>")
COPIED = {"readme.md": ROOT / "README.md", "data.md": ROOT / "data" / "README.md"}


def notebook_markdown(source: str, name: str) -> str:
    """The markdown page of a jupytext percent-format notebook (no outputs).

    Parameters
    ----------
    source : str
        Text of the ``.py`` file.
    name : str
        File stem, for the download links.

    Returns
    -------
    str
        Markdown cells as they are, each code cell as a fenced Python block, and a line of
        download links after the first (title) cell.
    """
    notebook = jupytext.reads(source, fmt="py:percent")
    parts = []
    for cell in notebook.cells:
        text = cell.source.strip("\n")
        if not text:
            continue
        parts.append(text if cell.cell_type == "markdown" else f"```python\n{text}\n```")
        if len(parts) == 1:
            parts.append(
                f"*Download: [{name}.py]({name}.py) (jupytext percent format) · [{name}.ipynb]({name}.ipynb) "
                "(notebook, not executed). The test suite runs every tutorial; see "
                "[Tutorials](index.md) for how.*"
            )
    return "\n\n".join(parts) + "\n"


def on_files(files: Files, config) -> Files:
    """Add the generated pages and downloads to the site's files."""
    for path in sorted(TUTORIALS.glob("[0-9][0-9]_*.py")):
        source = path.read_text(encoding="utf-8")
        stem = path.stem
        notebook = jupytext.reads(source, fmt="py:percent")
        for uri, content in (
            (f"tutorials/{stem}.md", notebook_markdown(source, stem)),
            (f"tutorials/{stem}.py", source),
            (f"tutorials/{stem}.ipynb", jupytext.writes(notebook, fmt="ipynb")),
        ):
            files.append(File.generated(config, uri, content=content))
    for uri, path in COPIED.items():
        files.append(File.generated(config, uri, content=path.read_text(encoding="utf-8")))
    return files


def role_link(match: re.Match) -> str:
    """An optional mkdocs-autorefs reference for one Sphinx role (plain code if unresolved).

    ``~a.b.c`` shows ``c``; a bare name is tried as ``udesci.<name>`` and as written.
    """
    short, target = match.group(1), match.group(2)
    shown = target.rsplit(".", 1)[-1] if short else target
    if "." in target:
        return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'
    return f'<autoref identifier="udesci.{target}" slug="{target}" optional><code>{shown}</code></autoref>'


def on_page_content(html: str, page, config, files) -> str:
    """Turn the Sphinx roles in rendered docstrings into optional cross-references."""
    return ROLE.sub(role_link, html)
