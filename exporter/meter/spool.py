"""The meter's durable state on a hostPath directory: marks, open windows, unsent events.

Exactly-once hinges on one ordering: the events of a closed window and the marks they
were computed up to are written together, in one file made visible by one atomic
rename (after fsync). Crash before the rename: nothing was sent and the window is
recomputed from the old marks. Crash after: the file is there and is resent with the
same event ids, which OpenMeter deduplicates. ``state.json`` carries the marks between
windows; every write gets a higher ``version``, and on start the newest of
``state.json`` and the pending files wins.

Layout::

    <dir>/lock                   flock: one exporter per spool
    <dir>/state.json             MeterState (marks + open windows), rewritten every poll
    <dir>/pending/<version>.json {"version", "state", "events"}: closed, not yet delivered
    <dir>/poison/<name>.json     batches OpenMeter rejected as invalid (400), kept for people

The pending files are capped at ``max_bytes``: beyond it the oldest are dropped, counted
and logged at ERROR, because a full disk would stop metering for everyone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.meter.accrual import OpenWindow
from exporter.meter.deltas import Marks
from exporter.meter.events import Event

log = logging.getLogger(__name__)


class SpoolError(Exception):
    """The spool directory cannot be used; the message says why."""


class MeterState(BaseModel):
    """Everything the meter must not forget across a restart."""

    model_config = ConfigDict(extra="forbid")

    version: int = 0
    marks: Marks = Field(default_factory=Marks)
    open: dict[str, OpenWindow] = Field(default_factory=dict)
    window_opened_at: float | None = None


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    state: MeterState
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class Pending:
    """One closed window's undelivered events."""

    version: int
    path: Path
    events: list[Event]


def write_atomically(path: Path, data: bytes) -> None:
    """Write, fsync, rename over ``path``, fsync the directory: all or nothing on disk."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Spool:
    """One meter's directory; hold it open (``close()`` when done) for its lock."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.pending_dir = self.directory / "pending"
        self.poison_dir = self.directory / "poison"
        self.state_path = self.directory / "state.json"
        self.dropped_events = 0
        self.parked_events = 0
        self.pending_count = 0
        self._state_version = 0
        self._version = 0
        try:
            for d in (self.pending_dir, self.poison_dir):
                d.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise SpoolError(f"meter spool {self.directory}: {e.strerror or e}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            raise SpoolError(
                f"meter spool {self.directory} is in use by another exporter"
            ) from None

    def close(self) -> None:
        os.close(self._lock)

    def load(self) -> MeterState:
        """The newest state on disk (a fresh one if there is none)."""
        state = MeterState()
        if self.state_path.exists():
            try:
                state = MeterState.model_validate_json(self.state_path.read_bytes())
            except (OSError, ValidationError, ValueError) as e:
                self._set_aside(self.state_path, e)
        self._state_version = state.version
        for leftover in [*self.directory.glob(".*.tmp"), *self.pending_dir.glob(".*.tmp")]:
            leftover.unlink(missing_ok=True)  # a write the last process did not finish
        records = self._records()
        for record in records:
            if record.state.version > state.version:
                state = record.state
        self._version = max(state.version, *(r.version for r in records), 0)
        self.pending_count = sum(len(r.events) for r in records)
        return state

    def save(self, state: MeterState) -> MeterState:
        """Persist the marks and open windows; returns the state with its new version."""
        self._version += 1
        state = state.model_copy(update={"version": self._version})
        self._write_state(state)
        return state

    def commit(self, events: list[Event], state: MeterState) -> MeterState:
        """Make a closed window's events and the state after it durable, in one rename."""
        self._version += 1
        state = state.model_copy(update={"version": self._version})
        if events:
            record = {"version": state.version, "state": state.model_dump(), "events": events}
            write_atomically(self.pending_dir / f"{state.version:020d}.json", orjson.dumps(record))
            self.pending_count += len(events)
        try:
            self._write_state(state)
        except OSError as e:  # the pending file holds this state too: not fatal
            log.warning("meter state not saved (%s); the pending window file has it", e)
        self._enforce_cap()
        return state

    def pending(self) -> list[Pending]:
        """Undelivered windows, oldest first."""
        return [Pending(r.version, self._path(r.version), r.events) for r in self._records()]

    def settle(self, item: Pending, delivered: set[str]) -> None:
        """Forget delivered events of ``item``; the file goes once all are delivered."""
        try:
            record = _Record.model_validate_json(item.path.read_bytes())
        except FileNotFoundError:  # dropped by the size cap while it was being sent
            return
        left = [e for e in record.events if e.get("id") not in delivered]
        if len(left) == len(record.events):
            return
        self.pending_count -= len(record.events) - len(left)
        if left:
            record.events = left
            write_atomically(item.path, record.model_dump_json().encode())
            return
        if self._state_version < record.version:
            # never lose the marks: state.json must be at least as new as this file
            self._write_state(record.state)
        item.path.unlink(missing_ok=True)

    def park(self, events: list[Event], reason: str) -> None:
        """Keep events OpenMeter rejected, for a person to look at; never resent."""
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        write_atomically(self.poison_dir / name, orjson.dumps({"reason": reason, "events": events}))
        self.parked_events += len(events)
        log.error("OpenMeter rejected %d event(s), parked in %s: %s", len(events), name, reason)

    def _write_state(self, state: MeterState) -> None:
        write_atomically(self.state_path, state.model_dump_json().encode())
        self._state_version = state.version

    def _path(self, version: int) -> Path:
        return self.pending_dir / f"{version:020d}.json"

    def _records(self) -> list[_Record]:
        out: list[_Record] = []
        for path in sorted(self.pending_dir.glob("*.json")):
            try:
                out.append(_Record.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError, ValueError) as e:
                self._set_aside(path, e)
        return out

    def _set_aside(self, path: Path, err: Exception) -> None:
        """An unreadable file is moved to poison/ (loudly), not crashed on."""
        target = self.poison_dir / f"unreadable-{time.time_ns()}-{path.name}"
        log.error("meter spool file %s is unreadable (%s); moved to %s", path, err, target)
        with contextlib.suppress(OSError):
            path.rename(target)

    def _enforce_cap(self) -> None:
        files = sorted(self.pending_dir.glob("*.json"))
        sizes = {p: p.stat().st_size for p in files}
        total = sum(sizes.values())
        for path in files:
            if total <= self.max_bytes:
                return
            try:
                record = _Record.model_validate_json(path.read_bytes())
            except (OSError, ValidationError, ValueError) as e:
                self._set_aside(path, e)
                total -= sizes[path]
                continue
            if self._state_version < record.version:
                self._write_state(record.state)
            path.unlink(missing_ok=True)
            total -= sizes[path]
            self.dropped_events += len(record.events)
            self.pending_count -= len(record.events)
            log.error(
                "meter spool over %d bytes: dropped %d undelivered event(s) of window %d; "
                "OpenMeter has been unreachable for too long",
                self.max_bytes,
                len(record.events),
                record.version,
            )
