"""Self-contained Markdown reports of a fitted (and discovered) hybrid model.

:func:`write_report` writes ``report.md`` into an output folder together with
the PNG plots it references by relative path, so the folder can be moved or
zipped as a whole:

* data against the fitted model and its prediction on held-out data,
* each unknown's network output against its discovered closed form
  (:func:`udesci.plots.plot_unknown`),
* a phase portrait for two-state systems,
* the loss history,

plus the discovered equations in LaTeX, a metrics table, and what is needed
to reproduce the run (config, seed, command, package versions).

Text taken from input (titles, names, expressions, notes, the config) cannot
inject HTML or Markdown structure: :func:`escape_text` escapes ``&``, ``<``,
``>`` (and keeps text on one line) in headings, captions and table cells,
:func:`code_span` and :func:`fenced_block` choose backtick fences longer than any
backtick run in their text, and :func:`math_block` writes ``<``/``>`` as
``\\lt``/``\\gt``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
import sympy as sp
import torch

from .data import Dataset, InputInterpolator
from .errors import ConfigError, describe
from .evaluate import jsonable, simulate_or_nan
from .lambdify import as_expression


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


def unknown_samples(fitted, found, data: Dataset | None = None, *, trajectory: int = 0, density: int = 4) -> dict:
    """Each unknown's network output and discovered expression along the fitted trajectory.

    Parameters
    ----------
    fitted : FitResult
    found : Discovery
    data : Dataset, optional
        Default ``fitted.data``.
    trajectory : int
    density : int
        Samples per observation interval.

    Returns
    -------
    dict name -> dict with ``t`` (N,), ``network`` (N,), ``expression`` (N,)

    Raises
    ------
    ConfigError
        If ``found`` has an unknown that the fitted model lacks.
    """
    data = data if data is not None else fitted.data
    model = fitted.model
    tr = data.trajectories[trajectory]
    t = np.concatenate([np.linspace(a, b, density, endpoint=False) for a, b in zip(tr.t[:-1], tr.t[1:], strict=True)])
    t = np.append(t, tr.t[-1])
    y = simulate_or_nan(model, fitted.initial_states[trajectory], t, data=data, trajectory=trajectory)
    cols = {str(s): y[:, i] for i, s in enumerate(model.states)}
    cols[str(model.time)] = t
    if model.inputs:
        idx = [data.input_names.index(u) for u in model.input_names]
        interp = InputInterpolator([tr.u_t], [tr.u[:, idx]], data.interpolation, torch.float64)
        u = interp(torch.as_tensor(t), torch.zeros(t.size, dtype=torch.long)).numpy()
        cols.update({name: u[:, j] for j, name in enumerate(model.input_names)})
    ok = np.all(np.isfinite(y), axis=1)
    out = {}
    nets = model.networks()
    for name, expr in found.unknowns.items():
        if name not in model.unknowns:
            raise ConfigError(
                f"found: unknown {name!r} is not an unknown of the fitted model {sorted(model.unknowns)}."
            )
        args = model.unknowns[name].args
        z = np.stack([cols[str(a)] for a in args], axis=1)[ok]
        net = nets[name]
        dtype = next(iter(net.parameters()), torch.zeros((), dtype=torch.float64)).dtype
        with torch.no_grad():
            nv = net(torch.as_tensor(z, dtype=dtype)).reshape(-1).double().numpy()
        fn = sp.lambdify(list(args), as_expression(expr, f"found.unknowns[{name!r}]"), modules="numpy")
        ev = np.broadcast_to(np.asarray(fn(*z.T), dtype=float), (z.shape[0],)).copy()
        entry = {"t": t[ok], "network": nv, "expression": ev, "args": [str(a) for a in args], "adjusted": None}
        # the closed-form model's known parameters may differ from the network model's (the refit moves
        # them); what the network should be compared with is then the discovered term plus the change in
        # the known part of its equation
        call = model.unknowns[name].call
        homes = [st for st, rhs in model.equations.items() if rhs.has(call)]
        if len(homes) == 1 and sp.diff(model.equations[homes[0]], call) == 1:
            known = model.equations[homes[0]].xreplace({call: 0})
            new_vals, old_vals = found.model.parameter_values(), model.parameter_values()
            delta = sp.expand(known.subs(new_vals) - known.subs(old_vals))
            if delta != 0 and {str(v) for v in delta.free_symbols} <= set(cols):
                syms = sorted(delta.free_symbols, key=str)
                dfn = sp.lambdify(syms, delta, modules="numpy")
                dv = np.broadcast_to(np.asarray(dfn(*[cols[str(v)][ok] for v in syms]), dtype=float), ev.shape)
                entry["adjusted"] = ev + dv
        out[name] = entry
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


def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return "n/a" if math.isnan(v) else ("∞" if v > 0 else "−∞")
        return f"{v:.4g}"
    if value is None:
        return "—"
    return escape_text(value).replace("|", "\\|")


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
    if isinstance(rows, Mapping) and rows and not any(isinstance(v, Mapping) for v in rows.values()):
        lines = [f"| {_fmt(index or 'metric')} | value |", "| --- | --- |"]
        lines += [f"| {_fmt(k)} | {_fmt(v)} |" for k, v in rows.items()]
        return "\n".join(lines)
    items = list(rows.items()) if isinstance(rows, Mapping) else [(None, r) for r in rows]
    if columns is None:
        columns = []
        for _, r in items:
            for c in r:
                if c not in columns:
                    columns.append(c)
    head = [_fmt(c) for c in ([index] if isinstance(rows, Mapping) else []) + [str(c) for c in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for label, r in items:
        cells = ([_fmt(label)] if isinstance(rows, Mapping) else []) + [_fmt(r.get(c)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rel(path, out_dir: Path) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        return os.path.relpath(p.resolve(), out_dir.resolve()).replace(os.sep, "/")


def _image(caption: str, path, out_dir: Path) -> str:
    caption = escape_text(caption)
    return f"![{caption}]({quote(_rel(path, out_dir))})\n\n*{caption}*\n"


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
    time_label: str = "t",
    plot_title: str | None = None,
) -> str:
    """Plots and Markdown for one fitted (and possibly discovered) model.

    Parameters
    ----------
    out_dir : path
        Folder the plots are written to (and the report lives in).
    label : str
        Heading of the section (empty: no heading).
    fitted : FitResult, optional
    found : Discovery, optional
    data : Dataset, optional
        Training data (default ``fitted.data``).
    held_out : (t, y) with t of shape (T2,) and y of shape (T2, n), optional
        Held-out observations of trajectory 0.
    predictions : dict label -> (t (M,), y (M, n)) or list of such pairs, optional
        Curves for the fit plot; default: the fitted model (and the discovered
        model) simulated from the fitted initial state over training and
        held-out times with the measured inputs.
    names : sequence of str, optional
        State labels for the plots (default: the model's state names).
    prefix : str
        Prefix of the plot file names (to keep several sections apart).
    time_label : str
        x-axis label.
    plot_title : str, optional
        Title of the fit plot (default: from ``label``).

    Returns
    -------
    str
        Markdown (images linked relative to ``out_dir``).
    """
    from .plots import plot_forecast, plot_loss, plot_phase_limited, plot_unknown, plot_unknown_adjusted

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"## {escape_text(label)}\n"] if label else []
    if found is not None:
        parts.append("### Discovered equations\n")
        parts.append(math_block(found.to_latex()))
        parts.append(fenced_block(found.summary(), "text"))
    elif fitted is not None:
        from .export import to_latex

        parts.append("### Model\n")
        parts.append(math_block(to_latex(fitted.model)))
        values = {str(k): float(v) for k, v in fitted.model.parameter_values().items()}
        if values:
            parts.append(markdown_table(values, index="parameter") + "\n")
    if fitted is None:
        return "\n".join(parts)
    data = data if data is not None else fitted.data
    model = fitted.model
    names = list(names) if names is not None else model.state_names
    tr = data.trajectories[0]
    obs_cols = [model.state_names.index(s) for s in (data.state_names or model.state_names)]
    t_test, y_test = (np.zeros(0), np.zeros((0, len(obs_cols)))) if held_out is None else held_out
    t_test = np.asarray(t_test, dtype=float)
    y_test = np.asarray(y_test, dtype=float).reshape(t_test.size, len(obs_cols))
    if predictions is None:
        t_all = np.union1d(tr.t, t_test)
        t_dense = np.union1d(np.linspace(t_all[0], t_all[-1], max(200, 4 * t_all.size)), t_all)
        predictions = {"fitted UDE": (t_dense, simulate_or_nan(model, fitted.initial_states[0], t_dense, data=data))}
        if found is not None:
            y0 = found.refit.initial_states[0] if found.refit is not None else fitted.initial_states[0]
            predictions["discovered model"] = (t_dense, simulate_or_nan(found.model, y0, t_dense, data=data))
    curves = {}
    for key, piece in predictions.items():
        pieces = piece if isinstance(piece, list) else [piece]
        curves[key] = [(tc, np.asarray(yc).reshape(len(tc), -1)[:, obs_cols]) for tc, yc in pieces]
    obs_names = [names[i] for i in obs_cols]
    fig = plot_forecast(
        out_dir / f"{prefix}fit.png",
        tr.t,
        tr.y,
        t_test,
        y_test,
        curves,
        obs_names,
        t_split=tr.t[-1],
        title=plot_title or (f"{label}: " if label else "") + "data, fit and held-out prediction",
        xlabel=time_label,
    )
    parts.append("### Fit and held-out prediction\n")
    parts.append(_image("Training data (black), held-out data (red circles) and model simulations.", fig, out_dir))
    if found is not None:
        samples = unknown_samples(fitted, found, data)
        parts.append("### Unknown functions: network against discovered expression\n")
        for name, s in samples.items():
            label = f"{name}({', '.join(s['args'])})"
            xlabel = f"{time_label} (along the fitted trajectory)"
            path = out_dir / f"{prefix}unknown_{name}.png"
            if s["adjusted"] is None:
                fig = plot_unknown(path, label, s["t"], s["network"], s["expression"], xlabel=xlabel)
                ref = s["expression"]
                note = ""
            else:
                fig = plot_unknown_adjusted(path, label, s["t"], s["network"], s["expression"], s["adjusted"], xlabel)
                ref = s["adjusted"]
                note = (
                    "; the discovered model's known parameters differ from the network model's, so the discovered "
                    "term plus the change in the known part of its equation is the like-for-like comparison"
                )
            rmse = float(np.sqrt(np.mean((s["network"] - ref) ** 2))) if s["t"].size else math.nan
            parts.append(
                _image(
                    f"{name}: trained network vs discovered expression (RMS difference {rmse:.3g}{note}).", fig, out_dir
                )
            )
    if len(model.states) == 2 and len(obs_cols) == 2:
        phase_curves = {k: np.concatenate([np.asarray(yc) for _, yc in v]) for k, v in curves.items()}
        y_data = np.concatenate([tr.y, y_test]) if t_test.size else tr.y
        fig = plot_phase_limited(out_dir / f"{prefix}phase.png", y_data, phase_curves, names)
        parts.append("### Phase portrait\n")
        parts.append(_image("Phase portrait: data and model trajectories.", fig, out_dir))
    if fitted.history and all(math.isfinite(h["loss"]) and h["loss"] > 0 for h in fitted.history):
        fig = plot_loss(out_dir / f"{prefix}loss.png", fitted.history)
        parts.append("### Training loss\n")
        parts.append(_image("Loss history by training stage.", fig, out_dir))
    return "\n".join(parts)


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
    time_label: str = "t",
    metrics_index: str = "method",
    filename: str = "report.md",
) -> Path:
    """Write a self-contained Markdown report with its plots.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created); the report and all plots go here.
    title : str
        Report title.
    config : mapping or str, optional
        The exact configuration of the run (a dict is written as JSON, a
        string, e.g. TOML text, verbatim).
    fitted : FitResult, optional
        The trained model (plots: fit, loss, phase portrait).
    found : Discovery, optional
        Its discovery (LaTeX equations, unknown-vs-expression plots).
    data : Dataset, optional
        Training data (default ``fitted.data``).
    metrics : mapping, optional
        Flat ``{name: value}`` or a table ``{row: {column: value}}``.
    held_out : (t (T2,), y (T2, n)), optional
        Held-out observations for the fit plot.
    predictions : dict label -> (t, y), optional
        Curves for the fit plot (see :func:`model_section`).
    plots : dict caption -> path, optional
        Further plots (already written) to embed.
    names : sequence of str, optional
        State labels.
    seed : int, optional
    command : str, optional
        Command line that reproduces the run.
    intro : str
        Markdown paragraph after the title.
    sections : sequence of str
        Further Markdown sections (e.g. from :func:`model_section`).
    tables : dict caption -> table rows, optional
        Further tables (rendered with :func:`markdown_table`).
    time_label : str
    metrics_index : str
        Header of the row labels of a nested ``metrics`` table.
    filename : str, default "report.md"

    Returns
    -------
    pathlib.Path
        The report file.

    Raises
    ------
    ConfigError
        If ``title`` is not a string or ``plots`` is not a mapping.
    """
    if not isinstance(title, str):
        raise ConfigError(f"title: expected a string, received {describe(title)}.")
    if plots is not None and not isinstance(plots, Mapping):
        raise ConfigError(f"plots: expected a mapping caption -> path, received {describe(plots)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# {escape_text(title)}\n"]
    if intro:
        parts.append(intro.strip() + "\n")
    if metrics:
        parts.append("## Metrics\n")
        nested = any(isinstance(v, Mapping) for v in metrics.values())
        parts.append(markdown_table(metrics, index=metrics_index if nested else "metric") + "\n")
    for caption, rows in (tables or {}).items():
        parts.append(f"### {escape_text(caption)}\n")
        parts.append(markdown_table(rows) + "\n")
    if fitted is not None or found is not None:
        parts.append(
            model_section(
                out,
                fitted=fitted,
                found=found,
                data=data,
                held_out=held_out,
                predictions=predictions,
                names=names,
                time_label=time_label,
            )
        )
    for sec in sections:
        parts.append(sec)
    if plots:
        parts.append("## Further plots\n")
        for caption, path in plots.items():
            parts.append(_image(caption, path, out))
    parts.append("## Reproduce\n")
    if command:
        parts.append(fenced_block(command, "bash"))
    if seed is not None:
        parts.append(f"Seed: {code_span(seed)}\n")
    parts.append(markdown_table(versions(), index="package") + "\n")
    if config is not None:
        if isinstance(config, str):
            lang = "toml" if "=" in config else "text"
            parts.append("Configuration:\n\n" + fenced_block(config.rstrip(), lang))
        else:
            parts.append("Configuration:\n\n" + fenced_block(json.dumps(jsonable(config), indent=2), "json"))
    path = out / filename
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
