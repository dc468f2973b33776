"""Metering real kernel counters: a container burns CPU and exits between two passes.

The runtime removes an exited container's cgroup, so its last CPU is only in the pod's
cgroup (docs/cgroups.md, "Counters that reset or vanish"). The bill for the window must
equal the pod cgroup's counter change exactly, read from the kernel in this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.kube.podmeta import ContainerStatus, PodMeta
from exporter.meter.client import OpenMeterClient
from exporter.meter.pipeline import Meter
from exporter.meter.spool import Spool
from extractor.hostpaths import HostPaths
from extractor.scanner import take_snapshot
from tests.support.kernel import (
    UNIFIED,
    KubeTree,
    container_id,
    pod_uid,
    v1_mounts,
    v2_mounts,
)
from tests.support.openmeter import FakeOpenMeter

pytestmark = pytest.mark.root


@pytest.fixture(params=["v1", "v2"])
def tree(request: pytest.FixtureRequest) -> Iterator[KubeTree]:
    if request.param == "v1":
        t = KubeTree(v1_mounts(), driver="cgroupfs")
    else:
        t = KubeTree(v2_mounts(), driver="systemd")
    yield t
    t.cleanup()


async def test_a_container_that_exits_between_passes_is_billed_exactly(
    tree: KubeTree, tmp_path: Path
) -> None:
    paths = HostPaths(
        proc_root="/proc",
        cgroup_root=UNIFIED if "cpuacct" not in tree.mounts else "/sys/fs/cgroup",
    )
    uid, app_id, job_id = pod_uid(), container_id(), container_id()
    tree.spawn(tree.container_path(uid, app_id)).burn(0.05)
    job = tree.spawn(tree.container_path(uid, job_id))
    job.burn(0.0)  # its interpreter has started and sleeps: the pod counter stands still
    meta = PodMeta(
        uid=uid,
        cgroup_uid=uid,
        namespace="batch",
        name="report-1",
        annotations={"openmeter.io/subject": "customer-7"},
        containers=[
            ContainerStatus(name="app", container_id=app_id),
            ContainerStatus(name="job", container_id=job_id),
        ],
    )
    async with FakeOpenMeter(token="t") as om:
        client = OpenMeterClient(om.url, token=lambda: "t")
        m = Meter(Spool(tmp_path, 1 << 20), client, interval_seconds=0.001)
        before = tree.pod_cpu_ns(uid)  # both workers idle: the counter stands still
        m.observe(take_snapshot(paths), lambda u: meta if u == uid else None)
        burned = job.burn(0.3)
        job.stop()
        tree.remove(tree.container_path(uid, job_id))  # what the runtime does at exit
        m.observe(take_snapshot(paths), lambda u: meta if u == uid else None)
        after = tree.pod_cpu_ns(uid)
        assert await m.deliver_once()
        await m.stop()
    (event,) = [e for e in om.events.values() if e["data"]["pod_uid"] == uid]
    data = event["data"]
    assert event["subject"] == "customer-7"
    assert data["cpu_ns"] == after - before
    assert data["cpu_ns"] >= burned
    # the exited container gets the pod's CPU its own (removed) cgroup can no longer show
    assert data["containers"]["job"] == data["cpu_ns"] - data["containers"].get("app", 0)
    assert data["containers"]["job"] >= burned
