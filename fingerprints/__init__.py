"""OS and language-runtime fingerprints of a container, read from the outside.

Public surface: ``Fingerprinter`` (choose a container's processes, run every detector,
cache the result while the process lives) and its ``Result``. Detectors live in
``fingerprints.detectors``, the confined readers of a container's files and processes in
``fingerprints.reading``. This package imports nothing of the extractor or the exporter
(tests/test_architecture.py checks). Names load on first use (PEP 562), so importing
``fingerprints.result`` does not load every detector.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fingerprints.engine import Fingerprinter
    from fingerprints.result import Component, Result

__all__ = ["Component", "Fingerprinter", "Result"]
_WHERE = {
    "Fingerprinter": "fingerprints.engine",
    "Result": "fingerprints.result",
    "Component": "fingerprints.result",
}


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'fingerprints' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
