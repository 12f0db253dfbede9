"""Lotka–Volterra: learn the unknown interactions with a UDE and discover them with SINDy.

Run:  python examples/lotka_volterra.py --out out/lv --noise 0.005 --seed 0   (add --fast for a smoke run)
Same as: udesci example lotka-volterra ...
"""

import sys

from udesci.cli import main

if __name__ == "__main__":
    sys.exit(main(["example", "lotka-volterra", *sys.argv[1:]]))
