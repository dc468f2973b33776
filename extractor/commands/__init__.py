"""The extractor's command-line entry points (``runtime-insights extract``, ``fingerprint``,
``extractor serve``), called by runtime_insights/cli.py; ``render`` prints a snapshot as
people and scripts read it.
"""

from extractor.commands.extract import run_extract
from extractor.commands.fingerprint import run_fingerprint
from extractor.commands.serve import run_serve

__all__ = ["run_extract", "run_fingerprint", "run_serve"]
