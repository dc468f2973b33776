"""OS and language-runtime fingerprints of a container, read from the outside.

Public surface: ``Fingerprinter`` (choose a container's processes, run every detector,
cache the result while the process lives) and its ``Result``. Detectors live in
``fingerprints.detectors``, the confined readers of a container's files and processes in
``fingerprints.reading``. This package imports nothing of the extractor or the exporter
(tests/test_architecture.py checks); the extractor does not load it at all: its worker
process does (``fingerprints/worker.py``).
"""

from fingerprints.engine import Fingerprinter
from fingerprints.result import Component, Result

__all__ = ["Component", "Fingerprinter", "Result"]
