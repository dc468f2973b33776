"""Closed windows as CloudEvents: both collectors' conventions, choosing what is billed,
one identity per pod for its life, richer usage in the right units, valid events only."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporter.kube.podmeta import ContainerStatus, Owner, PodMeta
from exporter.kube.selectors import parse_selector
from exporter.meter.billing import Billing
from exporter.meter.events import Event, whole_seconds
from exporter.meter.pipeline import Meter
from exporter.meter.spool import Spool
from extractor.contract import rfc3339_millis as rfc3339
from tests.support.meter_snapshots import C, E, P, X, snap
from tests.support.openmeter import validate_body

UID = "7d1c2f00-0000-4000-8000-00000000000a"
OTHER = "7d1c2f00-0000-4000-8000-00000000000b"


class Collect:
    """A sender that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def describe(self) -> str:
        return "a list"

    async def send(self, events: list[Event]) -> None:
        self.events.extend(events)

    async def aclose(self) -> None:
        return None


def meta(uid: str = UID, **kw: Any) -> PodMeta:
    base: dict[str, Any] = {
        "uid": uid,
        "cgroup_uid": uid,
        "namespace": "shop",
        "name": "checkout-7f9c",
        "containers": [
            ContainerStatus(
                name="app",
                container_id="a",
                cpu_request_millicores=250,
                cpu_limit_millicores=1500,
                memory_request_bytes=64 << 20,
                memory_limit_bytes=128 << 20,
                gpu_request=1,
            ),
            ContainerStatus(
                name="migrate", kind="init", container_id="j", cpu_request_millicores=2000
            ),
        ],
    }
    base.update(kw)
    return PodMeta.model_validate(base)


def meter(tmp_path: Path, billing: Billing | None = None, **kw: Any) -> tuple[Meter, Collect]:
    sink = Collect()
    return Meter(Spool(tmp_path, 1 << 20), sink, interval_seconds=60.0, billing=billing, **kw), sink


async def events_of(
    tmp_path: Path,
    metas: dict[str, PodMeta],
    billing: Billing | None = None,
    pods: tuple[P, ...] | None = None,
) -> list[Event]:
    m, sink = meter(tmp_path, billing)
    pods = pods or tuple(P(uid, 1_000, [C("a", 100), C("j", 200)]) for uid in metas)
    m.observe(snap(100.0, *pods), metas.get)
    later = tuple(
        P(p.uid, 2_500_000_001, [C("a", 400)], working_set=1 << 20, peak=3 << 20) for p in pods
    )
    m.observe(snap(160.0, *later), metas.get)
    assert await m.deliver_once()
    await m.stop()
    return sink.events


async def test_collector_mode_maps_pods_like_the_collector(tmp_path: Path) -> None:
    m = meta(
        annotations={
            "openmeter.io/subject": "customer-42",
            "data.openmeter.io/plan": "gold",
            "data.openmeter.io/pod_name": "spoofed",
        },
        labels={"k8s.openmeter.cloud/data-team": "payments"},
        owner=Owner(kind="Deployment", name="checkout"),
    )
    (e,) = await events_of(tmp_path, {UID: m})
    assert (e["type"], e["source"], e["subject"]) == (
        "kube-pod-exec-time",
        "kubernetes-api",
        "customer-42",
    )
    d = e["data"]
    assert d["plan"] == "gold" and "team" not in d  # the collector copies annotations
    assert (d["pod_name"], d["pod_namespace"], d["pod_uid"]) == ("checkout-7f9c", "shop", UID)
    assert (d["owner_kind"], d["owner_name"], d["node_name"]) == (
        "Deployment",
        "checkout",
        "node-a",
    )
    assert d["duration_seconds"] == 60.0 and d["cpu_ns"] == 2_500_000_001 - 1_000
    assert d["cpu_seconds"] == pytest.approx(2.5)
    # "j" (the init container) exited unseen: the pod's remainder of that poll is its
    assert d["containers"] == {"app": 300, "migrate": 2_500_000_001 - 1_000 - 300}
    validate_body("application/cloudevents-batch+json", orjson.dumps([e]))


