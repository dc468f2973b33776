"""``/metrics/cadvisor`` against a real kubelet's, and requests/limits against a real
kube-state-metrics' (captures and their source: tests/exporter/http/cadvisor/README.md).

Names, types, help texts and label names must be the kubelet's; values are the
snapshot's own integers in the kubelet's units; timestamps where the kubelet gives them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from exporter.http.cadvisor import HELP
from exporter.node.state import State
from extractor.contract import Snapshot
from tests.support.exporter_doubles import (
    FakeLookup,
    client_for,
    workload_meta,
    workload_snapshot,
)

HERE = Path(__file__).parent / "cadvisor"
T0 = 1_782_468_000.0
ISSUE_FAMILIES = {
    "container_cpu_usage_seconds_total",
    "container_cpu_user_seconds_total",
    "container_cpu_system_seconds_total",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "container_memory_rss",
    "container_memory_cache",
    "container_memory_max_usage_bytes",
    "container_oom_events_total",
    "container_spec_cpu_quota",
    "container_spec_cpu_period",
    "container_spec_memory_limit_bytes",
    "container_start_time_seconds",
}


def families(text: str) -> dict[str, Metric]:
    """Families by the name the text gives them (the parser drops a counter's ``_total``)."""
    return {
        f"{f.name}_total" if f.type == "counter" else f.name: f
        for f in text_string_to_metric_families(text)
    }


def captured(name: str) -> dict[str, Metric]:
    return families((HERE / name).read_text())


def label_sets(family: Metric) -> set[frozenset[str]]:
    return {frozenset(s.labels) for s in family.samples}


async def served(state: State, path: str, lookup: FakeLookup | None = None) -> str:
    async with client_for(state, lookup) as client:
        resp = await client.get(path)
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await resp.text()


def two_passes(details_at: float | None = None) -> State:
    state = State()
    state.record(workload_snapshot(T0, 3_000_000_000, details_at=details_at))
    state.record(workload_snapshot(T0 + 10, 4_000_000_000, details_at=details_at))
    return state


def series(family: Metric, **labels: str) -> list[tuple[dict[str, str], float, float | None]]:
    """(labels, value, timestamp in seconds) of the samples with these labels."""
    return [
        (s.labels, s.value, None if s.timestamp is None else float(s.timestamp))
        for s in family.samples
        if all(s.labels.get(k) == v for k, v in labels.items())
    ]


async def test_families_types_help_and_labels_are_the_kubelets() -> None:
    kubelet = captured("kubelet-1.35-metrics-cadvisor.txt")
    ours = families(await served(two_passes(), "/metrics/cadvisor"))
    assert set(ours) == set(HELP)  # every family it can fill, nothing else
    assert set(ours) >= ISSUE_FAMILIES
    for name, family in ours.items():
        theirs = kubelet[name]
        assert (family.type, family.documentation) == (theirs.type, theirs.documentation), name
        assert label_sets(family) <= label_sets(theirs), name
        # Stats carry the time they were read, spec values none: as the kubelet's do.
        assert {s.timestamp is None for s in family.samples} == {
            s.timestamp is None for s in theirs.samples
        }, name


async def test_pod_sandbox_and_container_series_are_labelled_as_the_kubelet_labels_them() -> None:
    kubelet = captured("kubelet-1.35-metrics-cadvisor.txt")
    snap = workload_snapshot(T0 + 10, 4_000_000_000)
    ours = families(await served(two_passes(), "/metrics/cadvisor"))
    cpu, theirs = (
        ours["container_cpu_usage_seconds_total"],
        kubelet["container_cpu_usage_seconds_total"],
    )
    sandbox, app = snap.containers
    pod = snap.pods[0]
    # The shapes: pod cgroup without container, image and name; the app container named.
    (theirs_pod,) = [s.labels for s in theirs.samples if s.labels["id"].count("/") == 3]
    assert (theirs_pod["container"], theirs_pod["image"], theirs_pod["name"]) == ("", "", "")
    assert pod.usage is not None and app.usage is not None and app.usage.cpu is not None
    ((labels, value, at),) = series(cpu, id=pod.usage.cgroup)
    assert (labels["container"], labels["image"], labels["name"], labels["cpu"]) == (
        "",
        "",
        "",
        "total",
    )
    assert (labels["namespace"], labels["pod"]) == (pod.namespace, pod.name)
    assert pod.usage.cpu is not None and value == pod.usage.cpu.usage_ns / 1e9
    assert at == snap.taken_at
    ((labels, value, _),) = series(cpu, id=app.usage.cgroup)
    assert (labels["container"], labels["image"], labels["name"]) == (app.name, app.image, app.id)
    assert value == app.usage.cpu.usage_ns / 1e9
    # The pod's network on its sandbox, as the kubelet puts it there.
    rx = ours["container_network_receive_bytes_total"]
    ((labels, value, at),) = series(rx, interface="eth0")
    assert (labels["container"], labels["id"], labels["image"], labels["name"]) == (
        "",
        sandbox.cgroup,
        sandbox.image,
        sandbox.id,
    )
    assert pod.network is not None and value == pod.network[0].rx_bytes and at == snap.taken_at
    (theirs_rx,) = [
        s.labels
        for s in kubelet["container_network_receive_bytes_total"].samples
        if s.labels["interface"] == "eth0"
    ]
    assert theirs_rx["container"] == "" and "pause" in theirs_rx["image"]


async def test_values_in_the_kubelets_units() -> None:
    snap = workload_snapshot(T0 + 10, 4_000_000_000)
    ours = families(await served(two_passes(), "/metrics/cadvisor"))
    app = snap.containers[1]
    assert app.usage is not None and app.usage.cpu is not None and app.usage.memory is not None
    cpu, memory, pressure = app.usage.cpu, app.usage.memory, app.usage.pressure
    cg = app.usage.cgroup

    def one(name: str, **labels: str) -> float:
        ((_, value, _),) = series(ours[name], id=cg, **labels)
        return value

    assert one("container_cpu_cfs_throttled_seconds_total") == (cpu.throttled_ns or 0) / 1e9
    assert one("container_cpu_cfs_periods_total") == cpu.periods
    assert one("container_spec_cpu_quota") == cpu.quota_us  # µs, as the kernel and cAdvisor
    assert one("container_spec_cpu_period") == cpu.period_us
    assert one("container_memory_rss") == memory.rss_bytes
    assert one("container_memory_cache") == memory.cache_bytes
    assert one("container_oom_events_total") == memory.oom_kills
    assert one("container_spec_memory_limit_bytes") == memory.limit_bytes
    assert one("container_start_time_seconds") == int(app.started_at or 0)
    assert pressure is not None
    assert one("container_pressure_cpu_waiting_seconds_total") == (pressure.cpu_some_ns or 0) / 1e9
    assert one("container_pressure_io_stalled_seconds_total") == (pressure.io_full_ns or 0) / 1e9
    (device,) = app.usage.block_io or []
    assert one("container_fs_writes_bytes_total", device="/dev/vda") == device.write_bytes
    assert one("container_fs_reads_total", device="/dev/vda") == device.reads
    blkio = "container_blkio_device_usage_total"
    assert one(blkio, operation="Read", major="254", minor="0") == device.read_bytes
    assert one(blkio, operation="Write", device="/dev/vda") == device.write_bytes


async def test_details_carry_the_time_they_were_read() -> None:
    """Counters re-read every few passes are served with their reading's time; CPU and
    memory usage with the pass's (v2: the user/system split comes with the usage)."""
    read = T0 + 2.5
    ours = families(await served(two_passes(details_at=read), "/metrics/cadvisor"))
    taken = T0 + 10
    stamps = {name: {s.timestamp for s in family.samples} - {None} for name, family in ours.items()}
    for name in (
        "container_cpu_usage_seconds_total",
        "container_cpu_user_seconds_total",
        "container_memory_working_set_bytes",
    ):
        assert stamps[name] == {taken}, name
    for name in (
        "container_memory_max_usage_bytes",
        "container_memory_rss",
        "container_oom_events_total",
        "container_pressure_cpu_waiting_seconds_total",
        "container_fs_reads_bytes_total",
        "container_network_receive_bytes_total",
    ):
        assert stamps[name] == {read}, name


async def test_no_quota_means_no_quota_or_throttling_series_and_unlimited_is_zero() -> None:
    snap = workload_snapshot(T0)
    app = snap.containers[1]
    assert app.usage is not None and app.usage.cpu is not None and app.usage.memory is not None
    app.usage.cpu.quota_us = None
    app.usage.memory.limit_bytes = None
    state = State()
    state.record(snap)
    ours = families(await served(state, "/metrics/cadvisor"))
    for name in ("container_spec_cpu_quota", "container_cpu_cfs_periods_total"):
        assert not series(ours[name], id=app.usage.cgroup), name
    ((_, limit, _),) = series(ours["container_spec_memory_limit_bytes"], id=app.usage.cgroup)
    assert limit == 0  # cAdvisor's "unlimited"


def ksm_rows(family: Metric) -> Iterable[dict[str, str]]:
    return (s.labels for s in family.samples)


async def test_requests_and_limits_as_kube_state_metrics_names_them() -> None:
    ksm = captured("kube-state-metrics-1.35.txt")
    meta = workload_meta()
    ours = families(await served(two_passes(), "/metrics", FakeLookup([meta])))
    for name, theirs in ksm.items():
        family = ours[name]
        assert (family.type, family.documentation) == (theirs.type, theirs.documentation), name
        assert label_sets(family) == label_sets(theirs) or not theirs.samples, name
    requests = ours["kube_pod_container_resource_requests"]
    app = next(c for c in meta.containers if c.kind == "regular")
    got = {
        (s.labels["container"], s.labels["resource"], s.labels["unit"]): s.value
        for s in requests.samples
    }
    assert got == {
        (app.name, "cpu", "core"): (app.cpu_request_millicores or 0) / 1000,
        (app.name, "memory", "byte"): app.memory_request_bytes,
    }
    init = ours["kube_pod_init_container_resource_limits"]
    assert {s.labels["container"] for s in init.samples} == {"setup", "log-shipper"}
    units = {s.labels["unit"] for s in ours["kube_pod_resource_request"].samples}
    assert units == {"cores", "bytes"}


def test_the_snapshot_used_here_is_a_valid_contract_document() -> None:
    snap = workload_snapshot(T0)
    assert Snapshot.model_validate_json(snap.model_dump_json()) == snap
