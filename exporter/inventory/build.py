"""The runtime inventory: which runtimes the containers run, and how much CPU each uses.

insights-runtime-extractor says which runtimes run; this says how much of the CPU each
takes, which is what the investment decision its data exists for needs. One row per
distinct runtime — OS and version, kind, version and implementer, frameworks — with its
containers, pods, namespaces and owners, the CPU seconds its containers' counters hold
and their share of all the counted containers' CPU, and flags: components past their
upstream end of life (exporter/inventory/eol.py), containers whose runtime could not be
identified, and one workload running different runtime versions across its pods.

The counters are cumulative since each container started, so the window is from the
earliest start among the counted containers to the latest snapshot; a container that
started later contributes only its own life. Containers that already exited are not in
any snapshot and are not counted. The input is container documents as ``/v1/containers``
and ``/v1/pods`` write them, so an exporter (its node) and ``collect --report`` (every
node) build the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter.inventory.eol import TABLE_DATE, EndOfLife, past_end_of_life
from extractor.contract import rfc3339

RuntimeKey = tuple[str, str, str, str, str, tuple[tuple[str, str], ...]]
IDENTITY = ("os", "osVersion", "kind", "kindVersion", "kindImplementer")


@dataclass(frozen=True)
class NodeContainers:
    """One node's containers, as its exporter served them at ``taken_at``."""

    node: str
    taken_at: float | None
    containers: Sequence[dict[str, Any]]


def parse_time(value: object) -> float | None:
    """An RFC 3339 time of the API's documents, as unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def from_pods_document(node: str, document: dict[str, Any]) -> NodeContainers:
    """A ``/v1/pods`` answer's containers."""
    containers = [
        c
        for pod in document.get("pods") or ()
        if isinstance(pod, dict)
        for c in pod.get("containers") or ()
        if isinstance(c, dict)
    ]
    return NodeContainers(node, parse_time(document.get("takenAt")), containers)


def _text(mapping: Any, key: str) -> str:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else ""


def _number(mapping: Any, key: str) -> float | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def runtime_key(fingerprint: Any) -> RuntimeKey:
    frameworks = tuple(
        sorted(
            (_text(r, "name"), _text(r, "version"))
            for r in (fingerprint.get("runtimes") if isinstance(fingerprint, dict) else None) or ()
            if isinstance(r, dict) and _text(r, "name")
        )
    )
    os_id, os_version, kind, version, implementer = (_text(fingerprint, k) for k in IDENTITY)
    return os_id, os_version, kind, version, implementer, frameworks


def runtime_label(key: RuntimeKey) -> str:
    """``Java 17.0.13 (Red Hat, Inc.)``; ``(unidentified)`` without a kind."""
    _, _, kind, version, implementer, _ = key
    if not kind:
        return "(unidentified)"
    label = f"{kind} {version}".strip()
    return f"{label} ({implementer})" if implementer else label


def frameworks_label(key: RuntimeKey) -> str:
    return ", ".join(f"{name} {version}".strip() for name, version in key[5])


def os_label(key: RuntimeKey) -> str:
    return f"{key[0]} {key[1]}".strip()


@dataclass
class _Row:
    key: RuntimeKey
    members: list[dict[str, Any]] = field(default_factory=list)
    pods: set[tuple[str, str, str]] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    owners: set[tuple[str, str, str]] = field(default_factory=set)
    cpu_seconds: float = 0.0
    cpu_cores: float = 0.0
    end_of_life: list[EndOfLife] = field(default_factory=list)


def _owner(container: dict[str, Any]) -> tuple[str, str] | None:
    owner = container.get("owner")
    if _text(owner, "kind") and _text(owner, "name"):
        return _text(owner, "kind"), _text(owner, "name")
    return None


