"""The nested JSON view and the table of a Snapshot."""

from __future__ import annotations

from typing import Any

import orjson

from extractor.commands.render import (
    COLUMNS,
    human_bytes,
    human_duration,
    render_json,
    render_table,
)
from extractor.contract import (
    SCHEMA_VERSION,
    Container,
    Cpu,
    Fingerprint,
    Memory,
    Pod,
    RuntimeComponent,
    Snapshot,
    Usage,
)

UID_A = "11111111-1111-1111-1111-111111111111"
UID_B = "22222222-2222-2222-2222-222222222222"
UID_C = "33333333-3333-3333-3333-333333333333"


def usage(cgroup: str, cpu_ns: int, ws: int) -> Usage:
    return Usage(
        cgroup=cgroup,
        cpu=Cpu(usage_ns=cpu_ns, user_ns=cpu_ns // 2, system_ns=cpu_ns // 4),
        memory=Memory(current_bytes=ws * 2, working_set_bytes=ws),
        pids=3,
    )


def app(cid: str, name: str | None, uid: str | None, ns: str | None, pod: str | None) -> Container:
    return Container(
        id=cid,
        runtime="containerd",
        name=name,
        namespace=ns,
        pod_name=pod,
        pod_uid=uid,
        pids=[100],
        runtime_seconds=125.0,
        usage=usage(f"/kubepods/pod{uid}/{cid}", 2_500_000_000, 10 * 1024 * 1024),
    )


def snapshot() -> Snapshot:
    sandbox = Container(
        id="s" * 64, runtime="containerd", namespace="shop", pod_name="cart", pod_uid=UID_A
    )
    sandbox.sandbox = True
    web = app("w" * 64, "web", UID_A, "shop", "cart")
    web.fingerprint = Fingerprint(
        os="debian", osVersion="12", kind="Java", kindVersion="17.0.13", runtimes=[]
    )
    web.fingerprint.runtimes.append(RuntimeComponent(name="Quarkus", version="3.15.3"))
    return Snapshot(
        node="node-1",
        taken_at=1_700_000_000.0,
        cgroup_version="v2",
        pods=[
            Pod(
                uid=UID_A,
                namespace="shop",
                name="cart",
                qos="burstable",
                usage=usage(f"/kubepods/pod{UID_A}", 9_000_000_000, 50 << 20),
                container_ids=["s" * 64, "w" * 64],
            ),
            Pod(uid=UID_B, namespace="shop", name="twin", usage=None),
            Pod(uid=UID_C, namespace="shop", name="twin", usage=None),
        ],
        containers=[
            sandbox,
            web,
            app("d1" * 32, "dup", UID_B, "shop", "twin"),
            app("d2" * 32, "dup", UID_B, "shop", "twin"),
            app("e" * 64, None, None, None, None).model_copy(update={"runtime": "docker"}),
            app("f" * 64, None, "44444444-4444-4444-4444-444444444444", None, None),
        ],
        errors=["one hierarchy unreadable"],
    )


def doc() -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(render_json(snapshot()))
    return parsed


def test_top_level_fields() -> None:
    d = doc()
    assert d["schemaVersion"] == SCHEMA_VERSION and d["node"] == "node-1"
    assert d["cgroupVersion"] == "v2"
    assert d["takenAt"] == "2023-11-14T22:13:20Z"
    assert d["errors"] == ["one hierarchy unreadable"]


def test_namespace_pod_container_nesting_with_pod_totals() -> None:
    pod = doc()["namespaces"]["shop"]["cart"]
    assert pod["uid"] == UID_A and pod["qos"] == "burstable"
    assert (pod["name"], pod["namespace"]) == ("cart", "shop")
    assert pod["cpu"]["totalSeconds"] == 9.0 and pod["memory"]["workingSetBytes"] == 50 << 20
    assert list(pod["containers"]) == ["web"]
    web = pod["containers"]["web"]
    assert web["id"] == "w" * 64
    assert web["cpu"]["totalSeconds"] == 2.5 and web["cpu"]["userSeconds"] == 1.25
    assert web["cpu"]["systemSeconds"] == 0.625 and web["cpu"]["throttledSeconds"] is None
    assert web["memory"]["workingSetBytes"] == 10 << 20
    assert web["memory"]["currentBytes"] == 20 << 20
    assert web["runtimeSeconds"] == 125.0 and web["tasks"] == 3 and web["sandbox"] is False
    assert web["fingerprint"] == {
        "os": "debian",
        "osVersion": "12",
        "kind": "Java",
        "kindVersion": "17.0.13",
        "runtimes": [{"name": "Quarkus", "version": "3.15.3"}],
    }


def test_sandbox_is_the_pods_not_an_app_container() -> None:
    pod = doc()["namespaces"]["shop"]["cart"]
    assert pod["sandbox"]["id"] == "s" * 64
    assert all(c["id"] != "s" * 64 for c in pod["containers"].values())


def test_same_named_pods_are_keyed_by_uid_and_same_named_containers_by_id() -> None:
    shop = doc()["namespaces"]["shop"]
    assert "twin" not in shop
    assert set(shop) == {"cart", UID_B, UID_C}
    assert set(shop[UID_B]["containers"]) == {"d1" * 32, "d2" * 32}
    assert shop[UID_C]["containers"] == {} and shop[UID_C]["cpu"]["totalSeconds"] is None


def test_containers_without_pod_metadata_group_under_their_runtime() -> None:
    namespaces = doc()["namespaces"]
    assert set(namespaces["<docker>"]["<none>"]["containers"]) == {"e" * 64}
    assert namespaces["<docker>"]["<none>"]["uid"] is None
    unlabeled = namespaces["<containerd>"]["44444444-4444-4444-4444-444444444444"]
    assert set(unlabeled["containers"]) == {"f" * 64}


def test_every_container_appears_exactly_once() -> None:
    seen: list[str] = []
    for pods in doc()["namespaces"].values():
        for pod in pods.values():
            seen += [c["id"] for c in pod["containers"].values()]
            if pod["sandbox"]:
                seen.append(pod["sandbox"]["id"])
    assert sorted(seen) == sorted(c.id for c in snapshot().containers)


def test_json_is_sorted_and_indented() -> None:
    text = render_json(snapshot())
    assert text.startswith('{\n  "cgroupVersion"')
    assert (
        text
        == orjson.dumps(
            orjson.loads(text), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        ).decode()
    )


def test_empty_snapshot() -> None:
    empty = Snapshot(node="n", taken_at=0.0, cgroup_version="v1")
    assert orjson.loads(render_json(empty))["namespaces"] == {}
    header, summary = render_table(empty).splitlines()
    assert header.split() == list(COLUMNS)
    assert summary == "0 containers in 0 pods on n (cgroup v1, 0 errors)"


def test_table_rows_are_aligned_and_skip_sandboxes() -> None:
    snap = snapshot()
    *lines, summary = render_table(snap).splitlines()
    assert lines[0].split() == list(COLUMNS)
    assert len(lines) == 1 + 5
    pods = {c.pod_uid for c in snap.containers if c.pod_uid}
    assert summary.startswith(f"5 containers in {len(pods)} pods on {snap.node} ")
    web = next(line for line in lines if " web " in line)
    assert web.split() == [
        "shop",
        "cart",
        "web",
        "w" * 12,
        "2.50",
        "2m05s",
        "10.0Mi",
        "Java",
        "17.0.13",
    ]
    column = lines[0].index("ID")
    assert all(line[column : column + 12].strip() for line in lines[1:])
    assert not any("s" * 12 in line for line in lines)


def test_human_units() -> None:
    assert human_bytes(None) == "-" and human_bytes(512) == "512B"
    assert human_bytes(1536) == "1.5Ki" and human_bytes(3 << 40) == "3.0Ti"
    assert human_duration(None) == "-" and human_duration(59.9) == "59s"
    assert human_duration(3600 * 5 + 60) == "5h01m" and human_duration(86400 * 2 + 7200) == "2d2h"


def test_a_second_sandbox_stays_listed_and_marked() -> None:
    snap = snapshot()
    old = Container(id="0" * 64, runtime="containerd", pod_uid=UID_A, sandbox=True)
    snap.containers.insert(0, old)
    pod = orjson.loads(render_json(snap))["namespaces"]["shop"]["cart"]
    assert pod["sandbox"]["id"] == "0" * 64
    assert pod["containers"]["s" * 64]["sandbox"] is True
    assert "s" * 12 not in render_table(snap) and "0" * 12 not in render_table(snap)
