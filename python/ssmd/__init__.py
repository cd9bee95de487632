"""ssmd: stupid simple market data.

Capture live prediction-market data, stream it to clients and archive it, raw
and normalized, for backtesting. See the README for the tour.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ssmd")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
