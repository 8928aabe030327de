"""``python -m tlsmith``: the command line."""

from tlsmith.cli.main import main

main()
