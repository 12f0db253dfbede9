"""The HTML report: one self-contained file with the report's sections, embedded images and escaped text.

The fitted model and its discovery are built by hand (see ``test_plots``): exact product "networks" on three
Lotka–Volterra trajectories, so the report's numbers are known.  The slow test renders the page in headless
Chromium and checks that the screenshot shows something (pixel variance), not a blank page.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from test_plots import exact_discovery, lotka_volterra_fit

from udesci.report import Section, html_document, model_section, write_report

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Write the report once: Markdown and HTML, with injected text in every place that takes text."""
    out = tmp_path_factory.mktemp("report")
    fitted = lotka_volterra_fit(missing=True)
    found = exact_discovery(fitted)
    found.notes.append(f"solver said {EVIL}")
    extra = out / "extra.png"
    from udesci import plots

    plots.save(plots.plot_history(fitted), extra)
    md = write_report(
        out,
        title=f"Lotka–Volterra {EVIL}",
        config=f'title = "{EVIL}"\n',
        fitted=fitted,
        found=found,
        metrics={"prey": {"train rmse": 0.01, "fitted train rmse": 0.02}, EVIL: {"train rmse": 0.5}},
        held_out=(np.array([3.2, 3.4]), np.array([[1.6, 0.1], [1.9, 0.1]])),
        plots={f"extra {EVIL}": extra},
        tables={f"table {EVIL}": {"row": {EVIL: "a|b"}}},
        seed=7,
        command=f"udesci run '{EVIL}'",
        intro="Intro with `code <x>` and **bold**; " + "escaped &lt;b&gt;.",
        metrics_index="state",
    )
    return md, (out / "report.html").read_text(encoding="utf-8")


def test_html_report_is_one_file_with_embedded_images(report):
    md_path, page = report
    assert md_path.with_suffix(".html").is_file()
    n_images = md_path.read_text().count("![")
    assert n_images >= 6  # fit, unknown U, unknown V, phase, loss, the extra plot
    assert page.count('src="data:image/png;base64,') == n_images
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page, re.I)
    assert "<link" not in page and "@import" not in page and "<script" not in page
    assert "default-src 'none'" in page  # the content security policy forbids anything not embedded


def test_html_report_escapes_every_injected_text(report):
    _, page = report
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Lotka–Volterra &lt;script&gt;" in page
    assert "<code>code &lt;x&gt;</code>" in page and "<strong>bold</strong>" in page
    assert "escaped &lt;b&gt;." in page  # already-escaped Markdown text is not escaped twice
    assert "<td>a|b</td>" in page


def test_html_report_has_every_section(report):
    md_path, page = report
    for heading in (
        "Data",
        "Metrics",
        "Model",
        "Equations with the fitted values (4 significant digits)",
        "Parameters",
        "Discovered terms",
        "Candidates, sorted by BIC (lower is better; → marks the chosen one)",
        "How well the closed form reproduces the data",
        "Fit and held-out prediction",
        "Unknown functions: network against discovered closed form",
        "Phase portrait",
        "Training loss",
        "Reproduce",
    ):
        assert f">{heading}</h" in page, heading
        assert f"# {heading}\n" in md_path.read_text(), heading
    # data summary: 3 trajectories of 16 points, one value missing, the held-out points named
    assert "<td>all</td><td>48</td><td>0 – 3</td><td>1 of 96</td>" in page
    assert "held out (not trained on): 2 points of trajectory 0 (days from 3.2 to 3.4)" in page
    # metric definitions, the fitted values in the equations, 4 significant digits
    assert "<dt>train rmse</dt>" in page and "<dt>fitted train rmse</dt>" in page and "data units" in page
    assert "dprey/ddays = -0.9*predator*prey + 1.3*prey" in page
    assert "<td>alpha</td><td>1.3</td>" in page
    # candidates sorted by score, the chosen one marked; the adequacy slot
    rows = re.findall(r"<tr><td>(→?)</td><td>([^<]*)</td><td>([^<]*)</td>", page)
    assert rows[:2] == [("→", "-0.9*predator*prey", "-100"), ("", "0.5*prey", "-20")]
    assert "Adequacy: not assessed" in page and "<dt>data_rmse_scaled</dt>" in page
    assert "The trajectory" not in page and "All 3 trajectories: observations" in page
    assert "udesci run &#x27;&lt;script&gt;" in page and "Seed: <code>7</code>" in page


def test_adequacy_is_shown_when_discovery_assesses_it(tmp_path):
    fitted = lotka_volterra_fit(n_traj=1)
    found = exact_discovery(fitted)
    found.metrics["adequacy"] = 0.93
    section = model_section(tmp_path, found=found, fitted=fitted, figures=False)
    assert isinstance(section, Section) and "Adequacy: 0.93." in section
    assert not list(tmp_path.glob("*.png"))  # figures=False draws nothing
    page = html_document("t", section.blocks)
    assert "Adequacy: 0.93." in page and "The model has no parameters" not in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (install it, e.g. `apt-get install -y chromium`, to run this test)")
    md_path, _ = report
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace for the sandbox
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,2600",
            f"--screenshot={shot}",
            md_path.with_suffix(".html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2600, 1100)
    assert pixels.std() > 0.05  # not one flat colour
    dark = (pixels.mean(axis=2) < 0.5).mean()
    assert 0.005 < dark < 0.5  # text and plot lines, on a light page


def test_an_alert_opens_the_page_above_the_contents_and_is_escaped(tmp_path):
    from udesci.markup import Alert, Heading, Text, markdown

    blocks = [Alert("INADEQUATE closed form for <U>", ("ratio 3.1×", "R² 0.2 & more")), Heading("Data"), Text("x")]
    md = markdown(blocks, tmp_path)
    # escape_text writes markup characters as entities: nothing from input becomes Markdown or HTML
    assert md.startswith("> **⚠ INADEQUATE closed form for &lt;U&gt;**\n>\n> - ratio 3.1×\n> - R² 0.2 &amp; more\n")
    page = html_document("t", blocks)
    at = page.index('<div class="alert" role="alert"><strong>⚠ INADEQUATE closed form for &lt;U&gt;</strong>')
    assert page.index("<h1>t</h1>") < at < page.index("<nav>") and "<li>R² 0.2 &amp; more</li>" in page
