"""Lynx–hare: discover the predator–prey interactions in the Hudson Bay pelt data (1900–1920).

Run:  python examples/lynx_hare.py --out out/lynx-hare        (add --fast for a smoke run)
Same as: udesci example lynx-hare ...
"""

import sys

from udesci.cli import main

if __name__ == "__main__":
    sys.exit(main(["example", "lynx-hare", *sys.argv[1:]]))
