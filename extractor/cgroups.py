"""Cgroup path → (runtime, container id, pod UID, QoS), read from the path alone.

Discovery sees a cgroup path for every process on the node and must tell containers from
host processes without asking any runtime. The path is all it has, and it comes in many
shapes: systemd or cgroupfs drivers, cgroup v1/v2/hybrid, containerd, CRI-O, docker,
podman, nerdctl, nested nodes (kind, minikube, dind, EKS Fargate), custom kubelet roots
and paths relative to another cgroup namespace. The rules (shared/reference/cgroups.md §4):

* the innermost container component wins, so a kind node's own docker scope never hides
  the pod container inside it; components below it (crun's ``/container``) belong to it,
  so a kind/minikube node's own services (kubelet, containerd) report the node container;
* the search stops at the innermost pod or ``kubepods`` component: a pod or QoS slice is
  not a container, and neither is anything found only above it;
* ``.mount`` units and conmon scopes carry an ID but are not containers;
* a runtime ID is exactly 64 lower-case hex; a name that merely contains one is not;
* a bare 64-hex ID is ``docker`` under ``docker``/``actions_job`` and ``unknown``
  elsewhere: containerd and cri-dockerd (cgroupfs driver) look identical, so the discovery
  layer resolves it from the node's runtime state;
* any other name directly under a pod (UUID-named containers, other runtimes) is a
  container of runtime ``unknown`` with that name as its id, because kubelet puts
  nothing but containers there; names with a known runtime prefix but a malformed ID
  are rejected instead;
* a pod needs a ``kubepods`` context; systemd-escaped UIDs (``_``) get their dashes
  back, 32-hex static-pod hashes stay as they are, ``\\x2d`` units are never pods;
* ``sandbox`` is set only where the path says so: CRI-O's systemd driver names the infra
  container ``crio-<id>`` without ``.scope``;
* ``/ecs/…/<task32hex>-<n>`` (ECS) and ``/default/<name>``, ``/k8s.io/<name>`` (containerd
  namespaces of ``ctr``/nerdctl with cgroupfs) are the only non-hex ids outside a pod.

Parsing never raises: any text gives a :class:`CgroupIdentity`, garbage (including a
malformed ``/proc`` line such as ``a:name=systemd:/…``) gives all None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Runtime = Literal["containerd", "crio", "docker", "podman", "unknown"]
Qos = Literal["guaranteed", "burstable", "besteffort"]

_ID = r"[0-9a-f]{64}"
# Whole component (``.scope`` already removed): prefixed ID, CRI ``parent:prefix:id``
# triple (runc not in systemd mode uses it literally as a path), or a bare ID.
_CONTAINER = re.compile(
    rf"(?:(?P<prefix>cri-containerd|crio|docker|libpod-payload|libpod|nerdctl)-"
    rf"|[^:]*:(?P<kind>cri-containerd|crio|docker|libpod|nerdctl):)?"
    rf"(?P<id>{_ID})"
)
_RUNTIME_OF: dict[str, Runtime] = {
    "cri-containerd": "containerd",
    "nerdctl": "containerd",
    "crio": "crio",
    "docker": "docker",
    "libpod": "podman",
    "libpod-payload": "podman",
}
# A name with a runtime's prefix whose ID is malformed is not a container at all.
_RUNTIME_PREFIX = re.compile(r"(?:cri-containerd|crio|docker|libpod|nerdctl)-")
_POD = re.compile(
    r"(?:(?P<pre>.*)-)?pod"
    r"(?P<uid>[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
    r"|[0-9a-f]{32})(?:\.slice)?"
)
_GENERIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
# ECS (and EKS Fargate's outer layer) names a task's container `<task32hex>-<n>`.
_ECS_CONTAINER = re.compile(r"[0-9a-f]{32}-[0-9]+")
# containerd namespaces `ctr`/nerdctl (cgroupfs) put containers in, as `/<ns>/<name>`.
_CTR_NAMESPACES = frozenset({"default", "k8s.io"})
_UNIT = re.compile(r"\.(?:scope|slice|service|mount|socket|swap|target|device|path|timer)$")
_FS_PREFIX = re.compile(r"^(?:.*?/)?sys/fs/cgroup(?:/|$)")
_V1_CONTROLLERS = frozenset(
    {
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
        "systemd",
        "unified",
        "elogind",
    }
)
_CONTROL_FILE = re.compile(
    r"(?:cgroup|cpu|cpuacct|cpuset|memory|pids|io|blkio|hugetlb|rdma|misc|devices|freezer"
    r"|net_cls|net_prio|perf_event)\.[a-z0-9_.]+|tasks|notify_on_release|release_agent"
)
_QOS_SUFFIX: dict[str, Qos] = {
    "": "guaranteed",
    "-burstable": "burstable",
    "-besteffort": "besteffort",
}
_QOS_PARENT: dict[str, Qos] = {
    "kubepods": "guaranteed",
    "kubepods.slice": "guaranteed",
    "burstable": "burstable",
    "besteffort": "besteffort",
}


@dataclass(frozen=True, slots=True)
class CgroupIdentity:
    """What a cgroup path says about its processes; ``runtime`` None = not a container."""

    runtime: Runtime | None
    container_id: str | None
    pod_uid: str | None
    qos: Qos | None
    sandbox: bool = False


_NOTHING = CgroupIdentity(runtime=None, container_id=None, pod_uid=None, qos=None)


def _normalise(text: str) -> list[str] | None:
    """Path components of a bare path, a /proc/<pid>/cgroup line or a cgroupfs file path.

    None for a malformed /proc line (``a:name=systemd:/…``, ``13:/…``): its path cannot be
    trusted to be the one the kernel meant.
    """
    path = text.strip()
    if "\n" in path:
        path = pick_line(path) or ""
    fields = _fields(path)
    if fields is not None:
        path = fields[2]
    elif path[:1] not in ("/", ".") and path.partition("/")[0].endswith(":"):
        return None
    if "sys/fs/cgroup" in path:
        fs = _FS_PREFIX.match(path)
        if fs is not None:
            path = path[fs.end() :]
            head, _, rest = path.partition("/")
            if head.startswith("name=") or (
                head and all(c in _V1_CONTROLLERS for c in head.split(","))
            ):
                path = rest
    parts = [p for p in path.split("/") if p and p != "." and p != ".."]
    if parts and _CONTROL_FILE.fullmatch(parts[-1]):
        parts.pop()
    return parts


def _is_skipped(component: str) -> bool:
    """Mount units and conmon scopes carry IDs but hold no container's processes."""
    return component.endswith(".mount") or component == "conmon" or "conmon-" in component


