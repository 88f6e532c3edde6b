"""The bundle's entry point: ``telemetry-tray`` with the command line's verbs, or the tray."""

import sys

from tray_app.cli import main

if __name__ == "__main__":
    sys.exit(main())
