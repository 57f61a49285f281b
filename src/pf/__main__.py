"""``python -m pf``."""

from pf.cli.main import main

main()
