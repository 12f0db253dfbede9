"""Lynx–hare: discover the predator–prey interactions in the Hudson Bay pelt data (1900–1920).

Run:  python examples/lynx_hare.py --out out/lynx-hare        (add --fast for a smoke run)
Same as: udesci example lynx-hare ...
"""

import sys

from udesci.cli import _REGISTRARS, main
from udesci.cli_pipelines import register

if __name__ == "__main__":
    if register not in _REGISTRARS:
        _REGISTRARS.append(register)
    sys.exit(main(["example", "lynx-hare", *sys.argv[1:]]))
