"""A Snapshot as people and scripts read it: namespace → pod → container.

The Snapshot is a flat list built for the exporter; this view nests it the way people
think of a cluster and converts the kernel's integers to seconds and bytes. The JSON
field names are a user contract (documented in the README): add, never rename. They are
the exporter API's names (``cpu.totalSeconds``, ``memory.workingSetBytes``, …), so one
jq filter reads both.

Grouping rules, so every container has exactly one place:

- namespace key: the pod's namespace; without one (no runtime labels, or not Kubernetes
  at all) ``"<RUNTIME>"``, e.g. ``"<containerd>"``, ``"<docker>"``.
- pod key: the pod name; else (or when two pods of a namespace share the name, as a
  StatefulSet pod and its terminating predecessor briefly do) its UID; containers
  outside any pod go under ``"<none>"``.
- container key: the container name; else (or when two share a name) the container id.
- the sandbox (pause) container is not an app container: it is the pod's ``sandbox``.
  A second sandbox of one pod (a restarted sandbox whose old cgroup still lives) stays
  among the containers, keyed by id and marked ``"sandbox": true``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from extractor.contract import (
    Container,
    Pod,
    Snapshot,
    Usage,
    block_io_fields,
    cpu_fields,
    fingerprint_fields,
    memory_fields,
    network_fields,
    pressure_fields,
    rfc3339,
    seconds,
)

NO_POD = "<none>"


@dataclass
class _PodGroup:
    namespace: str
    key: str
    pod: Pod | None = None
    uid: str | None = None
    name: str | None = None
    pod_namespace: str | None = None
    sandbox: Container | None = None
    containers: list[Container] = field(default_factory=list)


def usage_fields(usage: Usage | None, devices: Mapping[str, str]) -> dict[str, object]:
    """The cgroup, CPU in seconds, memory in bytes, pressure and block I/O, named as the
    exporter's API names them (``devices``: the snapshot's block device names)."""
    return {
        "cgroup": usage.cgroup if usage else None,
        "cpu": cpu_fields(usage.cpu if usage else None),
        "memory": memory_fields(usage.memory if usage else None),
        "tasks": usage.pids if usage else None,
        "pressure": pressure_fields(usage.pressure if usage else None),
        "blockIo": block_io_fields(usage.block_io if usage else None, devices),
        "detailsAt": rfc3339(usage.details_at) if usage else None,
    }


def container_view(container: Container, devices: Mapping[str, str]) -> dict[str, object]:
    return {
        "id": container.id,
        "name": container.name,
        "runtime": container.runtime,
        "image": container.image,
        "sandbox": container.sandbox,
        "pids": container.pids,
        "startedAt": rfc3339(container.started_at),
        "runtimeSeconds": container.runtime_seconds,
        **usage_fields(container.usage, devices),
        "fingerprint": fingerprint_fields(container.fingerprint),
        "errors": container.errors,
    }


def sandbox_view(container: Container) -> dict[str, object]:
    """Sandboxes carry no usage of their own: it is counted in the pod's cgroup."""
    return {
        "id": container.id,
        "runtime": container.runtime,
        "pids": container.pids,
        "startedAt": rfc3339(container.started_at),
        "runtimeSeconds": container.runtime_seconds,
        "errors": container.errors,
    }


def _namespace_key(namespace: str | None, runtime: str | None) -> str:
    return namespace or f"<{runtime or 'unknown'}>"


def group(snapshot: Snapshot) -> list[_PodGroup]:
    """Pods and containers in their (namespace, pod) groups, keys not yet de-duplicated."""
    by_uid: dict[str, _PodGroup] = {}
    loose: dict[str, _PodGroup] = {}
    members: dict[str, list[Container]] = defaultdict(list)
    for container in snapshot.containers:
        if container.pod_uid:
            members[container.pod_uid].append(container)
    pods = {pod.uid: pod for pod in snapshot.pods}
    for uid in sorted(set(pods) | set(members)):
        pod, inside = pods.get(uid), members.get(uid, [])
        namespace = (pod.namespace if pod else None) or next(
            (c.namespace for c in inside if c.namespace), None
        )
        name = (pod.name if pod else None) or next((c.pod_name for c in inside if c.pod_name), None)
        runtime = inside[0].runtime if inside else None
        by_uid[uid] = _PodGroup(
            _namespace_key(namespace, runtime), name or uid, pod, uid, name, namespace
        )
    for container in snapshot.containers:
        if container.pod_uid:
            target = by_uid[container.pod_uid]
        else:
            ns = _namespace_key(container.namespace, container.runtime)
            target = loose.setdefault(ns, _PodGroup(ns, container.pod_name or NO_POD))
        if container.sandbox and target.sandbox is None:
            target.sandbox = container
        else:
            target.containers.append(container)
    return [*by_uid.values(), *loose.values()]


