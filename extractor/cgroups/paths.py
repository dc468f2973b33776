"""Cgroup path → (runtime, container id, pod UID, QoS), read from the path alone.

Discovery sees a cgroup path for every process on the node and must tell containers from
host processes without asking any runtime. The path is all it has, and it comes in many
shapes: systemd or cgroupfs drivers, cgroup v1/v2/hybrid, containerd, CRI-O, docker,
podman, nerdctl, nested nodes (kind, minikube, dind, EKS Fargate), custom kubelet roots
and paths relative to another cgroup namespace. The rules (docs/cgroups.md):

* the innermost container component wins, so a kind node's own docker scope never hides
  the pod container inside it; components below it (crun's ``/container``) belong to it,
  so a kind/minikube node's own services (kubelet, containerd) report the node container;
* the search stops at the innermost pod or ``kubepods`` component: a pod or QoS slice is
  not a container, and neither is anything found only above it;
* ``.mount`` units and conmon scopes carry an ID but are not containers: the walk steps
  over them, so one inside a pod names the pod, one inside a nested node (kind, dind)
  names that node's container, and one in ``system.slice`` names nothing;
* a runtime ID is exactly 64 lower-case hex; a name that merely contains one is not;
* a bare 64-hex ID is ``docker`` under ``docker``/``actions_job`` and ``unknown``
  elsewhere: containerd and cri-dockerd (cgroupfs driver) look identical, so the discovery
  layer resolves it from the node's runtime state;
* a UUID-named cgroup directly under a pod is a container of runtime ``unknown`` with
  that UUID as its id (runtimes that name containers so); any other name there
  (``invalid-id.scope``, a 12-hex short id, a runtime prefix with a malformed ID) is not;
* a systemd scope ``<prefix>-<64 hex>.scope`` with a prefix no rule knows (runc's own
  ``:runc:<id>`` default, a custom ``<parent>:<prefix>:<id>``) is a container of runtime
  ``unknown``: only container runtimes name scopes after a 64-hex ID;
* a pod needs a ``kubepods`` context; systemd-escaped UIDs (``_``) get their dashes
  back, 32-hex static-pod hashes stay as they are, ``\\x2d`` units are never pods;
* ``sandbox`` is set only where the path says so: CRI-O's systemd driver names the infra
  container ``crio-<id>`` without ``.scope``;
* ``/ecs/…/<task32hex>-<n>`` (ECS) and ``/default/<name>``, ``/k8s.io/<name>`` (containerd
  namespaces of ``ctr``/nerdctl with cgroupfs) are the only non-hex ids outside a pod.

A whole /proc/<pid>/cgroup file is read as docs/cgroups.md says: the v1 ``cpu`` line first,
then ``cpuacct``, ``memory`` and the other v1 lines, the first that names a container
winning; the ``0::`` line only when there is no v1 line at all (on a hybrid host it often
names the runtime's own service).

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
_POD = re.compile(
    r"(?:(?P<pre>.*)-)?pod"
    r"(?P<uid>[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
    r"|[0-9a-f]{32})(?:\.slice)?"
)
_GENERIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A scope named after a 64-hex ID by a runtime prefix no rule above knows (``runc-``).
_OTHER_SCOPE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.@-]*-(?P<id>{_ID})")
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
    """The id of a UUID-named container directly under a pod (elastic's fixtures show
    runtimes that name containers so); anything else there is not known to be one."""
    name = component.removesuffix(".scope")
    return name if _UUID.fullmatch(name) else None


@lru_cache(maxsize=8192)
def parse_cgroup_path(text: str) -> CgroupIdentity:
    """Identify the container a cgroup path belongs to; never raises.

    Accepts a bare path, one ``/proc/<pid>/cgroup`` line (``hier:controllers:path``) or a
    cgroupfs file path; given a whole /proc/<pid>/cgroup file it tries the lines in the
    order :func:`candidate_lines` gives (``0::`` ignored on hybrid hosts). Cached: most
    processes on a node share a few hundred cgroups.
    """
    stripped = text.strip()
    if "\n" in stripped or "\r" in stripped:
        return _parse_file(stripped)
    parts = _normalise(stripped)
    if not parts:
        return _NOTHING
    if len(parts) == 2 and parts[0] in _CTR_NAMESPACES:
        name = parts[1]
        if _GENERIC_NAME.fullmatch(name) and not _UNIT.search(name):
            return CgroupIdentity("containerd", name, None, None)
    for i in range(len(parts) - 1, -1, -1):
        component = parts[i]
        if _is_skipped(component):
            continue  # not a container itself; what holds it may be one (a kind node)
        if len(component) >= 64:  # every runtime ID is 64 hex: skip the regex otherwise
            scoped = component.endswith(".scope")
            m = _CONTAINER.fullmatch(component[:-6] if scoped else component)
            if m is None and scoped:
                m = _OTHER_SCOPE.fullmatch(component[:-6])
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


def _parse_file(text: str) -> CgroupIdentity:
    """Identity of a whole /proc/<pid>/cgroup file (or of several lines given at once).

    Candidates in the order docs/cgroups.md gives (see :func:`candidate_lines`); the first
    that names a container wins, else the first candidate's answer (a pod-level cgroup
    still tells the pod). Text without any /proc line is taken line by line the same way.
    """
    candidates = candidate_lines(text)
    if not candidates:
        candidates = [line for line in (raw.strip() for raw in file_lines(text)) if line]
    first = _NOTHING
    for n, line in enumerate(candidates):
        found = parse_cgroup_path(line)
        if found.runtime is not None:
            return found
        if n == 0:
            first = found
    return first


def file_lines(text: str) -> list[str]:
    """The lines of a /proc file: the kernel ends them with ``\n`` (``\r`` is taken as
    one too, as :func:`parse_cgroup_path` does); other Unicode line breaks such as NEL
    are characters a cgroup's name may hold, not line ends (``str.splitlines`` would cut
    a path there)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def candidate_lines(cgroup_file_text: str) -> list[str]:
    """The paths of a /proc/<pid>/cgroup file in the order identity is looked for.

    v1 and hybrid hosts: the ``cpu`` line, then ``cpuacct``, ``memory`` and every other v1
    line in file order; the ``0::`` line is left out, as it often names the runtime's own
    service there. Pure v2: the ``0::`` line(s).
    """
    order = {"cpu": 0, "cpuacct": 1, "memory": 2}
    v1: list[tuple[int, int, str]] = []
    v2: list[str] = []
    for n, line in enumerate(file_lines(cgroup_file_text)):
        fields = _fields(line)
        if fields is None:
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and not controllers:
            v2.append(path)
            continue
        rank = min((order.get(c, 3) for c in controllers.split(",")), default=3)
        v1.append((rank, n, path))
    if v1:
        return [path for _, _, path in sorted(v1)]
    return v2


def _container(parts: list[str], i: int, m: re.Match[str], scoped: bool) -> CgroupIdentity:
    """Identity of the container component ``parts[i]``, with its pod if it has one."""
    groups = m.groupdict()
    prefix, kind = groups.get("prefix"), groups.get("kind")
    runtime: Runtime
    if m.re is _OTHER_SCOPE:
        runtime = "unknown"
    elif prefix is not None:
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
    for line in file_lines(cgroup_file_text):
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
    for line in file_lines(cgroup_file_text):
        fields = _fields(line)
        if fields is not None:
            if fields[0] == "0" and not fields[1]:
                v2 = True
            else:
                v1 = True
    if not v1:
        return "v2"
    return "hybrid" if v2 else "v1"
