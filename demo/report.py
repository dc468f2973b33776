"""What the demo prints and checks: the exporter's answers as tables a person can read,
the JSON fields behind each column, the usage events, and whether they show what the
workloads did.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from demo.workloads import SUBJECT, Workload

JSON = dict[str, Any]
CONTAINER_COLUMNS = (
    ("NAMESPACE", ".namespace"),
    ("POD", ".pod"),
    ("CONTAINER", ".container"),
    ("OWNER", ".owner.kind/.owner.name"),
    ("RUNTIME", ".fingerprint.kind .fingerprint.kindVersion"),
    ("OS", ".fingerprint.os .fingerprint.osVersion"),
    ("CPU s", ".cpu.totalSeconds"),
    ("MEM MiB", ".memory.workingSetBytes"),
    ("RESTARTS", ".restarts"),
    ("SUBJECT", f'.annotations["{SUBJECT}"]'),
)
EVENT_COLUMNS = (
    ("WINDOW END", ".time"),
    ("SUBJECT", ".subject"),
    ("POD", ".data.pod_namespace/.data.pod_name"),
    ("OWNER", ".data.owner_kind/.data.owner_name"),
    ("CPU s", ".data.cpu_seconds"),
    ("SECONDS IN WINDOW", ".data.duration_seconds"),
)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _join(*parts: object, sep: str = " ") -> str:
    return sep.join(str(p) for p in parts if p not in (None, "")) or "-"


def container_row(c: JSON) -> list[str]:
    fp = c.get("fingerprint") or {}
    owner = c.get("owner") or {}
    memory = (c.get("memory") or {}).get("workingSetBytes")
    return [
        c["namespace"],
        c["pod"],
        c["container"],
        _join(owner.get("kind"), owner.get("name"), sep="/"),
        _join(fp.get("kind"), fp.get("kindVersion")),
        _join(fp.get("os"), fp.get("osVersion")),
        f"{(c.get('cpu') or {}).get('totalSeconds', 0):.2f}",
        f"{memory / 2**20:.1f}" if memory is not None else "-",
        str(c.get("restarts", "-")),
        (c.get("annotations") or {}).get(SUBJECT, "-"),
    ]


def event_row(e: JSON) -> list[str]:
    d = e["data"]
    return [
        e["time"],
        e["subject"],
        _join(d.get("pod_namespace"), d.get("pod_name"), sep="/"),
        _join(d.get("owner_kind"), d.get("owner_name"), sep="/"),
        f"{d['cpu_seconds']:.3f}",
        f"{d['duration_seconds']:.1f}",
    ]


def ours(body: JSON, workloads: Sequence[Workload]) -> list[JSON]:
    pods = {(w.namespace, w.pod) for w in workloads}
    return [c for c in body["containers"] if (c["namespace"], c["pod"]) in pods]


def containers_table(body: JSON, workloads: Sequence[Workload]) -> str:
    rows = sorted(container_row(c) for c in ours(body, workloads))
    return table([h for h, _ in CONTAINER_COLUMNS], rows)


def events_table(events: Sequence[JSON]) -> str:
    ordered = sorted(events, key=lambda e: (e["time"], e["data"].get("pod_name", "")))
    return table([h for h, _ in EVENT_COLUMNS], (event_row(e) for e in ordered))


def legend(columns: Sequence[tuple[str, str]], of: str, width: int = 100) -> str:
    """Which JSON field of each ``of`` every column shows, wrapped between columns."""
    lines = [f"columns are these JSON fields of each {of}:"]
    for header, path in columns:
        item = f"{header} = {path}"
        if len(lines[-1]) + len(item) + 3 > width:
            lines.append(" ")
        lines[-1] += f"  {item};"
    return "\n".join(lines).rstrip(";")


def lifecycle_counts(sse: str) -> Counter[tuple[str, str]]:
    """(event type, containerName) of every frame of a captured /v1/events stream."""
    out: Counter[tuple[str, str]] = Counter()
    for line in sse.splitlines():
        if line.startswith("data: "):
            data = json.loads(line[6:])
            if data.get("type") in ("start", "stop"):
                out[(data["type"], data["containerName"])] += 1
    return out


def check(body: JSON, events: Sequence[JSON], sse: str, workloads: Sequence[Workload]) -> list[str]:
    """What the system failed to show, one line each (empty: all of it)."""
    problems: list[str] = []
    seen = {(c["namespace"], c["pod"]): c for c in ours(body, workloads)}
    if body.get("metadataSource") != "api":
        problems.append(f"/v1/containers: metadataSource {body.get('metadataSource')!r}")
    billed: dict[str, int] = Counter()
    for e in events:
        billed[e["data"]["pod_name"]] += e["data"]["cpu_ns"]
        if e["subject"] != next(
            (w.subject for w in workloads if w.pod == e["data"]["pod_name"]), e["subject"]
        ):
            problems.append(f"event {e['id']}: subject {e['subject']!r}")
    lifecycle = lifecycle_counts(sse)
    for w in workloads:
        c = seen.get((w.namespace, w.pod))
        if w.behaviour != "job":
            if c is None:
                problems.append(f"{w.namespace}/{w.pod}: not in /v1/containers")
                continue
            kind = (c.get("fingerprint") or {}).get("kind")
            if w.kind is not None and kind != w.kind:
                problems.append(f"{w.pod}: fingerprint kind {kind!r}, expected {w.kind}")
            if (c.get("annotations") or {}).get(SUBJECT) != w.subject:
                problems.append(f"{w.pod}: no {SUBJECT} annotation from the API server")
            if not c.get("owner"):
                problems.append(f"{w.pod}: no owner")
        if w.pod not in billed:
            problems.append(f"{w.namespace}/{w.pod}: no usage event")
        elif w.behaviour != "serve" and billed[w.pod] <= 0:
            problems.append(f"{w.namespace}/{w.pod}: its usage events bill no CPU")
    flaky = next(w for w in workloads if w.behaviour == "crash")
    c = seen.get((flaky.namespace, flaky.pod))
    if c is not None and c.get("restarts", 0) < 2:
        problems.append(f"{flaky.pod}: restarts {c.get('restarts')}, expected at least 2")
    if lifecycle[("stop", flaky.container)] < 2:
        problems.append(
            f"/v1/events: {lifecycle[('stop', flaky.container)]} stops of {flaky.container}"
        )
    job = next(w for w in workloads if w.behaviour == "job")
    if lifecycle[("stop", job.container)] < 1:
        problems.append(f"/v1/events: no stop of the job's container {job.container}")
    return problems