def container_keys(g: _PodGroup) -> list[tuple[str, Container]]:
    """Each app container with its key: its name, or its id when nameless or shared."""
    names = Counter(c.name for c in g.containers)
    return [(c.name if c.name and names[c.name] == 1 else c.id, c) for c in g.containers]


def placed(snapshot: Snapshot) -> list[tuple[str, _PodGroup]]:
    """Every group with its final pod key; pods sharing a name in a namespace use the UID."""
    groups = group(snapshot)
    names = Counter((g.namespace, g.key) for g in groups)
    return [(g.uid if names[(g.namespace, g.key)] > 1 and g.uid else g.key, g) for g in groups]


def _pod_view(g: _PodGroup, devices: Mapping[str, str]) -> dict[str, object]:
    pod = g.pod
    return {
        "uid": g.uid,
        "name": g.name,
        "namespace": g.pod_namespace,
        "qos": pod.qos if pod else None,
        **usage_fields(pod.usage if pod else None, devices),
        "network": network_fields(pod.network if pod else None),
        "hostNetwork": pod.host_network if pod else None,
        "sandbox": sandbox_view(g.sandbox) if g.sandbox else None,
        "containers": {key: container_view(c, devices) for key, c in container_keys(g)},
        "errors": pod.errors if pod else [],
    }


def nest(snapshot: Snapshot) -> dict[str, dict[str, dict[str, object]]]:
    """namespace → pod key → pod view."""
    out: dict[str, dict[str, dict[str, object]]] = defaultdict(dict)
    for key, g in placed(snapshot):
        out[g.namespace][key] = _pod_view(g, snapshot.block_devices)
    return dict(out)


def render_json(snapshot: Snapshot) -> str:
    document = {
        "schemaVersion": snapshot.schema_version,
        "node": snapshot.node,
        "takenAt": rfc3339(snapshot.taken_at),
        "cgroupVersion": snapshot.cgroup_version,
        "namespaces": nest(snapshot),
        "errors": snapshot.errors,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


COLUMNS = ("NAMESPACE", "POD", "CONTAINER", "ID", "CPU(s)", "RUNTIME", "MEM(WS)", "KIND", "VERSION")


def human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "Ki", "Mi", "Gi", "Ti"):
        if amount < 1024 or unit == "Ti":
            return f"{amount:.0f}{unit}" if unit == "B" else f"{amount:.1f}{unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _row(namespace: str, pod: str, key: str, c: Container) -> tuple[str, ...]:
    cpu = c.usage.cpu if c.usage else None
    memory = c.usage.memory if c.usage else None
    fp = c.fingerprint
    return (
        namespace,
        pod,
        key,
        c.id[:12],
        f"{seconds(cpu.usage_ns):.2f}" if cpu else "-",
        human_duration(c.runtime_seconds),
        human_bytes(memory.working_set_bytes if memory else None),
        (fp.kind if fp else None) or "-",
        (fp.kindVersion if fp else None) or "-",
    )


def render_table(snapshot: Snapshot) -> str:
    """One aligned row per app container (sandboxes are left out), sorted, then a summary
    line so that an empty node or a partial pass is visible at a glance."""
    rows = sorted(
        _row(g.namespace, pod_key, key, c)
        for pod_key, g in placed(snapshot)
        for key, c in container_keys(g)
        if not c.sandbox
    )
    table = [COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = ("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in table)
    pods = {c.pod_uid for c in snapshot.containers if c.pod_uid}
    summary = (
        f"{len(rows)} containers in {len(pods)} pods on {snapshot.node} "
        f"(cgroup {snapshot.cgroup_version}, {len(snapshot.errors)} errors)"
    )
    return "\n".join([*(line.rstrip() for line in lines), summary]) + "\n"
