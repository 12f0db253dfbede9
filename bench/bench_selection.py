"""Which model-selection rule recovers the Lotka–Volterra structure most often?

For every (noise, seed) the hybrid model is trained once with the pipeline's options; then
``udesci.discover`` runs on that same trained model with each selection rule (criterion and
parsimony margin).  The table gives, per rule and noise level, the share of seeds whose U and V
are exactly the x·y term, and the median relative error of β and γ.  Training once and
discovering several times makes the comparison paired: the rules see the same networks.

    .venv/bin/python bench/bench_selection.py --noise 0.01,0.05 --seeds 10

Writes JSON (``--out``, default ``bench/results/selection.json``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import udesci as ud
from udesci.cli_study import noise_list
from udesci.pipelines import lotka_volterra as lv

RULES = {
    "bic, margin 6 (default)": {"criterion": "bic", "parsimony": 6.0},
    "bic, margin 2": {"criterion": "bic", "parsimony": 2.0},
    "aic, margin 6": {"criterion": "aic", "parsimony": 6.0},
    "aic, margin 2": {"criterion": "aic", "parsimony": 2.0},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--noise", type=noise_list, default="0.01,0.05", help="comma-separated noise levels (default %(default)s)"
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per level (default %(default)s)")
    parser.add_argument("--out", default="bench/results/selection.json")
    args = parser.parse_args(argv)
    levels = args.noise
    if args.seeds < 1:
        parser.error(f"--seeds: expected a positive int, received {args.seeds}")
    torch.set_num_threads(1)
    runs = []
    start = time.perf_counter()
    for noise in levels:
        for seed in range(args.seeds):
            t, _, noisy = lv.make_data(noise, seed)
            data = ud.Dataset(t, noisy, states=["x", "y"])
            fitted = ud.fit(lv.build_model(seed), data, seed=seed, progress=False, **lv.fit_options())
            for rule, kw in RULES.items():
                t0 = time.perf_counter()
                found = ud.discover(fitted, seed=seed, progress=False, selection=ud.Selection(**kw))
                res = lv.assess(found)
                runs.append(
                    {
                        "noise": noise,
                        "seed": seed,
                        "rule": rule,
                        "correct_structure": res["correct_structure"],
                        "beta_rel_error": res["beta_rel_error"],
                        "gamma_rel_error": res["gamma_rel_error"],
                        "seconds": time.perf_counter() - t0,
                    }
                )
            print(f"noise {noise} seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    lines = ["| rule | " + " | ".join(f"noise {n}: structure, β err, γ err" for n in levels) + " |"]
    lines.append("| --- | " + " | ".join("---:" for _ in levels) + " |")
    table = []
    for rule in RULES:
        cells = []
        for noise in levels:
            sel = [r for r in runs if r["rule"] == rule and r["noise"] == noise]
            rate = 100 * np.mean([r["correct_structure"] for r in sel])
            be = 100 * np.median([r["beta_rel_error"] for r in sel])
            ge = 100 * np.median([r["gamma_rel_error"] for r in sel])
            cells.append(f"{rate:.0f}%, {be:.1f}%, {ge:.1f}%")
            table.append({"rule": rule, "noise": noise, "structure": rate, "beta_err": be, "gamma_err": ge})
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"table": table, "runs": runs, "load": os.getloadavg()}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
