"""`runtime-insights extract` against a pod run by the real containerd.

The installed console script reads the host's /proc and cgroups and the fixture
daemon's task bundles; everything it reports is checked against the fixture's own ids
and the kernel's counters read here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
import orjson
import pytest

from extractor.contract import Snapshot
from tests.support.containerd import Containerd, ContainerdPod

pytestmark = [pytest.mark.root, pytest.mark.containerd]

CLI = os.path.join(os.path.dirname(sys.executable), "runtime-insights")
HOST = ["--proc-root", "/proc", "--cgroup-root", "/sys/fs/cgroup"]


def cpuacct_ns(cgroup: str) -> int:
    with open(f"/sys/fs/cgroup/cpuacct{cgroup}/cpuacct.usage", encoding="ascii") as f:
        return int(f.read())


def extract(pod: ContainerdPod, fmt: str = "json") -> str:
    argv = [CLI, "extract", "--format", fmt, "--containerd-state", pod.task_root, *HOST]
    proc = subprocess.run(
        [*argv, "--no-fingerprints"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def reported(containerd_pod: ContainerdPod) -> tuple[dict[str, Any], int]:
    """The extract output, and the burner's kernel CPU counter read just before it."""
    burned = cpuacct_ns(containerd_pod.cgroup_paths[containerd_pod.containers["burner"]])
    return orjson.loads(extract(containerd_pod)), burned


def pod_view(document: dict[str, Any], pod: ContainerdPod) -> dict[str, Any]:
    view: dict[str, Any] = document["namespaces"][pod.namespace][pod.pod_name]
    return view


def test_pod_is_under_its_namespace_and_name(
    reported: tuple[dict[str, Any], int], containerd_pod: ContainerdPod
) -> None:
    view = pod_view(reported[0], containerd_pod)
    assert view["uid"] == containerd_pod.pod_uid
    assert view["name"] == containerd_pod.pod_name
    assert view["namespace"] == containerd_pod.namespace
    assert view["qos"] == containerd_pod.qos


def test_app_containers_have_names_and_ids_and_sandbox_is_apart(
    reported: tuple[dict[str, Any], int], containerd_pod: ContainerdPod
) -> None:
    view = pod_view(reported[0], containerd_pod)
    ids = {name: c["id"] for name, c in view["containers"].items()}
    assert ids == containerd_pod.containers
    assert view["sandbox"]["id"] == containerd_pod.sandbox_id
    with open(f"/proc/{containerd_pod.pids[containerd_pod.sandbox_id]}/comm") as f:
        assert f.read().strip() == "pause"  # what a real pause image's process is called
    assert containerd_pod.pids[containerd_pod.sandbox_id] in view["sandbox"]["pids"]
    for name, cid in containerd_pod.containers.items():
        container = view["containers"][name]
        assert container["name"] == name
        assert container["runtime"] == "containerd"
        assert container["image"] == "docker.io/library/busybox:1.35"
        assert containerd_pod.pids[cid] in container["pids"]


def test_burner_cpu_is_at_least_what_the_kernel_counted_before(
    reported: tuple[dict[str, Any], int], containerd_pod: ContainerdPod
) -> None:
    document, burned_before = reported
    cgroup = containerd_pod.cgroup_paths[containerd_pod.containers["burner"]]
    burned_after = cpuacct_ns(cgroup)
    burner = pod_view(document, containerd_pod)["containers"]["burner"]
    assert burned_before > 0
    assert burned_before / 1e9 <= burner["cpu"]["totalSeconds"] <= burned_after / 1e9
    assert burner["cgroup"] == cgroup


