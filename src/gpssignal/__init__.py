"""gpssignal: GPS probe speed plan selection for signalised junctions, simulated and evaluated."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gpssignal")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