def _pod_at(parts: list[str], i: int) -> tuple[str, Qos | None] | None:
    """(UID, QoS) if ``parts[i]`` is a pod cgroup inside a kubepods hierarchy."""
    component = parts[i].partition(":")[0]
    if "pod" not in component:
        return None
    m = _POD.fullmatch(component)
    if m is None:
        return None
    pre = m.group("pre")
    if pre is not None and "kubepods" in pre:
        qos = _QOS_SUFFIX.get(pre[pre.rfind("kubepods") + 8 :])
    elif any("kubepods" in p for p in parts[:i]):
        qos = _QOS_PARENT.get(parts[i - 1]) if pre is None else None
    else:
        return None
    return m.group("uid").replace("_", "-"), qos


def _pod_above(parts: list[str], i: int) -> tuple[str | None, Qos | None]:
    """The innermost pod at or above ``parts[i]``, as (UID, QoS)."""
    for j in range(i, -1, -1):
        pod = _pod_at(parts, j)
        if pod is not None:
            return pod
    return None, None


def _generic_container(component: str) -> str | None:
    """The id of a container kubelet created under a pod whose name no rule knows."""
    name = component.removesuffix(".scope")
    if (
        _is_skipped(component)
        or component.endswith(".slice")
        or _RUNTIME_PREFIX.match(name)
        or not _GENERIC_NAME.fullmatch(name)
    ):
        return None
    return name


