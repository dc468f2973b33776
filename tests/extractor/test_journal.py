"""Snapshots by difference: whatever happened between two snapshots, a reader holding the
older one and applying the changes gets exactly the newer one, as GET /v1/snapshot
answers it; an unchanged record is never sent again."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.contract import (
    Changes,
    Container,
    Cpu,
    ExitedContainer,
    Pod,
    Snapshot,
    Usage,
    apply,
    record_key,
    runtime_seconds,
    tag,
)
from extractor.journal import Journal

T0 = 1_700_000_000.0
IDS = [f"{i:064x}" for i in range(12)]
UIDS = [f"00000000-0000-0000-0000-{i:012x}" for i in range(6)]


def container(cid: str, cpu: int, pids: int, taken_at: float) -> Container:
    uid = UIDS[int(cid, 16) % len(UIDS)]
    started = T0 - 600.0 - int(cid, 16)
    return Container(
        id=cid,
        runtime="containerd",
        name=f"c{int(cid, 16)}",
        pod_uid=uid,
        pids=list(range(1, pids + 1)),
        started_at=started,
        runtime_seconds=runtime_seconds(taken_at, started),
        usage=Usage(cgroup=f"/kubepods/pod{uid}/{cid}", cpu=Cpu(usage_ns=cpu)),
    )


def pod(uid: str, cpu: int, exited: bool = False) -> Pod:
    return Pod(
        uid=uid,
        usage=Usage(cgroup=f"/kubepods/pod{uid}", cpu=Cpu(usage_ns=cpu)),
        exited_at=T0 if exited else None,
    )


# One node state: containers (id → cpu, processes), pods (uid → cpu), exited pods, errors,
# ended container runs (id, when: one container may have ended more than once).
NodeState = tuple[
    dict[str, tuple[int, int]], dict[str, int], list[str], list[str], list[tuple[str, int]]
]
states = st.lists(
    st.tuples(
        st.dictionaries(
            st.sampled_from(IDS), st.tuples(st.integers(0, 3), st.integers(1, 3)), max_size=8
        ),
        st.dictionaries(st.sampled_from(UIDS), st.integers(0, 3), max_size=4),
        st.lists(st.sampled_from(UIDS), max_size=2, unique=True),
        st.lists(st.text(max_size=5), max_size=2),
        st.lists(st.tuples(st.sampled_from(IDS[:3]), st.integers(0, 2)), max_size=4, unique=True),
    ),
    min_size=1,
    max_size=8,
)


def snapshot_of(
    n: int,
    containers: dict[str, tuple[int, int]],
    pods: dict[str, int],
    exited: list[str],
    errors: list[str],
    ended: list[tuple[str, int]],
) -> Snapshot:
    taken = T0 + 10.0 * n
    return Snapshot(
        node="node-a",
        taken_at=taken,
        cgroup_version="hybrid",
        containers=[container(c, *containers[c], taken) for c in sorted(containers)],
        pods=[pod(u, pods[u]) for u in sorted(pods)],
        exited_pods=[pod(u, 7, exited=True) for u in sorted(exited) if u not in pods],
        exited_containers=sorted(
            (
                ExitedContainer(
                    id=c,
                    pod_uid=UIDS[0],
                    exited_at=T0 + when,
                    exited_boottime=100.0 + when / 3,
                    usage=Usage(cgroup=f"/kubepods/{c}", cpu=Cpu(usage_ns=when)),
                )
                for c, when in ended
            ),
            key=lambda e: record_key("exited_containers", e),
        ),
        errors=errors,
    )


def changes(served_changes: bytes) -> Changes:
    return Changes.model_validate_json(served_changes)


@settings(max_examples=150, deadline=None)
@given(states)
def test_any_held_snapshot_plus_changes_is_the_latest(history: list[NodeState]) -> None:
    journal = Journal(history=4)
    held: list[tuple[str, Snapshot]] = []
    for n, state in enumerate(history):
        snap = snapshot_of(n, *state)
        served = journal.record(snap)
        whole = Snapshot.model_validate_json(served.full())
        assert whole == snap
        assert apply(None, changes(served.changes(None))) == whole
        for older_tag, older in held:
            got = changes(served.changes(older_tag))
            assert apply(older if got.since == older_tag else None, got) == whole
        held.append((served.tag, whole))


def test_an_unchanged_record_is_not_sent_again() -> None:
    journal = Journal()
    containers = {IDS[0]: (5, 2), IDS[1]: (9, 1)}
    first = journal.record(snapshot_of(0, containers, {UIDS[0]: 3}, [], [], []))
    containers[IDS[1]] = (10, 1)
    second = journal.record(snapshot_of(1, containers, {UIDS[0]: 3}, [], [], []))
    got = changes(second.changes(first.tag))
    assert got.since == first.tag and got.tag == second.tag
    assert [c.id for c in got.records.containers.changed] == [IDS[1]]
    assert got.records.pods.changed == [] and got.records.containers.removed == []
    assert journal.encoded == 1  # the other container and the pod: not even encoded


def test_time_passing_changes_no_record_and_runtime_seconds_is_never_sent() -> None:
    """Every container's run time grows each pass; it is derived, so a quiet node's
    changes are its header alone."""
    journal = Journal()
    state: NodeState = ({c: (1, 1) for c in IDS}, {u: 1 for u in UIDS}, [], [], [])
    first = journal.record(snapshot_of(0, *state))
    second = journal.record(snapshot_of(1, *state))
    quiet = second.changes(first.tag)
    assert b"runtime_seconds" not in quiet
    assert len(quiet) < len(second.full()) / 10
    doc = orjson.loads(quiet)
    assert all(not r["changed"] and not r["removed"] for r in doc["records"].values())
    applied = apply(Snapshot.model_validate_json(first.full()), Changes.model_validate_json(quiet))
    assert applied == second.snapshot
    complete = orjson.loads(second.changes(None))
    assert all("runtime_seconds" not in c for c in complete["records"]["containers"]["changed"])


def test_a_tag_from_another_epoch_or_too_old_gets_a_complete_answer() -> None:
    journal = Journal(history=2, epoch="abc")
    state: NodeState = ({IDS[0]: (1, 1)}, {}, [], [], [])
    tags = [journal.record(snapshot_of(n, *state)).tag for n in range(5)]
    served = journal.current
    assert served is not None
    assert changes(served.changes(tags[3])).since == tags[3]
    for stale in (tags[0], tag("other", 4), "garbage", "abc.99", None):
        got = changes(served.changes(stale))
        assert got.since is None and [c.id for c in got.records.containers.changed] == [IDS[0]]
