"""Three more systems through the UDE → SINDy pipeline, each with a different kind of unknown.

* duffing  — unknown nonlinear restoring force U(x) = -k x - eps x^3 (x' = v, v' = -c v + U(x))
* logistic — unknown factor of a known term, U(x) = 1 - x/K (x' = r x U(x))
* forced   — unknown response to a measured forcing input, U(F) = b F (v' = -x - c v + U(F))

Run:  python examples/systems.py duffing --noise 0.01 --seed 0   (add --fast for a smoke run; "all" runs all three)
Same as: udesci example duffing ...
"""

import argparse
import json
import sys

from udesci.pipelines.systems import SYSTEMS, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=[*SYSTEMS, "all"])
    parser.add_argument("--noise", type=float, default=0.01, help="noise as a fraction of each state's std")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="fewer training iterations")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    names = list(SYSTEMS) if args.system == "all" else [args.system]
    results = [run(name, args.noise, args.seed, fast=args.fast, quiet=args.json) for name in names]
    if args.json:
        print(json.dumps(results, indent=2, default=float))
    return 0 if all(r["correct_structure"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