def build_inventory(
    nodes: Iterable[NodeContainers],
    failed: Sequence[dict[str, Any]] = (),
    *,
    now: float,
) -> dict[str, Any]:
    """The inventory document (README, "/v1/inventory") of the nodes' containers;
    ``failed`` are the nodes that did not answer (their CPU is in no share)."""
    rows: dict[RuntimeKey, _Row] = {}
    unidentified: list[dict[str, Any]] = []
    workloads: dict[tuple[str, str, str, str], dict[RuntimeKey, set[str]]] = {}
    starts: list[float] = []
    ends: list[float] = []
    ok: list[str] = []
    today = datetime.fromtimestamp(now, UTC).date()
    for node in nodes:
        ok.append(node.node)
        if node.taken_at is not None:
            ends.append(node.taken_at)
        for c in node.containers:
            listed = c.get("fingerprint")
            fingerprint: dict[str, object] = listed if isinstance(listed, dict) else {}
            key = runtime_key(fingerprint)
            row = rows.get(key)
            if row is None:
                row = rows[key] = _Row(key, end_of_life=past_end_of_life(fingerprint, today))
            namespace, pod, name = _text(c, "namespace"), _text(c, "pod"), _text(c, "container")
            cpu = _number(c.get("cpu"), "totalSeconds") or 0.0
            member = {"node": node.node, "namespace": namespace, "pod": pod,
                      "container": name, "cpuSeconds": cpu}  # fmt: skip
            row.members.append(member)
            row.pods.add((node.node, namespace, pod))
            row.namespaces.add(namespace)
            row.cpu_seconds += cpu
            row.cpu_cores += _number(c.get("cpu"), "usageRateCores") or 0.0
            owner = _owner(c)
            if owner is not None:
                row.owners.add((namespace, *owner))
            seconds = _number(c, "runtimeSeconds")
            if seconds is not None and node.taken_at is not None:
                starts.append(node.taken_at - seconds)
            if not key[2]:
                why = _text(fingerprint, "error")
                unidentified.append(
                    {**member, "image": _text(c, "image") or None, "error": why or None}
                )
            elif owner is not None:
                # a version is the runtime's, whatever the OS below it
                workload = workloads.setdefault((namespace, *owner, name), {})
                workload.setdefault(("", "", *key[2:]), set()).add(pod)
    total = sum(r.cpu_seconds for r in rows.values())
    ordered = sorted(rows.values(), key=lambda r: (-r.cpu_seconds, runtime_label(r.key)))
    window_from = min(starts) if starts else None
    window_to = max(ends) if ends else None
    return {
        "generatedAt": rfc3339(now),
        "eolTableDate": TABLE_DATE.isoformat(),
        "window": {
            "from": rfc3339(window_from),
            "to": rfc3339(window_to),
            "seconds": (window_to - window_from) if window_from and window_to else None,
        },
        "nodes": {"ok": sorted(ok), "failed": list(failed)},
        "totals": {
            "containers": sum(len(r.members) for r in rows.values()),
            "pods": len({p for r in rows.values() for p in r.pods}),
            "namespaces": len({n for r in rows.values() for n in r.namespaces}),
            "cpuSeconds": total,
            "cpuCores": sum(r.cpu_cores for r in rows.values()),
        },
        "runtimes": [_row_document(r, total) for r in ordered],
        "flags": {
            "endOfLife": _end_of_life_flags(ordered),
            "unidentified": sorted(unidentified, key=lambda u: (-u["cpuSeconds"], u["pod"])),
            "mixedVersions": _mixed_versions(workloads),
        },
    }


def _row_document(row: _Row, total: float) -> dict[str, Any]:
    os_id, os_version, kind, version, implementer, frameworks = row.key
    return {
        "os": os_id or None,
        "osVersion": os_version or None,
        "kind": kind or None,
        "kindVersion": version or None,
        "kindImplementer": implementer or None,
        "frameworks": [{"name": n, "version": v or None} for n, v in frameworks],
        "identified": bool(kind),
        "label": runtime_label(row.key),
        "containers": len(row.members),
        "pods": len(row.pods),
        "namespaces": sorted(row.namespaces),
        "owners": [{"namespace": n, "kind": k, "name": m} for n, k, m in sorted(row.owners)],
        "cpuSeconds": row.cpu_seconds,
        "cpuShare": row.cpu_seconds / total if total > 0 else 0.0,
        "cpuCores": row.cpu_cores,
        "endOfLife": [e.as_json() for e in row.end_of_life],
        "members": sorted(
            row.members, key=lambda m: (m["namespace"], m["pod"], m["container"], m["node"])
        ),
    }


def _end_of_life_flags(rows: Sequence[_Row]) -> list[dict[str, Any]]:
    """Per component past its end of life: how many containers, how much CPU."""
    flags: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        for eol in row.end_of_life:
            flag = flags.setdefault(
                (eol.component, eol.source), {**eol.as_json(), "containers": 0, "cpuSeconds": 0.0}
            )
            flag["containers"] += len(row.members)
            flag["cpuSeconds"] += row.cpu_seconds
    return sorted(flags.values(), key=lambda f: (-f["cpuSeconds"], f["component"]))


def _mixed_versions(
    workloads: dict[tuple[str, str, str, str], dict[RuntimeKey, set[str]]],
) -> list[dict[str, Any]]:
    mixed = []
    for (namespace, kind, name, container), versions in sorted(workloads.items()):
        if len(versions) < 2:
            continue
        mixed.append(
            {
                "namespace": namespace,
                "owner": {"kind": kind, "name": name},
                "container": container,
                "versions": [
                    {
                        "label": runtime_label(key),
                        "frameworks": frameworks_label(key) or None,
                        "pods": sorted(pods),
                    }
                    for key, pods in sorted(versions.items(), key=lambda kv: runtime_label(kv[0]))
                ],
            }
        )
    return mixed
