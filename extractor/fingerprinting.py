"""Fingerprints for the snapshot: the fingerprints engine's results in the contract's model.

The engine (``fingerprints/engine.py``) caches a result per container while its process
lives, so a warm pass gets the very same result object back; the converted model is kept
beside it and reused, so a warm pass validates nothing.
"""

from __future__ import annotations

from extractor.contract import Fingerprint
from fingerprints import Fingerprinter, Result

MAX_KEPT = 8192
"""Bound on remembered conversions, whatever the pass pattern."""


class Fingerprints:
    """``fingerprint(container_id, pids)`` for the pass, backed by one engine."""

    def __init__(self, proc_root: str) -> None:
        self.engine = Fingerprinter(proc_root)
        self._kept: dict[str, tuple[Result, Fingerprint]] = {}

    def __call__(self, container_id: str, pids: list[int]) -> Fingerprint:
        result = self.engine.fingerprint(container_id, pids)
        kept = self._kept.get(container_id)
        if kept is not None and kept[0] is result:
            return kept[1]
        if len(self._kept) >= MAX_KEPT:
            self._kept.clear()
        model = Fingerprint.model_validate(result.fields())
        self._kept[container_id] = (result, model)
        return model
