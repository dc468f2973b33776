"""Snapshots by difference: what changed since a snapshot the reader already holds.

Why: a node's snapshot is about 900 KB at 1,000 containers, and on a quiet node almost
none of it changes from one poll to the next. So every snapshot the extractor serves has
a *tag*, ``<epoch>.<version>`` (the epoch is random per extractor process, the version
counts its snapshots), and

* ``GET SNAPSHOT_PATH`` answers the whole snapshot with its tag in the ``ETag`` header
  (``If-None-Match`` with the current tag answers 304);
* ``GET CHANGES_PATH?since=<tag>`` answers a :class:`Changes` document: the snapshot's
  own fields (``snapshot``, its record lists left empty) and, for each record list named
  in ``KEYS``, the records that differ from the snapshot tagged ``since`` and the keys of
  those no longer there (a superset: a key the reader does not hold is ignored).
  :func:`apply` on the snapshot held gives exactly what ``GET SNAPSHOT_PATH`` answers for
  the new tag. When the extractor no longer knows
  ``since`` (it restarted, or ``since`` is too old, or absent) the answer is complete:
  ``since`` is null and every record is listed.

Both paths take ``max_age=<seconds>``: the snapshot's pass must have started at most that
long before the request (at most ``FRESH_FLOOR_SECONDS`` is honoured; concurrent
requests share one pass), for a reader that needs the containers running *now*.

Record lists are ordered by their key (``record_key``). ``Container.runtime_seconds`` is derived
(``model.runtime_seconds``), never sent in a ``Changes``: :func:`apply` computes it for
every container, so a container does not count as changed because time passed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from extractor.contract.model import Container, ExitedContainer, Pod, Snapshot, runtime_seconds

KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("id",),
    "pods": ("uid",),
    "exited_pods": ("uid",),
    "exited_containers": ("id", "exited_boottime"),
}
"""Snapshot list field → the record fields that name a record in it (a container may
have ended more than once: each run is its own record)."""
DERIVED: dict[str, frozenset[str]] = {"containers": frozenset({"runtime_seconds"})}
"""Record fields computed from the snapshot instead of sent."""
FRESH_FLOOR_SECONDS = 0.25
"""``max_age`` below this is read as this: a bound on passes, whatever clients ask."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContainerChanges(_Model):
    changed: list[Container] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class PodChanges(_Model):
    changed: list[Pod] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class ExitedContainerChanges(_Model):
    changed: list[ExitedContainer] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class RecordChanges(_Model):
    """One entry per ``KEYS`` list."""

    containers: ContainerChanges = Field(default_factory=ContainerChanges)
    pods: PodChanges = Field(default_factory=PodChanges)
    exited_pods: PodChanges = Field(default_factory=PodChanges)
    exited_containers: ExitedContainerChanges = Field(default_factory=ExitedContainerChanges)


class Changes(_Model):
    """A snapshot as the difference from the one tagged ``since`` (None: complete)."""

    tag: str
    since: str | None
    snapshot: Snapshot = Field(description="every field but the KEYS lists, left empty")
    records: RecordChanges = Field(default_factory=RecordChanges)


class ChangesMismatch(Exception):
    """The changes do not fit the snapshot they are applied to: fetch it whole again."""


def record_key(name: str, record: BaseModel) -> str:
    """The key of ``record`` in list ``name`` of a snapshot: its key fields, in order,
    ``/``-joined (a float as ``repr`` writes it, which reads back the same)."""
    return "/".join(
        value if isinstance(value, str) else repr(value)
        for value in (getattr(record, field) for field in KEYS[name])
    )


def same_record(a: BaseModel, b: BaseModel, derived: frozenset[str] = frozenset()) -> bool:
    """Whether two records say the same, ``derived`` fields aside: field by field, where a
    nested object reused from the previous snapshot compares by identity (cheap)."""
    if type(a) is not type(b) or a.__pydantic_extra__ != b.__pydantic_extra__:
        return False
    other = b.__dict__
    for name, value in a.__dict__.items():
        if name in derived:
            continue
        theirs = other.get(name)
        if value is not theirs and value != theirs:
            return False
    return True


def tag(epoch: str, version: int) -> str:
    return f"{epoch}.{version}"


def parse_tag(text: str | None) -> tuple[str, int] | None:
    """(epoch, version) of a tag; None for anything that is not one."""
    if not text:
        return None
    epoch, dot, version = text.strip().strip('"').rpartition(".")
    if not dot or not epoch or not version.isdigit() or len(version) > 18:
        return None
    return epoch, int(version)


def apply(held: Snapshot | None, changes: Changes) -> Snapshot:
    """The snapshot ``changes`` describes, made from ``held`` (the one tagged
    ``changes.since``) and the records it lists; ``held`` itself is left as it was."""
    complete = changes.since is None
    if not complete and held is None:
        raise ChangesMismatch(f"changes since {changes.since} but no snapshot held")
    lists: dict[str, list[object]] = {}
    for name in KEYS:
        listed = getattr(changes.records, name)
        before: list[object] = [] if complete or held is None else getattr(held, name)
        if not complete and not listed.changed and not listed.removed:
            lists[name] = list(before)
            continue
        records = {record_key(name, r): r for r in before}  # type: ignore[arg-type]
        for gone in listed.removed:
            records.pop(gone, None)
        for record in listed.changed:
            records[record_key(name, record)] = record
        lists[name] = [records[k] for k in sorted(records)]
    taken = changes.snapshot.taken_at
    containers: list[object] = []
    for c in lists["containers"]:
        assert isinstance(c, Container)
        elapsed = runtime_seconds(
            taken, c.started_at, changes.snapshot.taken_boottime, c.started_boottime
        )
        same = c.runtime_seconds == elapsed
        containers.append(c if same else c.model_copy(update={"runtime_seconds": elapsed}))
    lists["containers"] = containers
    return changes.snapshot.model_copy(update=lists)
