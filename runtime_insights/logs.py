"""One log format for every long-running command: time, level, component, message.

Why here: the extractor and the exporter import nothing of each other, and a node's
logs are read interleaved (``kubectl logs --all-containers``, ``make run``), so both
must stamp their lines the same way; the command line sets it up before handing off.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged (a test framework may
    swap it), never to a stream captured once and closed since."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return None


def configure(level: int = logging.INFO) -> None:
    """Lines on stderr as ``2026-12-01T10:00:00.123 INFO component: message``."""
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
