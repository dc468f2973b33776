"""CloudEvents from pod windows: collector-compatible mapping, deterministic ids, accrual."""

from __future__ import annotations

from datetime import datetime

import orjson

from exporter.kube.podmeta import ContainerStatus, Owner, PodMeta
from exporter.meter.accrual import accrue, close
from exporter.meter.deltas import Marks, PodWindow, compute
from exporter.meter.events import Event, container_names, split_by_container
from extractor.contract import rfc3339_millis as rfc3339
from tests.support.meter_snapshots import C, P, snap
from tests.support.openmeter import validate_body

UID = "7d1c2f00-0000-4000-8000-00000000000a"


def meta(**kw: object) -> PodMeta:
    base: dict[str, object] = {
        "uid": UID,
        "cgroup_uid": UID,
        "namespace": "shop",
        "name": "checkout-7f9c",
        "containers": [
            ContainerStatus(name="app", container_id="a"),
            ContainerStatus(name="migrate", kind="init", container_id="j"),
        ],
    }
    base.update(kw)
    return PodMeta.model_validate(base)


def windows(first_pod: P, second_pod: P, t0: float = 100.0, t1: float = 160.0) -> list[PodWindow]:
    marks = compute(Marks(), snap(t0, first_pod)).marks
    return compute(marks, snap(t1, second_pod)).windows


def one_event(pod_meta: PodMeta | None, source: str = "kubernetes-api") -> Event:
    ws = windows(
        P(UID, 1_000, [C("a", 100), C("j", 200)]),
        P(UID, 2_500_000_001, [C("a", 400)], working_set=1 << 20),
    )
    opened = accrue({}, ws, lambda uid: pod_meta if uid == UID else None, "node-a")
    (event,) = close(opened, source, "kube-pod-exec-time")
    return event


def test_event_maps_pod_metadata_like_the_openmeter_collector() -> None:
    m = meta(
        annotations={
            "openmeter.io/subject": "customer-42",
            "data.openmeter.io/plan": "gold",
            "data.openmeter.io/pod_name": "spoofed",
        },
        labels={"k8s.openmeter.cloud/data-team": "payments"},
        owner=Owner(kind="Deployment", name="checkout"),
    )
    e = one_event(m)
    assert (e["specversion"], e["type"], e["source"]) == (
        "1.0",
        "kube-pod-exec-time",
        "kubernetes-api",
    )
    assert e["subject"] == "customer-42"
    d = e["data"]
    # our fields win over a data annotation of the same name, as in the collector preset
    assert (d["pod_name"], d["pod_namespace"], d["plan"], d["team"]) == (
        "checkout-7f9c",
        "shop",
        "gold",
        "payments",
    )
    assert (d["owner_kind"], d["owner_name"], d["node_name"]) == (
        "Deployment",
        "checkout",
        "node-a",
    )
    assert d["cpu_ns"] == 2_500_000_001 - 1_000 and isinstance(d["cpu_ns"], int)
    assert d["cpu_seconds"] == d["cpu_ns"] / 1e9
    assert d["duration_seconds"] == 60.0
    assert d["memory_working_set_bytes"] == 1 << 20
    # the exited init container gets the remainder under its name from the API
    assert d["containers"] == {"app": 300, "migrate": d["cpu_ns"] - 300}
    assert datetime.fromisoformat(e["time"]).timestamp() == 160.0
    assert validate_body("application/cloudevents-batch+json", orjson.dumps([e])) == [e]


def test_subject_falls_back_to_the_watcher_label_then_the_pod_name() -> None:
    assert one_event(meta(labels={"k8s.openmeter.cloud/subject": "eli"}))["subject"] == "eli"
    assert one_event(meta())["subject"] == "checkout-7f9c"
    # no API metadata: the runtime's pod name from the snapshot
    assert one_event(None)["subject"] == "web"


def test_ids_are_deterministic_and_differ_between_windows() -> None:
    assert one_event(meta())["id"] == one_event(meta())["id"]
    assert one_event(meta())["id"] != one_event(meta(), source="other")["id"]
    # two idle windows have equal counters; their times still tell them apart
    idle = P(UID, 1_000, [C("a", 100)])
    a = close(accrue({}, windows(idle, idle, 100.0, 160.0), lambda _: None, "n"), "s", "t")
    b = close(accrue({}, windows(idle, idle, 160.0, 220.0), lambda _: None, "n"), "s", "t")
    assert a[0]["data"]["cpu_ns"] == b[0]["data"]["cpu_ns"] == 0
    assert a[0]["id"] != b[0]["id"]


def test_accrual_adds_polls_into_one_window_and_keeps_metadata_of_a_gone_pod() -> None:
    m0 = compute(Marks(), snap(0.0, P(UID, 0, [C("a", 0)]))).marks
    first = compute(m0, snap(10.0, P(UID, 700, [C("a", 500)])))
    opened = accrue({}, first.windows, lambda _: meta(), "n")
    second = compute(first.marks, snap(20.0, P(UID, 1_000, [C("a", 600)])))
    opened = accrue(opened, second.windows, lambda _: None, "n")  # pod deleted from the API
    (e,) = close(opened, "s", "t")
    assert e["data"]["cpu_ns"] == 1_000 and e["data"]["duration_seconds"] == 20.0
    assert e["data"]["containers"] == {"app": 600, "<pod>": 400}
    assert e["subject"] == "checkout-7f9c" and e["data"]["pod_namespace"] == "shop"


def test_remainder_of_several_exited_containers_is_labelled_exited() -> None:
    (w,) = windows(
        P(UID, 0, [C("a", 0), C("j", 0), C("k", 0)]),
        P(UID, 900, [C("a", 100)]),
    )
    assert split_by_container(w, container_names(w, meta())) == {"app": 100, "<exited>": 800}


def test_time_is_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"