async def test_requests_and_limits_are_cores_and_bytes_with_their_seconds(tmp_path: Path) -> None:
    (e,) = await events_of(tmp_path, {UID: meta()})
    d = e["data"]
    # the pod reserves what its regular containers request (the init container's 2 cores
    # are over when it runs): 0.25 cores, never "millicores"
    assert (d["cpu_request_cores"], d["cpu_limit_cores"]) == (0.25, 1.5)
    assert (d["memory_request_bytes"], d["memory_limit_bytes"]) == (64 << 20, 128 << 20)
    assert d["gpu_request"] == 1 and d["gpu_request_seconds"] == 60.0
    assert d["cpu_request_core_seconds"] == pytest.approx(0.25 * 60)
    assert d["cpu_limit_core_seconds"] == pytest.approx(1.5 * 60)
    assert d["memory_request_byte_seconds"] == pytest.approx((64 << 20) * 60)
    assert not any("millicores" in k for k in d)


async def test_memory_is_gb_seconds_of_working_set_and_the_window_peak(tmp_path: Path) -> None:
    (e,) = await events_of(tmp_path, {UID: meta()})
    d = e["data"]
    assert d["memory_working_set_gb_seconds"] == pytest.approx((1 << 20) * 60 / 1e9)
    assert d["memory_working_set_peak_bytes"] == 1 << 20
    assert d["memory_peak_bytes"] == 3 << 20


async def test_watcher_mode_bills_only_monitored_pods_as_the_watcher_does(tmp_path: Path) -> None:
    watched = meta(
        labels={
            "k8s.openmeter.cloud/monitor": "kernel_runtime",
            "k8s.openmeter.cloud/subject": "eli-test",
            "k8s.openmeter.cloud/data-hardware_size": "small",
        },
        annotations={"data.openmeter.io/plan": "gold", "openmeter.io/subject": "other"},
    )
    plain = meta(uid=OTHER, name="unlabelled")
    (e,) = await events_of(tmp_path, {UID: watched, OTHER: plain}, Billing(mode="watcher"))
    assert (e["type"], e["subject"]) == ("kernel_runtime", "eli-test")
    d = e["data"]
    assert d["hardware_size"] == "small" and "plan" not in d
    assert d["duration"] == "60" and isinstance(d["duration"], str)
    assert d["duration_seconds"] == 60.0


def test_the_watchers_whole_seconds_carry_their_fractions_over() -> None:
    windows = [2_400_000_000, 2_400_000_000, 2_400_000_000, 1_000_000_000]
    billed, before = [], 0
    for w in windows:
        billed.append(whole_seconds(before, w))
        before += w
    assert billed == [2, 2, 3, 1] and sum(billed) == int(sum(windows) / 1e9)


@pytest.mark.parametrize(
    ("billing", "billed"),
    [
        (Billing(namespaces=frozenset({"shop"})), {UID}),
        (Billing(namespaces=frozenset({"shop", "batch"})), {UID, OTHER}),
        (Billing(selector=parse_selector("tier in (web),!canary")), {OTHER}),
        (Billing(opt_in_label="billing.example.com/on"), {UID}),
    ],
)
async def test_what_is_billed_is_chosen_by_namespace_selector_and_opt_in_label(
    tmp_path: Path, billing: Billing, billed: set[str]
) -> None:
    metas = {
        UID: meta(labels={"billing.example.com/on": "", "tier": "web", "canary": "1"}),
        OTHER: meta(uid=OTHER, namespace="batch", name="job-1", labels={"tier": "web"}),
    }
    events = await events_of(tmp_path, metas, billing)
    assert {e["data"]["pod_uid"] for e in events} == billed


async def test_per_container_events_split_the_pod_exactly(tmp_path: Path) -> None:
    events = await events_of(tmp_path, {UID: meta()}, Billing(per="container"))
    by_name = {e["data"]["container_name"]: e for e in events}
    assert set(by_name) == {"app", "migrate"}
    assert sum(e["data"]["cpu_ns"] for e in events) == 2_500_000_001 - 1_000
    app = by_name["app"]["data"]
    assert app["runtime_seconds"] == 60.0 and app["cpu_request_cores"] == 0.25
    assert len({e["id"] for e in events}) == 2
    assert all(e["subject"] == "checkout-7f9c" for e in events)


