"""The per-container and per-pod families of ``/metrics``, written as Prometheus text
with each row's lines kept while what they come from is the same.

Why not prometheus_client's collectors for these: at 1,000 containers the node's families
are 13,000 samples, and building them as Metric objects and formatting every one on each
scrape took ~100 ms of CPU. Here a row (a container or a pod) keeps its label set and the
lines of its counters; a new view rewrites only the lines of rows whose ``Usage``,
status or fingerprint object is not the one they were written from (the snapshot by
difference hands back the very objects of unchanged records), plus each row's run time,
which moves every snapshot. The text is what ``prometheus_client.generate_latest``
writes for the same families (tests/exporter/http/test_exposition.py compares them):
``_total`` and ``_info`` suffixes, label names sorted, values escaped and formatted as it
does. The exporter's own health families stay prometheus_client collectors
(``exporter/http/prometheus.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from exporter.kube.podmeta import ContainerStatus
from exporter.node.views import NodeView
from extractor.contract import Fingerprint, Usage

PREFIX = "runtime_insights"
CONTAINER_LABELS = ("namespace", "pod", "container", "container_id")
POD_LABELS = ("namespace", "pod", "pod_uid")


def _cpu(field: str) -> Callable[[Usage], float | None]:
    def read(usage: Usage) -> float | None:
        ns = getattr(usage.cpu, field) if usage.cpu is not None else None
        return None if ns is None else ns / 1e9

    return read


def _memory(field: str) -> Callable[[Usage], float | None]:
    def read(usage: Usage) -> float | None:
        value: int | None = getattr(usage.memory, field) if usage.memory is not None else None
        return value

    return read


USAGE: list[tuple[str, str, str, Callable[[Usage], float | None]]] = [
    (
        "cpu_seconds",
        "counter",
        "CPU time used, from the cgroup's cpuacct/cpu.stat",
        _cpu("usage_ns"),
    ),
    ("cpu_user_seconds", "counter", "CPU time in user mode", _cpu("user_ns")),
    ("cpu_system_seconds", "counter", "CPU time in kernel mode", _cpu("system_ns")),
    ("cpu_throttled_seconds", "counter", "time throttled by the CFS quota", _cpu("throttled_ns")),
    ("memory_usage_bytes", "gauge", "memory charged to the cgroup", _memory("current_bytes")),
    (
        "memory_working_set_bytes",
        "gauge",
        "usage minus inactive file cache",
        _memory("working_set_bytes"),
    ),
    (
        "memory_peak_bytes",
        "gauge",
        "highest memory usage recorded by the kernel",
        _memory("peak_bytes"),
    ),
    ("memory_limit_bytes", "gauge", "memory limit of the cgroup", _memory("limit_bytes")),
]
"""The cgroup counters shared by containers and pods: (name, type, help, reader)."""

RUNTIME_HELP = "seconds since the container's first process started"
RESTARTS_HELP = "restart count from the pod status (API metadata only)"
INFO_HELP = "OS and language runtime of the container, as fingerprinted from the outside"
POD_RUNTIME_HELP = "age of the pod's oldest container"


def _number(value: float) -> str:
    """A sample value as prometheus_client writes it (Go's float formatting)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def escape(value: str) -> str:
    """A label value as the text format wants it (prometheus_client's escaping)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def labelset(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in sorted(pairs.items())) + "}"


def _header(name: str, kind: str, doc: str) -> str:
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


def _sample_name(scope: str, name: str, kind: str) -> str:
    return f"{PREFIX}_{scope}_{name}" + ("_total" if kind == "counter" else "")


def _usage_lines(scope: str, labels: str, usage: Usage | None) -> tuple[str, ...]:
    """One line per USAGE family ('' where the kernel gave no value)."""
    if usage is None:
        return ("",) * len(USAGE)
    out = []
    for name, kind, _, read in USAGE:
        value = read(usage)
        sample = _sample_name(scope, name, kind)
        out.append("" if value is None else f"{sample}{labels} {_number(value)}\n")
    return tuple(out)


@dataclass(slots=True)
class _Row:
    """What one container's or pod's lines were written from, and the lines."""

    key: tuple[str, ...]
    labels: str
    usage: Usage | None = None
    usage_lines: tuple[str, ...] | None = None
    status: ContainerStatus | None = None
    restart_line: str | None = None
    info_key: tuple[object, ...] | None = None
    info_line: str = ""


class NodeExposition:
    """Renders a NodeView's families; keeps rows between renders (one at a time)."""

    def __init__(self) -> None:
        self._containers: dict[str, _Row] = {}
        self._pods: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self.rewritten = 0
        """Rows whose counter lines the last render wrote anew."""

    def render(self, view: NodeView) -> bytes:
        with self._lock:
            return self._render(view).encode()

    @staticmethod
    def _row(
        rows: dict[str, _Row], seen: dict[str, _Row], names: tuple[str, ...], key: tuple[str, ...]
    ) -> _Row:
        """The row named by ``key`` (its label values, the last one unique), kept when
        its labels are the same as last time."""
        row = rows.get(key[-1])
        if row is None or row.key != key:
            row = _Row(key, labelset(dict(zip(names, key, strict=True))))
        seen[key[-1]] = row
        return row

    def _render(self, view: NodeView) -> str:
        rewritten = 0
        usage: list[list[str]] = [[] for _ in USAGE]
        runtime: list[str] = []
        restarts: list[str] = []
        info: list[str] = []
        rows: dict[str, _Row] = {}
        runtime_name = f"{PREFIX}_container_runtime_seconds"
        restart_name = f"{PREFIX}_container_restarts"
        for cv in view.containers:
            c = cv.container
            key = (cv.namespace, cv.pod, cv.name, c.id)
            row = self._row(self._containers, rows, CONTAINER_LABELS, key)
            if row.usage_lines is None or row.usage is not c.usage:
                row.usage, row.usage_lines = c.usage, _usage_lines("container", row.labels, c.usage)
                rewritten += 1
            for lines, line in zip(usage, row.usage_lines, strict=True):
                if line:
                    lines.append(line)
            if c.runtime_seconds is not None:
                runtime.append(f"{runtime_name}{row.labels} {_number(c.runtime_seconds)}\n")
            if cv.status is not None:
                if row.restart_line is None or row.status is not cv.status:
                    count = _number(cv.status.restart_count)
                    row.status, row.restart_line = (
                        cv.status,
                        f"{restart_name}{row.labels} {count}\n",
                    )
                restarts.append(row.restart_line)
            image = (cv.status.image if cv.status else None) or c.image or ""
            info_key = (c.runtime, image, cv.source, c.fingerprint)
            if row.info_key is None or not _same_info(row.info_key, info_key):
                row.info_key, row.info_line = info_key, _info_line(key, info_key)
            info.append(row.info_line)
        self._containers = rows
        pod_usage: list[list[str]] = [[] for _ in USAGE]
        pod_runtime: list[str] = []
        pod_rows: dict[str, _Row] = {}
        pod_runtime_name = f"{PREFIX}_pod_runtime_seconds"
        for pv in view.pods:
            row = self._row(self._pods, pod_rows, POD_LABELS, (pv.namespace, pv.name, pv.api_uid))
            pod_usage_now = pv.pod.usage if pv.pod else None
            if row.usage_lines is None or row.usage is not pod_usage_now:
                row.usage, row.usage_lines = (
                    pod_usage_now,
                    _usage_lines("pod", row.labels, pod_usage_now),
                )
                rewritten += 1
            for lines, line in zip(pod_usage, row.usage_lines, strict=True):
                if line:
                    lines.append(line)
            seconds = pv.runtime_seconds
            if seconds is not None:
                pod_runtime.append(f"{pod_runtime_name}{row.labels} {_number(seconds)}\n")
        self._pods = pod_rows
        self.rewritten = rewritten
        out: list[str] = []
        for (name, kind, doc, _), lines in zip(USAGE, usage, strict=True):
            out.append(_header(_sample_name("container", name, kind), kind, doc))
            out.extend(lines)
        out.append(_header(runtime_name, "gauge", RUNTIME_HELP))
        out.extend(runtime)
        out.append(_header(restart_name, "gauge", RESTARTS_HELP))
        out.extend(restarts)
        out.append(_header(f"{PREFIX}_container_fingerprint_info", "gauge", INFO_HELP))
        out.extend(info)
        for (name, kind, doc, _), lines in zip(USAGE, pod_usage, strict=True):
            out.append(_header(_sample_name("pod", name, kind), kind, doc))
            out.extend(lines)
        out.append(_header(pod_runtime_name, "gauge", POD_RUNTIME_HELP))
        out.extend(pod_runtime)
        return "".join(out)


def _same_info(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """The fingerprint compares by identity first (a reused record's is the same object)."""
    return a[:3] == b[:3] and (a[3] is b[3] or a[3] == b[3])


def _info_line(key: tuple[str, ...], info: tuple[object, ...]) -> str:
    runtime, image, source, fp = info
    assert fp is None or isinstance(fp, Fingerprint)
    labels = {
        **dict(zip(CONTAINER_LABELS, key, strict=True)),
        "runtime": str(runtime),
        "image": str(image),
        "metadata_source": str(source),
        "os": (fp.os if fp else None) or "",
        "os_version": (fp.osVersion if fp else None) or "",
        "kind": (fp.kind if fp else None) or "",
        "kind_version": (fp.kindVersion if fp else None) or "",
        "kind_implementer": (fp.kindImplementer if fp else None) or "",
    }
    return f"{PREFIX}_container_fingerprint_info{labelset(labels)} 1.0\n"
