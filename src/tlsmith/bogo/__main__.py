"""``python -m tlsmith.bogo``: the BoGo shim."""

import sys

from tlsmith.bogo.shim import main

sys.exit(main(sys.argv[1:]))
