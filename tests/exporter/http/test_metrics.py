"""/metrics parses as Prometheus text and every value equals the snapshot's counter."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from exporter.node.state import State
from extractor.contract import Container
from tests.support.exporter_doubles import FakeLookup, api_meta_for, client_for, standard_snapshot

T0 = 1_700_000_000.0


async def _scrape(state: State, lookup: FakeLookup | None = None) -> dict[str, list[Sample]]:
    async with client_for(state, lookup) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def _cpu(c: Container, field: str) -> float:
    assert c.usage is not None and c.usage.cpu is not None
    return float(getattr(c.usage.cpu, field)) / 1e9


def _mem(c: Container, field: str) -> float:
    assert c.usage is not None and c.usage.memory is not None
    return float(getattr(c.usage.memory, field))


def _by_id(samples: list[Sample], label: str = "container_id") -> dict[str, Sample]:
    return {s.labels[label]: s for s in samples}


async def test_container_values_equal_the_snapshot() -> None:
    state = State()
    state.record(standard_snapshot(T0))
    assert state.snapshot is not None
    samples = await _scrape(state)
    apps = [c for c in state.snapshot.containers if not c.sandbox]
    fields: dict[str, Callable[[Container], float | None]] = {
        "cpu_seconds_total": lambda c: _cpu(c, "usage_ns"),
        "cpu_user_seconds_total": lambda c: _cpu(c, "user_ns"),
        "cpu_system_seconds_total": lambda c: _cpu(c, "system_ns"),
        "cpu_throttled_seconds_total": lambda c: _cpu(c, "throttled_ns"),
        "memory_working_set_bytes": lambda c: _mem(c, "working_set_bytes"),
        "memory_usage_bytes": lambda c: _mem(c, "current_bytes"),
        "memory_peak_bytes": lambda c: _mem(c, "peak_bytes"),
        "runtime_seconds": lambda c: c.runtime_seconds,
    }
    for short, read in fields.items():
        name = f"runtime_insights_container_{short}"
        got = _by_id(samples[name])
        assert set(got) == {c.id for c in apps}, name
        for c in apps:
            assert got[c.id].value == read(c), name
            assert got[c.id].labels["namespace"] == c.namespace
            assert got[c.id].labels["pod"] == c.pod_name
            assert got[c.id].labels["container"] == c.name
    # no API: no restart counts to report
    assert "runtime_insights_container_restarts" not in samples


async def test_fingerprint_info_metric() -> None:
    state = State()
    state.record(standard_snapshot(T0))
    assert state.snapshot is not None
    info = _by_id((await _scrape(state))["runtime_insights_container_fingerprint_info"])
    for c in state.snapshot.containers:
        if c.sandbox:
            assert c.id not in info
            continue
        fp = c.fingerprint
        labels = info[c.id].labels
        assert info[c.id].value == 1.0
        assert labels["kind"] == ((fp.kind if fp else None) or "")
        assert labels["kind_version"] == ((fp.kindVersion if fp else None) or "")
        assert labels["os"] == ((fp.os if fp else None) or "")
        assert labels["runtime"] == c.runtime
        assert labels["metadata_source"] == "runtime"


async def test_pod_values_and_api_names() -> None:
    state = State()
    state.record(standard_snapshot(T0))
    assert state.snapshot is not None
    metas = api_meta_for(state.snapshot)
    samples = await _scrape(state, FakeLookup(metas))
    pods = _by_id(samples["runtime_insights_pod_cpu_seconds_total"], "pod_uid")
    names = {m.uid: m.name for m in metas}
    for p in state.snapshot.pods:
        assert p.usage is not None and p.usage.cpu is not None
        assert pods[p.uid].value == p.usage.cpu.usage_ns / 1e9
        assert pods[p.uid].labels["pod"] == names[p.uid]
    ws = _by_id(samples["runtime_insights_pod_memory_working_set_bytes"], "pod_uid")
    for p in state.snapshot.pods:
        assert p.usage is not None and p.usage.memory is not None
        assert ws[p.uid].value == p.usage.memory.working_set_bytes
    restarts = _by_id(samples["runtime_insights_container_restarts"])
    statuses = {st.container_id: st for m in metas for st in m.containers}
    assert {k: v.value for k, v in restarts.items()} == {
        k: float(st.restart_count) for k, st in statuses.items()
    }


async def test_exporter_health_metrics() -> None:
    state = State()
    state.record(standard_snapshot(T0))
    state.passes, state.errors = 7, 2
    assert state.snapshot is not None
    lookup = FakeLookup(api_meta_for(state.snapshot), state="disconnected")
    lookup.conversion_errors, lookup.dropped_events = 3, 11
    samples = await _scrape(state, lookup)
    reflector = {
        name: samples[f"runtime_insights_exporter_{name}_total"][0].value
        for name in ("reflector_conversion_errors", "pod_events_dropped")
    }
    assert reflector == {"reflector_conversion_errors": 3, "pod_events_dropped": 11}
    assert samples["runtime_insights_exporter_passes_total"][0].value == 7
    assert samples["runtime_insights_exporter_pass_errors_total"][0].value == 2
    assert samples["runtime_insights_exporter_last_success_timestamp_seconds"][0].value == (
        state.last_success
    )
    states = {
        s.labels["state"]: s.value for s in samples["runtime_insights_exporter_reflector_state"]
    }
    assert states == {"starting": 0, "synced": 0, "relisting": 0, "disconnected": 1}
    assert samples["runtime_insights_exporter_metadata_from_api"][0].value == 0


async def test_scrape_before_any_snapshot_has_only_health() -> None:
    samples = await _scrape(State())
    assert samples["runtime_insights_exporter_passes_total"][0].value == 0
    assert not any(name.startswith("runtime_insights_container_") for name in samples)
