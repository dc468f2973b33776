"""The extractor mounts only what it reads, and never a directory holding a socket.

A unix socket stays connectable on a read-only mount, and uid 0 owns containerd.sock and
the shims' sockets (connect needs write permission, which owner bits give root even
without CAP_DAC_OVERRIDE): a directory with one in it would hand the node's runtime to a
compromised extractor. Checked on this machine's layout while the test's containerd runs
containers (its shims put their sockets in /run/containerd/s, wherever its state is), for
every extractor hostPath of the kustomize base and of the Helm chart's every switch.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any

import pytest

from runtime_insights.cli import build_parser
from tests.manifests.kustomize import build
from tests.manifests.test_helm_chart import SWITCHES, render
from tests.support.containerd import Containerd, ContainerdPod
from tests.support.paths import REPO_ROOT

Obj = dict[str, Any]
TASKS = "/run/containerd/io.containerd.runtime.v2.task"
RUNTIME_SOCKETS = (
    "/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock.ttrpc",
    "/run/containerd/s",  # the shims' sockets
    "/run/crio/crio.sock",
    "/var/run/crio/crio.sock",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/cri-dockerd.sock",
)
"""Where the runtimes listen by default (their documentation and packaging)."""


def _extractor_host_paths(objects: list[Obj]) -> dict[str, str]:
    """mountPath -> hostPath of every hostPath volume the extractor mounts."""
    (daemonset,) = [o for o in objects if o["kind"] == "DaemonSet"]
    spec = daemonset["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    (extractor,) = [c for c in spec["containers"] if c["name"] == "extractor"]
    return {m["mountPath"]: host[m["name"]] for m in extractor["volumeMounts"] if m["name"] in host}


def _renderings() -> Iterator[tuple[str, list[Obj]]]:
    yield "manifests", build(REPO_ROOT / "manifests")
    for name, values in SWITCHES.items():
        yield f"chart-{name}", render(values)


def _sockets(top: str) -> list[str]:
    """Every socket at or below ``top`` (lstat: symlinks are not followed)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top, onerror=None, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            try:
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    found.append(path)
            except OSError:
                continue
    return found


def _on_this_machine(host_path: str, daemon: Containerd) -> list[str]:
    """Where ``host_path`` is here: the real path, and the test containerd's equivalent."""
    here = [host_path]
    if host_path.startswith(TASKS):
        here.append(daemon.task_root + host_path.removeprefix(TASKS))
    return [p for p in here if os.path.isdir(p)]


@pytest.mark.parametrize(("name", "objects"), list(_renderings()), ids=lambda v: str(v)[:40])
def test_no_extractor_host_path_holds_a_runtime_socket(name: str, objects: list[Obj]) -> None:
    for host_path in _extractor_host_paths(objects).values():
        for sock in RUNTIME_SOCKETS:
            assert not (sock + "/").startswith(host_path.rstrip("/") + "/"), (name, host_path)


@pytest.mark.root
@pytest.mark.containerd
def test_no_extractor_host_path_contains_a_socket_here(
    containerd: Containerd, containerd_pod: ContainerdPod
) -> None:
    """With the test's containers running, walk every extractor hostPath as it is on this
    machine. The directory the extractor used to mount, /run/containerd, must show why:
    it holds the running shims' sockets."""
    shim_sockets = _sockets("/run/containerd")
    assert shim_sockets, "no shim socket under /run/containerd: the check below proves nothing"
    checked = 0
    for name, objects in _renderings():
        for host_path in _extractor_host_paths(objects).values():
            if host_path == "/sys/fs/cgroup":
                continue  # cgroupfs cannot hold a socket (and walking it is slow here)
            for path in _on_this_machine(host_path, containerd):
                assert _sockets(path) == [], (name, host_path, path)
                checked += 1
    assert checked, "no extractor hostPath exists on this machine"
    assert os.listdir(containerd.task_root), "the test containerd has no task bundles"


def test_the_extractor_reads_below_its_mounts_only() -> None:
    """Each state directory the extractor is told to read is at or below a read-only
    hostPath mount of it, so the narrower mounts still cover what it reads."""
    for name, objects in _renderings():
        (daemonset,) = [o for o in objects if o["kind"] == "DaemonSet"]
        spec = daemonset["spec"]["template"]["spec"]
        (extractor,) = [c for c in spec["containers"] if c["name"] == "extractor"]
        args = build_parser().parse_args(extractor["args"])
        read_only = {m["mountPath"] for m in extractor["volumeMounts"] if m.get("readOnly")}
        for state in args.containerd_state:
            assert any((state + "/").startswith(m + "/") for m in read_only), (name, state)
        for state in args.crio_state:
            # CRI-O's state root: the extractor reads <root>/overlay-containers/<id>/userdata
            reads = f"{state}/overlay-containers"
            assert any((reads + "/").startswith(m + "/") for m in read_only), (name, state)
        assert args.cgroup_root in read_only, name
