"""Weather: hourly temperature UDEs with measured forcing against persistence, climatology,
physics-only and neural-ODE baselines (real TMY3 Greensboro July 1981 and DWD Würzburg July 2021 data).

Run:  python examples/weather.py --out out/weather            (add --fast for a smoke run)
Same as: udesci example weather ...
"""

import sys

from udesci.cli import main

if __name__ == "__main__":
    sys.exit(main(["example", "weather", *sys.argv[1:]]))
