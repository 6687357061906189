"""``python -m gpssignal.cli`` runs the command line."""

import sys

from gpssignal.cli import command

sys.exit(command())
