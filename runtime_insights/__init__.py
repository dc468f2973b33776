"""runtime-insights: the one command that starts the extractor, the exporter or a tool.

This package sits above the three others (``extractor``, ``exporter``, ``fingerprints``)
and is imported by none of them; ``cli.main`` is the ``runtime-insights`` console script.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("runtime-insights")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