async def test_a_pod_keeps_its_subject_for_life_even_across_an_exporter_restart(
    tmp_path: Path,
) -> None:
    """Finding 4: the first window is billed to the annotation's subject; then the pod is
    deleted from the API (no metadata), the exporter restarts, and the pod's last CPU
    comes as a tombstone: it must still go to the same subject with the same data."""
    m1 = meta(annotations={"openmeter.io/subject": "customer-42", "data.openmeter.io/plan": "a"})
    first, sink = meter(tmp_path)
    first.observe(snap(100.0, P(UID, 1_000, [C("a", 100)])), {UID: m1}.get)
    first.observe(snap(160.0, P(UID, 5_000, [C("a", 4_000)])), {UID: m1}.get)
    assert await first.deliver_once()
    first.spool.close()  # killed
    second, sink2 = meter(tmp_path)
    tomb = X(UID, 9_000, started=90.0, exited=170.0, name="checkout-7f9c", namespace="shop")
    second.observe(snap(175.0, exited=(tomb,)), lambda uid: None)
    second.observe(snap(230.0, exited=(tomb,)), lambda uid: None)
    assert await second.deliver_once()
    (before,), (after,) = sink.events, sink2.events
    assert before["subject"] == after["subject"] == "customer-42"
    assert after["data"]["plan"] == "a" and after["data"]["cpu_ns"] == 4_000
    assert after["data"]["duration_seconds"] == 10.0  # to its exit at 170, not the poll
    await second.stop()


async def test_a_pod_without_metadata_yet_is_held_then_billed_under_its_runtime_names(
    tmp_path: Path,
) -> None:
    """While the API may still tell (the reflector syncing, a watch lagging), the window is
    held open instead of deciding the pod's subject from less."""
    m, sink = meter(tmp_path, Billing(metadata_wait_seconds=120.0), metadata_expected=True)
    pods: dict[str, PodMeta] = {}
    m.observe(snap(100.0, P(UID, 1_000, [C("a", 100)])), pods.get)
    m.observe(snap(160.0, P(UID, 2_000, [C("a", 100)])), pods.get)
    assert m.state.open and await m.deliver_once() and sink.events == []
    pods[UID] = meta(annotations={"openmeter.io/subject": "late-but-right"})
    m.observe(snap(220.0, P(UID, 3_000, [C("a", 100)])), pods.get)
    assert await m.deliver_once()
    (e,) = sink.events
    assert e["subject"] == "late-but-right" and e["data"]["cpu_ns"] == 2_000
    assert e["data"]["duration_seconds"] == 120.0  # one event for the held span
    nobody = "7d1c2f00-0000-4000-8000-00000000000c"
    for at in (280.0, 340.0, 400.0, 460.0):
        m.observe(snap(at, P(nobody, 5_000 + int(at), [C("z", 1, started=250.0)])), pods.get)
    assert await m.deliver_once()
    assert {e["subject"] for e in sink.events[1:]} == {"web"}  # the runtime's pod name
    await m.stop()


async def test_ids_are_deterministic_and_windows_tile(tmp_path: Path) -> None:
    again = tmp_path / "again"
    again.mkdir()
    a = await events_of(tmp_path, {UID: meta()})
    b = await events_of(again, {UID: meta()})
    assert [e["id"] for e in a] == [e["id"] for e in b]
    (e,) = a
    assert e["data"]["window_start"] == rfc3339(100.0) and e["time"] == rfc3339(160.0)
    assert e["data"]["window_end"] == e["time"]


def test_time_is_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(1_700_000_000.123456) == "2023-11-14T22:13:20.123Z"
    parsed = datetime.fromisoformat(rfc3339(1_700_000_000.5).replace("Z", "+00:00"))
    assert parsed.timestamp() == 1_700_000_000.5


async def test_nothing_in_an_event_is_negative_or_null(tmp_path: Path) -> None:
    runs = (E("j", UID, started=95.0, exited=130.0, cpu=99_999, name="migrate"),)
    m, sink = meter(tmp_path)
    m.observe(snap(100.0, P(UID, 1_000, [C("a", 100), C("j", 200)])), {UID: meta()}.get)
    m.observe(snap(160.0, P(UID, 1_500, [C("a", 400)]), ended=runs), {UID: meta()}.get)
    assert await m.deliver_once()
    (e,) = sink.events

    def walk(value: object) -> None:
        assert value is not None
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            assert value >= 0

    walk(e["data"])
    assert sum(e["data"]["containers"].values()) == e["data"]["cpu_ns"] == 500
    await m.stop()
