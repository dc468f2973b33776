"""``/metrics/cadvisor``: the kubelet's cAdvisor families, for what the extractor reads.

Dashboards, recording rules, prometheus-adapter and cost tools query the kubelet's
``/metrics/cadvisor`` by family name and labels; serving the same names, types, help
texts and labels on an endpoint of its own lets one Prometheus job scrape this in place
of the kubelet's, nothing counted twice. The reference is a kubelet 1.35 capture kept in
tests/exporter/http/cadvisor/ (its README says where it comes from).

As the kubelet labels them: every series has ``container``, ``id`` (the cgroup path),
``image``, ``name`` (the runtime's container ID), ``namespace`` and ``pod``; the pod
cgroup's series have ``container=""``, ``image=""``, ``name=""``; the sandbox's have
``container=""`` with the pause image and its ID, and carry the pod's network (cAdvisor
reads a pod's network through its sandbox). A sample carries the time its value was read
(ms): the pass's for CPU and memory usage and the working set, the details' reading for
the rest (RSS and cache included)
(``Usage.details_at``; on v1 the user/system split and throttling are details too).
The spec families (quota, period, memory limit, start time) carry none, as the kubelet's.
CFS period and throttling counters are shown only under a quota, as cAdvisor does; an
unlimited memory limit is 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.http.prometheus import text_of
from exporter.node.views import NodeView
from extractor.contract import BlockDevice, Container, Interface, Usage

LABELS = ["container", "id", "image", "name", "namespace", "pod"]

HELP = {
    "container_cpu_usage_seconds_total": "Cumulative cpu time consumed in seconds.",
    "container_cpu_user_seconds_total": "Cumulative user cpu time consumed in seconds.",
    "container_cpu_system_seconds_total": "Cumulative system cpu time consumed in seconds.",
    "container_cpu_cfs_periods_total": "Number of elapsed enforcement period intervals.",
    "container_cpu_cfs_throttled_periods_total": "Number of throttled period intervals.",
    "container_cpu_cfs_throttled_seconds_total": (
        "Total time duration the container has been throttled."
    ),
    "container_memory_usage_bytes": (
        "Current memory usage in bytes, including all memory regardless of when it was accessed"
    ),
    "container_memory_working_set_bytes": "Current working set in bytes.",
    "container_memory_rss": "Size of RSS in bytes.",
    "container_memory_cache": "Number of bytes of page cache memory.",
    "container_memory_max_usage_bytes": "Maximum memory usage recorded in bytes",
    "container_oom_events_total": "Count of out of memory events observed for the container",
    "container_spec_cpu_quota": "CPU quota of the container.",
    "container_spec_cpu_period": "CPU period of the container.",
    "container_spec_memory_limit_bytes": "Memory limit for the container.",
    "container_start_time_seconds": "Start time of the container since unix epoch in seconds.",
    "container_blkio_device_usage_total": "Blkio Device bytes usage",
    "container_fs_reads_bytes_total": "Cumulative count of bytes read",
    "container_fs_writes_bytes_total": "Cumulative count of bytes written",
    "container_fs_reads_total": "Cumulative count of reads completed",
    "container_fs_writes_total": "Cumulative count of writes completed",
    "container_network_receive_bytes_total": "Cumulative count of bytes received",
    "container_network_receive_packets_total": "Cumulative count of packets received",
    "container_network_receive_errors_total": (
        "Cumulative count of errors encountered while receiving"
    ),
    "container_network_receive_packets_dropped_total": (
        "Cumulative count of packets dropped while receiving"
    ),
    "container_network_transmit_bytes_total": "Cumulative count of bytes transmitted",
    "container_network_transmit_packets_total": "Cumulative count of packets transmitted",
    "container_network_transmit_errors_total": (
        "Cumulative count of errors encountered while transmitting"
    ),
    "container_network_transmit_packets_dropped_total": (
        "Cumulative count of packets dropped while transmitting"
    ),
    "container_pressure_cpu_waiting_seconds_total": (
        "Total time duration tasks in the container have waited due to CPU congestion."
    ),
    "container_pressure_cpu_stalled_seconds_total": (
        "Total time duration no tasks in the container could make progress due to CPU congestion."
    ),
    "container_pressure_memory_waiting_seconds_total": (
        "Total time duration tasks in the container have waited due to memory congestion."
    ),
    "container_pressure_memory_stalled_seconds_total": (
        "Total time duration no tasks in the container could make progress due to memory "
        "congestion."
    ),
    "container_pressure_io_waiting_seconds_total": (
        "Total time duration tasks in the container have waited due to IO congestion."
    ),
    "container_pressure_io_stalled_seconds_total": (
        "Total time duration no tasks in the container could make progress due to IO congestion."
    ),
}
"""Every family served, with the kubelet's help text (its capture's, verbatim)."""

PRESSURE = (
    ("cpu", "waiting", "cpu_some_ns"),
    ("cpu", "stalled", "cpu_full_ns"),
    ("memory", "waiting", "memory_some_ns"),
    ("memory", "stalled", "memory_full_ns"),
    ("io", "waiting", "io_some_ns"),
    ("io", "stalled", "io_full_ns"),
)
NETWORK = (
    ("receive_bytes", "rx_bytes"),
    ("receive_packets", "rx_packets"),
    ("receive_errors", "rx_errors"),
    ("receive_packets_dropped", "rx_dropped"),
    ("transmit_bytes", "tx_bytes"),
    ("transmit_packets", "tx_packets"),
    ("transmit_errors", "tx_errors"),
    ("transmit_packets_dropped", "tx_dropped"),
)


@dataclass(frozen=True)
class _Row:
    """One cgroup's series: labels, usage, start time and (a sandbox) the pod's network."""

    labels: list[str]
    usage: Usage | None
    started_at: float | None
    network: list[Interface] | None = None
    network_at: float | None = None


def _rows(view: NodeView) -> Iterator[_Row]:
    """The pod cgroups, their sandboxes and their containers, labelled as the kubelet."""
    for pv in view.pods:
        usage = pv.pod.usage if pv.pod else None
        members: list[Container] = [cv.container for cv in pv.containers] + list(pv.sandboxes)
        started = min((c.started_at for c in members if c.started_at is not None), default=None)
        if usage is not None:
            yield _Row(["", usage.cgroup, "", "", pv.namespace, pv.name], usage, started)
        network = pv.pod.network if pv.pod else None
        network_at = (pv.pod.network_at if pv.pod else None) or view.snapshot.taken_at
        for sandbox in pv.sandboxes:
            labels = ["", sandbox.cgroup or "", sandbox.image or "", sandbox.id]
            yield _Row(
                [*labels, pv.namespace, pv.name], None, sandbox.started_at, network, network_at
            )
            network = None  # one sandbox carries the pod's network
        for cv in pv.containers:
            c = cv.container
            if c.usage is None:
                continue
            image = c.image or (cv.status.image if cv.status else None) or ""
            labels = [cv.name, c.usage.cgroup, image, c.id, cv.namespace, cv.pod]
            yield _Row(labels, c.usage, c.started_at)


class _Families:
    """Families by name, each created with its extra label names on first use."""

    def __init__(self) -> None:
        self._families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}

    def add(
        self,
        name: str,
        labels: list[str],
        value: float | None,
        at: float | None,
        extra: dict[str, str] | None = None,
    ) -> None:
        if value is None:
            return
        family = self._families.get(name)
        names = [*LABELS, *(extra or {})]
        if family is None:
            kind = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
            family = kind(name, HELP[name], labels=names)
            self._families[name] = family
        family.add_metric([*labels, *(extra or {}).values()], value, timestamp=at)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families[n] for n in sorted(self._families))


def _add_usage(
    f: _Families, row: _Row, taken_at: float, v2: bool, devices: Mapping[str, str]
) -> None:
    """CPU, memory, OOM kills, spec values, pressure and block I/O of one cgroup."""
    usage = row.usage
    assert usage is not None
    details = usage.details_at or taken_at
    split = taken_at if v2 else details  # v2's cpu.stat comes every pass, v1's split not
    labels = row.labels
    cpu, memory = usage.cpu, usage.memory
    if cpu is not None:
        total = {"cpu": "total"}
        f.add("container_cpu_usage_seconds_total", labels, cpu.usage_ns / 1e9, taken_at, total)
        f.add("container_cpu_user_seconds_total", labels, _s(cpu.user_ns), split)
        f.add("container_cpu_system_seconds_total", labels, _s(cpu.system_ns), split)
        if cpu.quota_us is not None:
            f.add("container_cpu_cfs_periods_total", labels, cpu.periods, split)
            f.add("container_cpu_cfs_throttled_periods_total", labels, cpu.throttled_periods, split)
            throttled = _s(cpu.throttled_ns)
            f.add("container_cpu_cfs_throttled_seconds_total", labels, throttled, split)
            f.add("container_spec_cpu_quota", labels, cpu.quota_us, None)
        f.add("container_spec_cpu_period", labels, cpu.period_us, None)
    if memory is not None:
        f.add("container_memory_usage_bytes", labels, memory.current_bytes, taken_at)
        f.add("container_memory_working_set_bytes", labels, memory.working_set_bytes, taken_at)
        f.add("container_memory_rss", labels, memory.rss_bytes, details)
        f.add("container_memory_cache", labels, memory.cache_bytes, details)
        f.add("container_memory_max_usage_bytes", labels, memory.peak_bytes, details)
        f.add("container_oom_events_total", labels, memory.oom_kills, details)
        f.add("container_spec_memory_limit_bytes", labels, memory.limit_bytes or 0, None)
    if usage.pressure is not None:
        for resource, kind, field in PRESSURE:
            name = f"container_pressure_{resource}_{kind}_seconds_total"
            f.add(name, labels, _s(getattr(usage.pressure, field)), details)
    for device in usage.block_io or ():
        _add_device(f, row, device, devices.get(f"{device.major}:{device.minor}"), details)


def _add_device(f: _Families, row: _Row, device: BlockDevice, name: str | None, at: float) -> None:
    """One device's I/O as the kubelet names it: ``/dev/<name>`` (cAdvisor's device map)."""
    path = f"/dev/{name}" if name else ""
    numbers = {"major": str(device.major), "minor": str(device.minor)}
    for operation, value in (("Read", device.read_bytes), ("Write", device.write_bytes)):
        extra = {"device": path, **numbers, "operation": operation}
        f.add("container_blkio_device_usage_total", row.labels, value, at, extra)
    by_device = {"device": path}
    f.add("container_fs_reads_bytes_total", row.labels, device.read_bytes, at, by_device)
    f.add("container_fs_writes_bytes_total", row.labels, device.write_bytes, at, by_device)
    f.add("container_fs_reads_total", row.labels, device.reads, at, by_device)
    f.add("container_fs_writes_total", row.labels, device.writes, at, by_device)


def _s(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def _add_network(f: _Families, row: _Row) -> None:
    for interface in row.network or ():
        extra = {"interface": interface.name}
        for family, field in NETWORK:
            value = getattr(interface, field)
            f.add(f"container_network_{family}_total", row.labels, value, row.network_at, extra)


def families(view: NodeView) -> Iterator[Metric]:
    """Every family for one view, sorted by name as the kubelet sorts them."""
    f = _Families()
    snapshot = view.snapshot
    v2 = snapshot.cgroup_version == "v2"
    for row in _rows(view):
        if row.usage is not None:
            _add_usage(f, row, snapshot.taken_at, v2, snapshot.block_devices)
        if row.started_at is not None:
            f.add("container_start_time_seconds", row.labels, float(int(row.started_at)), None)
        _add_network(f, row)
    return iter(f)


def render(view: NodeView) -> bytes:
    """The endpoint's text for one view (rendered once per view, ``http/rendering.py``)."""
    return text_of(lambda: families(view))
