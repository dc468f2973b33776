"""The extractor's side of snapshots by difference (``extractor/contract/changes.py``).

Each pass's snapshot is recorded once: every record of a ``KEYS`` list is compared with
the previous pass's record of the same key (the scanner hands back the very same nested
objects when nothing changed, so this is mostly identity checks) and encoded only when
it differs, remembering the version at which it last changed; keys that disappear are
remembered with the version they went at, for ``HISTORY`` versions. A reader that holds
version *b* then gets the records changed after *b* and the keys removed after *b*, as
bytes already encoded. The whole snapshot is encoded only when someone asks for it.

A recorded version is an immutable :class:`Served`: the server hands it to requests
while the next pass is recorded beside it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import orjson
from pydantic import BaseModel

from extractor.contract import (
    DERIVED,
    KEYS,
    Snapshot,
    parse_tag,
    record_key,
    same_record,
    tag,
)

HISTORY = 1024
"""Versions a reader may lag behind and still get a difference (about three hours of
polls every ten seconds); further back it gets a complete answer."""


@dataclass(frozen=True, slots=True)
class _Entry:
    body: bytes
    changed: int
    """The version at which the record last changed."""
    added: int
    """The first version the key was present at, gaps included (while in the history):
    a reader holding a version from then on may hold the record."""


@dataclass
class Served:
    """One recorded snapshot and what is needed to answer for it."""

    snapshot: Snapshot
    epoch: str
    version: int
    oldest: int
    """The oldest version a difference can start from."""
    entries: dict[str, dict[str, _Entry]]
    removed: dict[str, dict[str, tuple[int, int]]]
    """Keys gone lately: (the first version they were present at, the version they went
    at). A reader holding a version in between may hold them, so it is told."""
    _full: bytes | None = None
    _changes: dict[int | None, bytes] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return tag(self.epoch, self.version)

    def full(self) -> bytes:
        """The whole snapshot as JSON, encoded on first use."""
        if self._full is None:
            self._full = self.snapshot.model_dump_json().encode()
        return self._full

    def changes(self, since: str | None) -> bytes:
        """The ``Changes`` document from the version tagged ``since``: a difference when
        this journal still knows it, else complete."""
        parsed = parse_tag(since)
        base = None
        if parsed is not None and parsed[0] == self.epoch and self.oldest <= parsed[1]:
            base = parsed[1] if parsed[1] <= self.version else None
        body = self._changes.get(base)
        if body is None:
            body = self._encode(base)
            if len(self._changes) < 8:
                self._changes[base] = body
        return body

    def _encode(self, base: int | None) -> bytes:
        after = 0 if base is None else base
        lists: list[bytes] = []
        for name in KEYS:
            changed = b",".join(e.body for e in self.entries[name].values() if e.changed > after)
            removed = self.removed[name].items() if base is not None else ()
            gone = [k for k, (added, went) in removed if added <= after < went]
            lists.append(
                b'"%s":{"changed":[%s],"removed":%s}' % (name.encode(), changed, orjson.dumps(gone))
            )
        header = self.snapshot.model_dump_json(exclude=set(KEYS)).encode()
        since = orjson.dumps(None if base is None else tag(self.epoch, base))
        return b'{"tag":%s,"since":%s,"snapshot":%s,"records":{%s}}' % (
            orjson.dumps(self.tag),
            since,
            header,
            b",".join(lists),
        )


class Journal:
    """Records snapshots one after another; ``current`` is the latest, or None."""

    def __init__(self, history: int = HISTORY, epoch: str | None = None) -> None:
        self.epoch = epoch or secrets.token_hex(6)
        self.history = history
        self.current: Served | None = None
        self._records: dict[str, dict[str, BaseModel]] = {name: {} for name in KEYS}
        self._removed: dict[str, dict[str, tuple[int, int]]] = {name: {} for name in KEYS}
        self.encoded = 0
        """Records encoded by the last ``record``: what changed in that pass."""

    def record(self, snapshot: Snapshot) -> Served:
        previous = self.current
        version = previous.version + 1 if previous is not None else 1
        oldest = max(version - self.history, 1)
        entries: dict[str, dict[str, _Entry]] = {}
        removed: dict[str, dict[str, tuple[int, int]]] = {}
        encoded = 0
        for name in KEYS:
            derived = DERIVED.get(name, frozenset())
            exclude = set(derived) or None
            old_entries = previous.entries[name] if previous is not None else {}
            old_records = self._records[name]
            records: dict[str, BaseModel] = {}
            now: dict[str, _Entry] = {}
            for record in getattr(snapshot, name):
                k = record_key(name, record)
                entry = old_entries.get(k)
                known = old_records.get(k)
                if entry is not None and known is not None and same_record(known, record, derived):
                    now[k] = entry
                else:
                    body = record.model_dump_json(exclude=exclude).encode()
                    encoded += 1
                    if entry is None:
                        back = self._removed[name].get(k)
                        entry = _Entry(body, version, back[0] if back else version)
                    elif entry.body != body:
                        entry = _Entry(body, version, entry.added)
                    now[k] = entry
                records[k] = record
            gone = self._removed[name]
            for k in old_entries.keys() - now.keys():
                gone[k] = (old_entries[k].added, version)
            for k in [k for k, (_, went) in gone.items() if k in now or went <= oldest]:
                del gone[k]
            entries[name], removed[name] = now, dict(gone)
            self._records[name] = records
        self.encoded = encoded
        self.current = Served(snapshot, self.epoch, version, oldest, entries, removed)
        return self.current
