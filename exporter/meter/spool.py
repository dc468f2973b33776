"""The meter's durable state on a hostPath directory: marks, open windows, unsent events.

Exactly-once hinges on one ordering: the events of a closed window and the state they
were computed up to are made visible together, by one atomic rename of a directory
(after fsync). Crash before the rename: nothing was sent and the window is recomputed
from the old state. Crash after: the directory is there and is resent with the same
event ids, which OpenMeter deduplicates. ``state.json`` carries the state between
windows; every write gets a higher ``version``, and on start the newest of
``state.json`` and the newest pending directory's state wins.

Layout::

    <dir>/lock                        flock: one exporter per spool
    <dir>/state.json                  MeterState, rewritten every poll
    <dir>/pending/<version>/events.json   a closed window's events, not yet delivered
    <dir>/pending/<version>/state.json    the state after it (dropped once state.json is newer)
    <dir>/pending/<version>/sent          ids delivered so far (a crash only resends them)
    <dir>/poison/<name>.json          events never to be sent, with the reason: invalid
                                      against the schema, or refused by OpenMeter for long

Nothing billed is ever dropped: when the pending events reach ``max_bytes`` the spool is
*full* and the meter stops closing windows (its counters keep counting in the open
windows) until delivery makes room. Only a file that cannot be read is set aside (to
``poison/``, counted as dropped), because it can never be sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.meter.accrual import OpenWindow
from exporter.meter.billing import Identity
from exporter.meter.deltas import Marks
from exporter.meter.events import Event

log = logging.getLogger(__name__)


class SpoolError(Exception):
    """The spool directory cannot be used; the message says why."""


class Ledger(BaseModel):
    """What the meter keeps of a pod for its whole life: its identity, once decided, and
    the watcher's whole-second durations carried between windows."""

    model_config = ConfigDict(extra="forbid")

    identity: Identity | None = None
    carried_ns: dict[str, int] = Field(default_factory=dict)


class MeterState(BaseModel):
    """Everything the meter must not forget across a restart."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[2] = 2
    version: int = 0
    marks: Marks = Field(default_factory=Marks)
    open: dict[str, OpenWindow] = Field(default_factory=dict)
    ledgers: dict[str, Ledger] = Field(default_factory=dict)
    window_opened_at: float | None = None
    window_opened_ns: int | None = None


@dataclass(frozen=True)
class Pending:
    """One closed window's undelivered events."""

    version: int
    path: Path
    events: list[Event]


