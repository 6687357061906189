"""``python -m gpssignal.cli`` runs the command line."""

import sys

from gpssignal.cli import main

sys.exit(main())
