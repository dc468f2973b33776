"""Pod JSON -> PodMeta: owners, static pods, quantities and every kind of container status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from kubernetes.utils.quantity import parse_quantity as official_parse_quantity

from exporter.kube.pods import PodConversionError, pod_meta, split_container_id
from exporter.kube.quantity import QuantityError, byte_count, millicores, parse_quantity
from tests.support.apiserver import FakeContainer, make_pod, rfc3339


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# Quantity forms from the Kubernetes docs "Resource Management for Pods and Containers"
# (kubernetes.io/docs/concepts/configuration/manage-resources-containers/#meaning-of-memory:
# 128974848, 129e6, 129M, 128974848000m, 123Mi) and the Quantity grammar printed by
# `kubectl explain pod.spec.containers.resources.limits` (signed number, decimal SI,
# binary SI and e-notation suffixes).
QUANTITIES = ["250m", "1", "0.1", "128Mi", "1G", "1e3", "129e6", "129M", "128974848000m",
              "123Mi", "1.5Gi", "100n", "2k", "12e-3", ".5", "1Ki", "4Ti"]  # fmt: skip


@pytest.mark.parametrize("text", QUANTITIES)
def test_quantities_match_the_official_parser_rounded_up(text: str) -> None:
    exact = Decimal(official_parse_quantity(text))  # type: ignore[no-untyped-call]
    assert parse_quantity(text) == exact
    assert millicores(text) >= exact * 1000 > millicores(text) - 1
    assert byte_count(text) >= exact > byte_count(text) - 1


def test_decimal_and_binary_suffixes_differ() -> None:
    assert byte_count("1Gi") == 2**30
    assert byte_count("1G") == 10**9
    assert millicores("250m") == 250
    assert millicores("1e3") == 1_000_000


@pytest.mark.parametrize("bad", ["12xyz", "", "Mi", "1e999999", "1.5.5", float("inf")])
def test_bad_quantities_are_a_clear_error(bad: str | float) -> None:
    with pytest.raises(QuantityError, match="quantity"):
        parse_quantity(bad)


def test_container_id_prefixes() -> None:
    assert split_container_id("containerd://abc") == ("containerd", "abc")
    assert split_container_id("cri-o://abc") == ("cri-o", "abc")
    assert split_container_id("docker://abc") == ("docker", "abc")
    assert split_container_id("abc") == (None, "abc")
    assert split_container_id(None) == (None, None)


def test_basic_fields_and_resources() -> None:
    app = FakeContainer(
        "app", requests={"cpu": "250m", "memory": "128Mi"}, limits={"cpu": "1", "memory": "1G"}
    )
    raw = make_pod(
        "web-1",
        "shop",
        node="node-a",
        containers=[app],
        labels={"a": "b"},
        annotations={"note": "x"},
        host_ip="10.1.2.3",
        pod_ip="10.244.1.7",
    )
    meta = pod_meta(raw)
    assert (meta.namespace, meta.name, meta.uid) == ("shop", "web-1", raw["metadata"]["uid"])
    assert meta.cgroup_uid == meta.uid
    assert meta.node == "node-a"
    assert meta.labels == {"a": "b"} and meta.annotations == {"note": "x"}
    assert meta.qos == raw["status"]["qosClass"].lower() == "burstable"
    assert (meta.host_ip, meta.pod_ip, meta.phase) == ("10.1.2.3", "10.244.1.7", "Running")
    assert meta.start_time == _ts(raw["status"]["startTime"])
    (c,) = meta.containers
    assert c.cpu_request_millicores == millicores("250m")
    assert c.cpu_limit_millicores == millicores("1")
    assert c.memory_request_bytes == byte_count("128Mi")
    assert c.memory_limit_bytes == byte_count("1G")


def test_static_pod_uses_the_mirror_annotation_as_cgroup_uid() -> None:
    # cgroups.md section 2: the kubelet names the cgroup after the config hash, which the
    # mirror pod carries in kubernetes.io/config.mirror; the API uid is different.
    config_hash = "d76e26fba3bf2bfd215eb29011d55250"
    raw = make_pod(
        "etcd-node-a",
        "kube-system",
        annotations={
            "kubernetes.io/config.mirror": config_hash,
            "kubernetes.io/config.hash": config_hash,
        },
        owner=("Node", "node-a"),
    )
    meta = pod_meta(raw)
    assert meta.cgroup_uid == config_hash
    assert meta.uid == raw["metadata"]["uid"] != config_hash
    assert meta.owner is not None and (meta.owner.kind, meta.owner.name) == ("Node", "node-a")


@pytest.mark.parametrize(
    ("owner", "labels", "expected"),
    [
        (
            ("ReplicaSet", "web-7d4b9c8f6"),
            {"pod-template-hash": "7d4b9c8f6"},
            ("Deployment", "web"),
        ),
        (("ReplicaSet", "hand-made"), {}, ("ReplicaSet", "hand-made")),
        (("ReplicaSet", "web-abc"), {"pod-template-hash": "zzz"}, ("ReplicaSet", "web-abc")),
        (("StatefulSet", "db"), {}, ("StatefulSet", "db")),
        (("DaemonSet", "agent"), {}, ("DaemonSet", "agent")),
        (("Job", "backup-20240101"), {"job-name": "backup-20240101"}, ("Job", "backup-20240101")),
        (None, {}, None),
    ],
)
def test_owner_resolution(
    owner: tuple[str, str] | None, labels: dict[str, str], expected: tuple[str, str] | None
) -> None:
    meta = pod_meta(make_pod("p", owner=owner, labels=labels))
    got = None if meta.owner is None else (meta.owner.kind, meta.owner.name)
    assert got == expected


def test_cronjob_job_resolves_to_its_cronjob() -> None:
    # The CronJob controller names Jobs "<cronjob>-<scheduled time in unix minutes>".
    created = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = int(created.timestamp()) // 60
    job = f"nightly-report-{minutes}"
    meta = pod_meta(make_pod("p", owner=("Job", job), start_time=created + timedelta(seconds=5)))
    assert meta.owner is not None
    assert (meta.owner.kind, meta.owner.name) == ("CronJob", "nightly-report")


def test_init_sidecar_regular_and_ephemeral_statuses() -> None:
    begin = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    init = FakeContainer(
        "migrate",
        state="terminated",
        exit_code=0,
        started_at=begin,
        finished_at=begin + timedelta(seconds=30),
    )
    sidecar = FakeContainer("proxy", restart_policy="Always", started_at=begin)
    crashed = FakeContainer(
        "worker", state="terminated", exit_code=137, restart_count=3, runtime="cri-o"
    )
    waiting = FakeContainer("late", state="waiting")
    debug = FakeContainer("debugger", image="busybox:1.36")
    raw = make_pod(
        "p",
        containers=["app", crashed, waiting],
        init_containers=[init, sidecar],
        ephemeral_containers=[debug],
    )
    meta = pod_meta(raw)
    by_name = {c.name: c for c in meta.containers}
    assert {n: c.kind for n, c in by_name.items()} == {
        "migrate": "init",
        "proxy": "sidecar",
        "app": "regular",
        "worker": "regular",
        "late": "regular",
        "debugger": "ephemeral",
    }
    statuses = [
        *raw["status"]["initContainerStatuses"],
        *raw["status"]["containerStatuses"],
        *raw["status"]["ephemeralContainerStatuses"],
    ]
    for status in statuses:
        got = by_name[status["name"]]
        raw_id = status.get("containerID")
        assert got.container_id == (raw_id.split("://")[1] if raw_id else None)
        assert got.image == status["image"] and got.image_id == status["imageID"]
        assert got.restart_count == status["restartCount"]
        assert got.state == next(iter(status["state"]))
    assert by_name["migrate"].exit_code == 0
    assert by_name["migrate"].started_at == begin.timestamp()
    assert by_name["migrate"].finished_at == (begin + timedelta(seconds=30)).timestamp()
    assert by_name["proxy"].started_at == begin.timestamp() and by_name["proxy"].state == "running"
    assert by_name["worker"].exit_code == 137 and by_name["worker"].runtime == "cri-o"
    assert by_name["late"].container_id is None and by_name["late"].state == "waiting"
    assert by_name["debugger"].image == "busybox:1.36"


def test_containers_without_status_are_listed_from_the_spec() -> None:
    raw = make_pod(
        "p", containers=[FakeContainer("app", state="none", requests={"cpu": "1"})], phase="Pending"
    )
    (c,) = pod_meta(raw).containers
    assert c.name == "app" and c.state is None and c.cpu_request_millicores == 1000


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["spec"].update(containers="nope"), "spec.containers"),
        (lambda p: p["metadata"].pop("uid"), "metadata.uid"),
        (
            lambda p: p["spec"]["containers"][0]["resources"].update(limits={"cpu": "12xyz"}),
            "resources",
        ),
        (lambda p: p["status"].update(startTime="yesterday"), "RFC 3339"),
        (lambda p: p.update(metadata=[]), "metadata"),
    ],
)
def test_malformed_pods_raise_a_clear_error(
    mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    raw = make_pod("p")
    mutate(raw)
    with pytest.raises(PodConversionError, match=message):
        pod_meta(raw)


def test_times_are_unix_seconds() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    raw = make_pod("p", start_time=now)
    assert raw["status"]["startTime"] == rfc3339(now)
    assert pod_meta(raw).start_time == now.timestamp()
