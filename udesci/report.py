"""Self-contained reports of a fitted (and discovered) hybrid model: Markdown and HTML.

:func:`write_report` writes ``report.md`` into an output folder together with the PNG plots it
references by relative path (so the folder can be moved or zipped as a whole), and
``report.html`` next to it: one file, the same content, every image embedded as a
``data:image/png;base64`` URI, no script and no external resource.  Both hold:

* a data summary (trajectories, points, missing values, time span, train/test split),
* the metrics with their definitions and units,
* the equations with the fitted values substituted (4 significant digits) and a parameter table,
* for a discovery: each unknown's chosen terms with intervals and inclusion (and what those numbers
  are), its candidates sorted by score with the chosen one marked, and how well the closed form
  reproduces the networks and the data; a discovery labelled inadequate, or one whose unknowns of
  never-observed states the data do not identify, opens the report with a boxed warning naming the
  unknowns and the numbers,
* the plots of :mod:`udesci.plots`: every trajectory's fit (or a stated selection), each
  unknown's network against its closed form, a phase portrait for two-state systems, the loss,
* what is needed to reproduce the run (command, seed, package versions, configuration).

The content is built as blocks of :mod:`udesci.markup` and rendered by it to both formats;
:func:`model_section` returns a :class:`~udesci.markup.Section`, a Markdown string that carries its
blocks for the HTML report.  Text taken from input is escaped there (see :mod:`udesci.markup`);
``escape_text``, ``code_span``, ``fenced_block``, ``math_block`` and ``markdown_table`` are
importable from here as well.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from . import plots as plotting  # not `plots`: write_report has an argument of that name
from .data import Dataset
from .display import (
    candidate_rows,
    data_rows,
    equations_latex,
    equations_text,
    parameter_rows,
    term_rows,
    unknown_forms,
)
from .errors import ConfigError, describe
from .evaluate import jsonable, write_text_atomic
from .markup import (  # noqa: F401 (escape_text, fenced_block, markdown_table, math_block: re-exported)
    Alert,
    Code,
    Definitions,
    Heading,
    Image,
    Math,
    Section,
    Table,
    Text,
    cell_text,
    code_span,
    escape_text,
    fenced_block,
    html_document,
    markdown,
    markdown_table,
    math_block,
)

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
    "adequacy": (
        "how well the closed form reproduces the trained networks (R² on the sampled states) and the data "
        "(scaled RMSE relative to the trained UDE's), and the rule that labels it inadequate"
    ),
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
    if getattr(found, "adequacy", None) is not None:
        return "Adequacy: " + found.adequacy.summary() + "."
    value = found.metrics.get("adequacy")
    if value is None:
        return "Adequacy: not assessed (discovery reports no adequacy measure for this closed form)."
    shown = json.dumps(jsonable(value)) if isinstance(value, (Mapping, list, tuple)) else cell_text(value)
    return f"Adequacy: {shown}."


def adequacy_alert(found) -> Alert | None:
    """The banner of a discovery labelled inadequate: the unknowns at fault and the numbers (None if adequate).

    Returns
    -------
    Alert or None
    """
    adequacy = getattr(found, "adequacy", None)
    if adequacy is None or adequacy.adequate:
        return None
    names = ", ".join(adequacy.inadequate_unknowns())
    return Alert(
        f"INADEQUATE closed form for {names}: do not read these equations as the law",
        (
            *adequacy.problems(),
            "The closed form misses structure the trained networks learned: a richer library (or more data) "
            "may be needed.  The discovered equations, intervals and plots below describe that inadequate form.",
        ),
    )


def identifiability_alert(found) -> Alert | None:
    """The banner of a discovery whose unknowns of never-observed states the data do not identify
    (None if identified or not checked).

    Returns
    -------
    Alert or None
    """
    ident = getattr(found, "identifiability", None)
    if ident is None or ident.identified:
        return None
    return Alert(
        f"NOT IDENTIFIED: the data do not identify {', '.join(ident.unknowns)}, which depend on the never-observed "
        f"{', '.join(ident.hidden)}: do not read these equations as the law",
        (
            *ident.problems(),
            "Materially different accounts reproduce the observed data as well as the one shown.  Observing "
            f"{', '.join(ident.hidden)} (even a few points), fixing its initial value from the experiment, or "
            "writing the known physics that links it to the observed states may identify it.",
        ),
    )


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
    bases = []
    for name, det in found.details.items():
        if det.inclusion_basis:
            bases.append((f"inclusion probability ({name})", det.inclusion_basis))
        if det.interval_basis:
            bases.append((f"95% interval ({name})", det.interval_basis))
    if bases:
        out.append(Definitions(tuple(bases)))
    out.append(
        Heading(f"Candidates, sorted by {crit.upper()} (lower is better; → marks the chosen one)", 3),
    )
    for name, det in found.details.items():
        rows = candidate_rows(det, candidates)
        label = f"{name}({', '.join(map(str, det.args))})"
        out.append(Table(header=["chosen", f"candidate for {label}", crit, "terms"], body=rows))
    out.append(Heading("How well the closed form reproduces the data", 3))
    scalars = {k: v for k, v in found.metrics.items() if not isinstance(v, (Mapping, list, tuple))}
    if scalars:
        out.append(Table(scalars, index="measure"))
        defs = [(k, DISCOVERY_METRIC_DEFINITIONS[k]) for k in scalars if k in DISCOVERY_METRIC_DEFINITIONS]
        if defs:
            out.append(Definitions(tuple(defs)))
    out.append(Text(escape_text(adequacy_text(found))))
    if getattr(found, "identifiability", None) is not None:
        out.append(Text(escape_text("Identifiability: " + found.identifiability.summary() + ".")))
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


def _bounds_caption(labels: Sequence[str], sides: Sequence, observed: Sequence[int]) -> str:
    """What keeps the shown states' axes: their declared domains, or the guess from the data's sign
    (``sides`` from :func:`udesci.plots.state_axes`, one per model state; ``observed`` the shown states)."""
    declared = [f"{labels[i]} {sides[i].declared}" for i in observed if sides[i].declared]
    guessed = [labels[i] for i in observed if sides[i].guessed]
    out = ""
    if declared:
        out += f" Axes stay inside the declared domains ({', '.join(declared)})."
    if guessed:
        out += (
            f" Axes of {', '.join(guessed)} start at 0: all their observations are ≥ 0, so they are treated as "
            "nonnegative."
        )
    return out


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
    axes_note = _bounds_caption(labels, plotting.state_axes(model, data, obs, held), obs)
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
                f"{which}: training data (black), held-out data (red circles) and model simulations." + axes_note,
                plotting.save(fig, out_dir / f"{prefix}fit.png"),
            )
        )
        if data.n_trajectories > 1:
            fig = plotting.plot_fit(fitted, data, found=found, held_out=held, names=names, time_name=tname)
            out.append(
                Image(
                    f"{shown}: observations (dots) and the {models}." + axes_note,
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
                + axes_note,
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
                f"Phase portrait: observations (dots) and the {models} of each trajectory." + axes_note,
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
    for alert in (adequacy_alert(found), identifiability_alert(found)) if found is not None else ():
        if alert is not None:
            blocks.append(alert)  # at the very top, above the introduction (HTML: above the contents)
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
    write_text_atomic(path, markdown([Heading(title, 1), *blocks], out))
    write_text_atomic(path.with_suffix(".html"), html_document(title, blocks))
    return path
