"""Where events go without OpenMeter: a JSON-lines file (the default) or standard output.

Why: a meter whose events nobody can see cannot be trusted or debugged. With no
OpenMeter URL, events are delivered to a local file, one CloudEvent per line, through
the same spool as for OpenMeter (so the file gets each window once, or again with the
same ids after a crash: deduplicate by ``id``). The file is rotated at ``max_bytes``
(one older file, ``<path>.1``, is kept), so it never fills the node's disk.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TextIO

import orjson

from exporter.meter.events import Event
from exporter.meter.spool import write_all


def _lines(events: list[Event]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


class FileSink:
    """Appends events to ``path`` as JSON lines, fsynced before ``send`` returns."""

    def __init__(self, path: str | Path, max_bytes: int = 64 << 20) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes

    def describe(self) -> str:
        return f"file {self.path}"

    async def send(self, events: list[Event]) -> None:
        await asyncio.to_thread(self._append, _lines(events))

    def _append(self, data: bytes) -> None:
        try:
            if self.path.stat().st_size + len(data) > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)

    async def aclose(self) -> None:
        return None


class StdoutSink:
    """Writes events to standard output as JSON lines (``kubectl logs`` shows them)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def describe(self) -> str:
        return "standard output"

    async def send(self, events: list[Event]) -> None:
        stream = self.stream or sys.stdout
        stream.write(_lines(events).decode())
        stream.flush()

    async def aclose(self) -> None:
        return None