def _state_bytes(state: MeterState) -> bytes:
    """The state as JSON without the fields at their defaults (zeros, empty maps): a node
    of thousands of pods rewrites it every poll."""
    return state.model_dump_json(exclude_defaults=True).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd`` (a write may take less), then to the disk."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write, fsync, rename over ``path``, fsync the directory: all or nothing on disk."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _write(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


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
        self.pending_bytes = 0
        self._state_version = 0
        self._version = 0
        self._sizes: dict[int, int] = {}
        self._recent: tuple[int, list[Event], set[str]] | None = None
        """The window committed last, in memory: delivering it right after the close
        needs no second read of what was just written."""
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

    @property
    def full(self) -> bool:
        """The undelivered events reached the cap: no window may close until they drain."""
        return self.pending_bytes >= self.max_bytes

    # -- start

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
            if leftover.is_dir():  # a write the last process did not finish
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        versions = self._versions()
        for version in reversed(versions):
            path = self._path(version) / "state.json"
            if not path.exists():
                continue
            try:
                newest = MeterState.model_validate_json(path.read_bytes())
            except (OSError, ValidationError, ValueError) as e:
                self._set_aside(path, e)
                continue
            if newest.version > state.version:
                state = newest
            break
        self._version = max([state.version, *versions, 0])
        for version in versions:
            events = self._events(version)
            if events is not None:
                self.pending_count += len(events)
                self._sizes[version] = self._size(version)
        self.pending_bytes = sum(self._sizes.values())
        self.parked_events = self._count_parked()
        return state

    def _count_parked(self) -> int:
        total = 0
        for path in self.poison_dir.glob("*.json"):
            try:
                body = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            if isinstance(body, dict) and isinstance(body.get("events"), list):
                total += len(body["events"])
        return total

    # -- writing

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
        if not events:
            self._write_state(state)
            return state
        tmp = self.pending_dir / f".{state.version:020d}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.mkdir()
            _write(tmp / "events.json", orjson.dumps(events))
            _write(tmp / "state.json", _state_bytes(state))
            _fsync_dir(tmp)
            os.rename(tmp, self._path(state.version))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.pending_dir)
        self._recent = (state.version, events, set())
        self.pending_count += len(events)
        self._sizes[state.version] = self._size(state.version)
        self.pending_bytes = sum(self._sizes.values())
        return state

    def _write_state(self, state: MeterState) -> None:
        write_atomically(self.state_path, _state_bytes(state))
        self._state_version = state.version
        for version in self._sizes:  # their states are older now: only events are kept
            if version <= state.version:
                with contextlib.suppress(FileNotFoundError):
                    (self._path(version) / "state.json").unlink()

    # -- delivering

    def pending(self) -> Iterator[Pending]:
        """Undelivered windows, oldest first, read one at a time."""
        for version in self._versions():
            events = self._events(version)
            if events:
                yield Pending(version, self._path(version), events)
            elif events is not None:
                self._finish(version)
            else:
                self._sizes.pop(version, None)
                self.pending_bytes = sum(self._sizes.values())

    def settle(self, item: Pending, delivered: set[str]) -> None:
        """Note delivered events of ``item``; the directory goes once all are delivered."""
        if not delivered:
            return
        with open(item.path / "sent", "a", encoding="ascii") as f:
            f.write("".join(f"{i}\n" for i in sorted(delivered)))
        if self._recent is not None and self._recent[0] == item.version:
            self._recent[2].update(delivered)
        self.pending_count -= len(delivered)
        if len(delivered) >= len(item.events):
            self._finish(item.version)

    def _finish(self, version: int) -> None:
        path = self._path(version)
        if self._state_version < version and (path / "state.json").exists():
            # never lose the marks: state.json must be at least as new as this window,
            # and the window's own file is that state (fsynced at the commit)
            os.replace(path / "state.json", self.state_path)
            _fsync_dir(self.directory)
            self._state_version = version
        shutil.rmtree(path, ignore_errors=True)
        if self._recent is not None and self._recent[0] == version:
            self._recent = None
        self._sizes.pop(version, None)
        self.pending_bytes = sum(self._sizes.values())

    def park(self, events: list[Event], reason: str) -> Path:
        """Keep events that must never be sent, for a person to look at."""
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        path = self.poison_dir / name
        write_atomically(path, orjson.dumps({"reason": reason, "events": events}))
        self.parked_events += len(events)
        log.error("meter: %d event(s) parked in %s: %s", len(events), path, reason)
        return path

    # -- reading

    def _path(self, version: int) -> Path:
        return self.pending_dir / f"{version:020d}"

    def _versions(self) -> list[int]:
        return sorted(int(p.name) for p in self.pending_dir.iterdir() if p.name.isdigit())

    def _size(self, version: int) -> int:
        try:
            return (self._path(version) / "events.json").stat().st_size
        except OSError:
            return 0

    def _events(self, version: int) -> list[Event] | None:
        """The window's events not yet delivered; None (and set aside) when unreadable."""
        recent = self._recent
        if recent is not None and recent[0] == version:
            return [e for e in recent[1] if e["id"] not in recent[2]] if recent[2] else recent[1]
        path = self._path(version)
        try:
            events: list[Event] = orjson.loads((path / "events.json").read_bytes())
            if not isinstance(events, list):
                raise ValueError("events.json is not a list")
        except (OSError, ValueError) as e:
            self._set_aside(path, e)
            return None
        try:
            sent = set((path / "sent").read_text(encoding="ascii").split())
        except FileNotFoundError:
            return events
        return [e for e in events if e.get("id") not in sent]

    def _set_aside(self, path: Path, err: Exception) -> None:
        """An unreadable file is moved to poison/ (loudly), not crashed on."""
        target = self.poison_dir / f"unreadable-{time.time_ns()}-{path.name}"
        log.error("meter spool %s is unreadable (%s); moved to %s", path, err, target)
        if path.parent == self.pending_dir:
            self.dropped_events += 1  # at least one: its count is unreadable too
        with contextlib.suppress(OSError):
            path.rename(target)