def test_memory_is_within_the_kernels_peak(
    reported: tuple[dict[str, Any], int], containerd_pod: ContainerdPod
) -> None:
    view = pod_view(reported[0], containerd_pod)
    for name, cid in containerd_pod.containers.items():
        path = f"/sys/fs/cgroup/memory{containerd_pod.cgroup_paths[cid]}/memory.max_usage_in_bytes"
        with open(path, encoding="ascii") as f:
            peak = int(f.read())
        container = view["containers"][name]
        memory = container["memory"]
        assert 0 < memory["workingSetBytes"] <= memory["currentBytes"] <= peak
        assert container["runtimeSeconds"] > 0
        assert container["startedAt"] <= reported[0]["takenAt"]


def test_pod_cpu_includes_its_containers(
    reported: tuple[dict[str, Any], int], containerd_pod: ContainerdPod
) -> None:
    view = pod_view(reported[0], containerd_pod)
    containers_cpu = sum(c["cpu"]["totalSeconds"] for c in view["containers"].values())
    assert view["cpu"]["totalSeconds"] >= containers_cpu
    assert view["cpu"]["totalSeconds"] <= cpuacct_ns(containerd_pod.pod_cgroup) / 1e9


def test_table_lists_the_app_containers(containerd_pod: ContainerdPod) -> None:
    lines = extract(containerd_pod, "table").splitlines()
    header = lines[0].split()
    assert header[:4] == ["NAMESPACE", "POD", "CONTAINER", "ID"]
    ours = [line.split() for line in lines if containerd_pod.pod_name in line.split()[1:2]]
    assert sorted((r[2], r[3]) for r in ours) == sorted(
        (name, cid[:12]) for name, cid in containerd_pod.containers.items()
    )


def test_fixture_tears_down() -> None:
    """A second daemon started and closed here leaves no task, cgroup or process behind."""
    with tempfile.TemporaryDirectory(prefix="ri-ctd-", dir="/tmp") as base:
        daemon = Containerd.start(base)
        try:
            pod = daemon.run_pod("ns1", "p1", {"c": ["/bin/sleep", "1000"]})
            pids = list(pod.pids.values())
            assert all(os.path.exists(f"/proc/{p}") for p in pids)
        finally:
            daemon.close()
        assert not any(os.path.exists(f"/proc/{p}") for p in pids)
        for hierarchy in ("cpuacct", "memory", "pids", "unified"):
            assert not os.path.exists(f"/sys/fs/cgroup/{hierarchy}{daemon.cgroup_prefix}")


def test_serve_labels_the_pod_over_the_socket(containerd_pod: ContainerdPod) -> None:
    """The extractor server's snapshot (fingerprints on) names the fixture pod's containers."""
    with tempfile.TemporaryDirectory(prefix="ri-srv-") as tmp:
        sock = os.path.join(tmp, "s.sock")
        argv = [CLI, "extractor", "serve", "--socket", sock, *HOST]
        proc = subprocess.Popen([*argv, "--containerd-state", containerd_pod.task_root])
        try:
            for _ in range(3000):
                if os.path.exists(sock) or proc.poll() is not None:
                    break
                time.sleep(0.01)
            transport = httpx.HTTPTransport(uds=sock)
            with httpx.Client(transport=transport, base_url="http://x", timeout=60) as client:
                snapshot = Snapshot.model_validate_json(client.get("/v1/snapshot").content)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ours = {c.id: c for c in snapshot.containers if c.pod_uid == containerd_pod.pod_uid}
    assert set(ours) == {containerd_pod.sandbox_id, *containerd_pod.containers.values()}
    assert ours[containerd_pod.sandbox_id].sandbox
    for name, cid in containerd_pod.containers.items():
        c = ours[cid]
        assert (c.name, c.namespace, c.pod_name) == (name, "default", "ri-demo")
        assert not c.sandbox and c.sandbox_id == containerd_pod.sandbox_id
        assert c.fingerprint is not None and c.fingerprint.error is None
    (pod,) = (p for p in snapshot.pods if p.uid == containerd_pod.pod_uid)
    assert (pod.namespace, pod.name, pod.qos) == ("default", "ri-demo", "burstable")
    assert proc.returncode == 0
