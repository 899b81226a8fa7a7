"""``python -m mammotools``."""

from mammotools.cli import main

main()