@lru_cache(maxsize=8192)
def parse_cgroup_path(text: str) -> CgroupIdentity:
    """Identify the container a cgroup path belongs to; never raises.

    Accepts a bare path, one ``/proc/<pid>/cgroup`` line (``hier:controllers:path``) or a
    cgroupfs file path; given a whole /proc/<pid>/cgroup file it parses the line
    :func:`pick_line` chooses. Cached: most processes on a node share a few hundred cgroups.
    """
    parts = _normalise(text)
    if not parts:
        return _NOTHING
    if len(parts) == 2 and parts[0] in _CTR_NAMESPACES:
        name = parts[1]
        if _GENERIC_NAME.fullmatch(name) and not _UNIT.search(name):
            return CgroupIdentity("containerd", name, None, None)
    for i in range(len(parts) - 1, -1, -1):
        component = parts[i]
        if _is_skipped(component):
            return CgroupIdentity(None, None, *_pod_above(parts, i - 1))
        if len(component) >= 64:  # every runtime ID is 64 hex: skip the regex otherwise
            scoped = component.endswith(".scope")
            m = _CONTAINER.fullmatch(component[:-6] if scoped else component)
            if m is not None:
                return _container(parts, i, m, scoped)
        if parts[0] == "ecs" and _ECS_CONTAINER.fullmatch(component):
            return CgroupIdentity("unknown", component, None, None)
        pod = _pod_at(parts, i)
        if pod is not None:
            uid, qos = pod
            if i + 1 < len(parts):
                generic = _generic_container(parts[i + 1])
                if generic is not None:
                    return CgroupIdentity("unknown", generic, uid, qos)
            return CgroupIdentity(None, None, uid, qos)
        if "kubepods" in component:
            return _NOTHING
    return _NOTHING


def _container(parts: list[str], i: int, m: re.Match[str], scoped: bool) -> CgroupIdentity:
    """Identity of the container component ``parts[i]``, with its pod if it has one."""
    prefix, kind = m.group("prefix"), m.group("kind")
    runtime: Runtime
    if prefix is not None:
        runtime = _RUNTIME_OF[prefix]
    elif kind is not None:
        runtime = _RUNTIME_OF[kind]
    elif i > 0 and parts[i - 1] in ("docker", "actions_job"):
        runtime = "docker"
    else:
        runtime = "unknown"
    # CRI-O's systemd driver puts the infra container in `crio-<id>` without `.scope`.
    sandbox = prefix == "crio" and not scoped and i > 0 and parts[i - 1].endswith(".slice")
    uid, qos = _pod_above(parts, i if kind is not None else i - 1)
    return CgroupIdentity(runtime, m.group("id"), uid, qos, sandbox)


def _fields(line: str) -> tuple[str, str, str] | None:
    """(hierarchy, controllers, path) of one /proc/<pid>/cgroup line, split on two colons."""
    fields = line.strip().split(":", 2)
    if len(fields) != 3 or not fields[0].isdecimal():
        return None
    return fields[0], fields[1], fields[2].strip()


def pick_line(cgroup_file_text: str, controller: str = "cpu") -> str | None:
    """The cgroup path to account a process by, from its whole /proc/<pid>/cgroup.

    On v1 and hybrid hosts the named v1 controller's path is the one whose counters are
    read (the ``0::`` line of a hybrid host often names the runtime's service instead);
    on pure v2 it is the single ``0::`` path. ``cpu`` falls back to a separate ``cpuacct``
    hierarchy, which accounts the same CPU time. None when the file has neither.
    """
    v1 = False
    v2: str | None = None
    cpuacct: str | None = None
    for line in cgroup_file_text.splitlines():
        fields = _fields(line)
        if fields is None:
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and not controllers:
            v2 = path
            continue
        v1 = True
        names = controllers.split(",")
        if controller in names:
            return path
        if cpuacct is None and "cpuacct" in names:
            cpuacct = path
    if v1:
        return cpuacct if controller == "cpu" else None
    return v2


def cgroup_version_of(cgroup_file_text: str) -> Literal["v1", "v2", "hybrid"]:
    """Which cgroup mode a /proc/<pid>/cgroup file shows; no v1 line at all means v2."""
    v1 = v2 = False
    for line in cgroup_file_text.splitlines():
        fields = _fields(line)
        if fields is not None:
            if fields[0] == "0" and not fields[1]:
                v2 = True
            else:
                v1 = True
    if not v1:
        return "v2"
    return "hybrid" if v2 else "v1"
