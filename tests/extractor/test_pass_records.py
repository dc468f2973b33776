"""A warm Scanner rebuilds only the records that changed: a pod whose counters stood
still is the previous pass's object itself, such a container a copy with only its run
time moved, and what it hands out always equals what a cold pass computes from nothing.

(Memory counters of an idle cgroup may still move: the kernel drains per-CPU charge
stock when other cgroups run on that CPU. So "unchanged" is asserted record by record:
equal to the previous pass's means the same object.)"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from extractor.contract import Snapshot, runtime_seconds
from extractor.hostpaths import HostPaths
from extractor.scanner import Scanner, take_snapshot
from tests.support.kernel import KubeTree, Worker, container_id, hybrid_mounts, pod_uid

pytestmark = pytest.mark.root
PATHS = HostPaths()


@pytest.fixture
def tree() -> Iterator[KubeTree]:
    if os.geteuid() != 0:
        pytest.skip("needs root (real cgroups)")
    made = KubeTree(hybrid_mounts())
    yield made
    made.cleanup()


def ours(snapshot: Snapshot, tree: KubeTree) -> Snapshot:
    """The snapshot's records of this test's tree only (other suites run beside it)."""
    containers = [
        c for c in snapshot.containers if c.usage and c.usage.cgroup.startswith(tree.prefix)
    ]
    uids = {c.pod_uid for c in containers}
    return snapshot.model_copy(
        update={"containers": containers, "pods": [p for p in snapshot.pods if p.uid in uids]}
    )


def without_times(snapshot: Snapshot) -> dict[str, object]:
    """The records but their run times, wall-clock starts (each Scanner puts a start on
    the wall clock with its own reading of both clocks), memory (which moves when idle,
    see above) and when the details were read (a warm Scanner reads them every few
    passes and says when; a cold pass reads them with the rest), and so was the pods'
    network."""
    dumped = snapshot.model_dump(include={"containers", "pods"})
    for c in dumped["containers"]:
        del c["runtime_seconds"], c["started_at"]
    for p in dumped["pods"]:
        del p["network_at"]
    for record in [*dumped["containers"], *dumped["pods"]]:
        if record["usage"] is not None:
            del record["usage"]["memory"], record["usage"]["details_at"]
    return dumped


def idle(workers: list[Worker]) -> None:
    for worker in workers:
        worker.wait_idle()


def test_idle_records_are_reused_and_equal_a_cold_pass(tree: KubeTree) -> None:
    workers = [tree.spawn(tree.container_path(pod_uid(), container_id())) for _ in range(3)]
    idle(workers)
    scanner = Scanner(PATHS)
    try:
        first = ours(scanner.take(), tree)
        second = ours(scanner.take(), tree)
        cold = ours(take_snapshot(PATHS), tree)
    finally:
        scanner.close()
    assert len(second.pods) == 3 and len(second.containers) == 3
    for before, after in zip(first.pods, second.pods, strict=True):
        assert (after is before) == (after == before)
    for earlier, later in zip(first.containers, second.containers, strict=True):
        assert later is not earlier
        assert (later.usage is earlier.usage) == (later.usage == earlier.usage)
    assert without_times(second) == without_times(cold)
    for c in second.containers:
        expected = runtime_seconds(
            second.taken_at, c.started_at, second.taken_boottime, c.started_boottime
        )
        assert c.runtime_seconds == expected
    for earlier, later in zip(first.containers, second.containers, strict=True):
        assert later.started_at == earlier.started_at  # put on the wall clock once


def test_a_changed_container_and_its_pod_are_rebuilt(tree: KubeTree) -> None:
    uid, cid = pod_uid(), container_id()
    path = tree.container_path(uid, cid)
    busy = tree.spawn(path)
    quiet = tree.spawn(tree.container_path(pod_uid(), container_id()))
    idle([busy, quiet])
    scanner = Scanner(PATHS, details_every=1)  # its pids count moves: read it each pass
    try:
        first = ours(scanner.take(), tree)
        busy.burn(0.02)
        extra = tree.spawn(path)  # and a new process in the same container
        extra.wait_idle()
        second = ours(scanner.take(), tree)
        cold = ours(take_snapshot(PATHS), tree)
    finally:
        scanner.close()
    before = {p.uid: p for p in first.pods}
    for pod in second.pods:
        if pod.uid == uid:
            assert pod is not before[pod.uid]
        else:
            assert (pod is before[pod.uid]) == (pod == before[pod.uid])
    (changed,) = [c for c in second.containers if c.id == cid]
    assert changed.pids == sorted([busy.pid, extra.pid])
    (old,) = [c for c in first.containers if c.id == cid]
    assert changed.usage is not old.usage
    assert changed.usage is not None and old.usage is not None
    assert changed.usage.cpu is not None and old.usage.cpu is not None
    assert changed.usage.cpu.usage_ns > old.usage.cpu.usage_ns
    assert without_times(second)["pods"] == without_times(cold)["pods"]
