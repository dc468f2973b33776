"""Every route of the custom (v1beta2, v1beta1) and external metrics APIs on one node.

Objects (Services, Deployments, StatefulSets, DaemonSets, Jobs) come from the fake API
server, read by the exporter's own API client; expected values are computed here from
the recorded snapshots' pod cgroups. Schemas follow k8s.io/metrics
pkg/apis/custom_metrics/v1beta1 and v1beta2 and pkg/apis/external_metrics/v1beta1
(docs/kubernetes.md); the v1beta2 one is test_custom_metrics.py's.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from exporter.http.app import build_app
from exporter.http.definitions import parse_definitions
from exporter.kube.client import KubeClient, load_configuration
from exporter.kube.podmeta import PodMeta
from exporter.kube.quantity import parse_quantity
from exporter.node.state import State
from tests.exporter.http.test_custom_metrics import (
    LABEL_SELECTOR,
    METRIC_VALUE_LIST,
    QUANTITY,
    RFC3339,
    STATUS,
)
from tests.support.apiserver import FakeApiServer, make_service, make_workload
from tests.support.exporter_doubles import FakeLookup, java_fingerprint, pod_with, snapshot

V2 = "/apis/custom.metrics.k8s.io/v1beta2"
V1 = "/apis/custom.metrics.k8s.io/v1beta1"
EXT = "/apis/external.metrics.k8s.io/v1beta1"
T0 = 1_700_000_000.0
WEB = {"web-a": 2_000_000_000, "web-b": 5_000_000_000}
DEFINITIONS = """
metrics:
  - name: java_working_set_bytes
    field: container.memory.workingSetBytes
    aggregation: sum
    fingerprintKind: Java
  - name: cpu_rate_avg
    field: pod.cpu.usageRateCores
    aggregation: avg
  - name: running_containers
    aggregation: count
"""

OBJECT_VALUE_LIST: dict[str, Any] = copy.deepcopy(METRIC_VALUE_LIST)
_described = OBJECT_VALUE_LIST["properties"]["items"]["items"]["properties"]["describedObject"]
_described["properties"]["kind"] = {
    "enum": ["Pod", "Namespace", "Service", "Deployment", "StatefulSet", "DaemonSet", "Job"]
}
_described["properties"]["apiVersion"] = {"enum": ["v1", "apps/v1", "batch/v1"]}
_object_item = OBJECT_VALUE_LIST["properties"]["items"]["items"]
_object_item["required"] = [*_object_item["required"], "windowSeconds"]
V1BETA1_VALUE_LIST = {
    "type": "object",
    "required": ["kind", "apiVersion", "metadata", "items"],
    "properties": {
        "kind": {"const": "MetricValueList"},
        "apiVersion": {"const": "custom.metrics.k8s.io/v1beta1"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["describedObject", "metricName", "timestamp", "value", "selector"],
                "additionalProperties": False,
                "properties": {
                    "describedObject": _described,
                    "metricName": {"type": "string"},
                    "timestamp": {"type": "string", "pattern": RFC3339},
                    "window": {"type": "integer", "minimum": 0},
                    "value": {"type": "string", "pattern": QUANTITY},
                    "selector": {"anyOf": [LABEL_SELECTOR, {"type": "null"}]},
                },
            },
        },
    },
}
EXTERNAL_VALUE_LIST = {
    "type": "object",
    "required": ["kind", "apiVersion", "metadata", "items"],
    "properties": {
        "kind": {"const": "ExternalMetricValueList"},
        "apiVersion": {"const": "external.metrics.k8s.io/v1beta1"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["metricName", "metricLabels", "timestamp", "value"],
                "additionalProperties": False,
                "properties": {
                    "metricName": {"type": "string"},
                    "metricLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "timestamp": {"type": "string", "pattern": RFC3339},
                    "window": {"type": "integer", "minimum": 0},
                    "value": {"type": "string", "pattern": QUANTITY},
                },
            },
        },
    },
}


def _state() -> State:
    """shop: web-a and web-b (app=web, Java main + sidecar), db-0 (app=db); infra: dns-0."""
    state = State()
    for step, taken in enumerate((T0, T0 + 15)):
        pods = [
            pod_with(
                "shop",
                name,
                f"00000000-0000-0000-0000-00000000000{i}",
                [("main", java_fingerprint()), ("sidecar", None)],
                cpu_ns=cpu * (step + 1),
                taken_at=taken,
            )
            for i, (name, cpu) in enumerate(WEB.items())
        ]
        pods.append(
            pod_with(
                "shop",
                "db-0",
                "00000000-0000-0000-0000-00000000000d",
                [("pg", None)],
                cpu_ns=7_000_000_000 * (step + 1),
                taken_at=taken,
            )
        )
        pods.append(
            pod_with(
                "infra",
                "dns-0",
                "00000000-0000-0000-0000-00000000000e",
                [("dns", None)],
                taken_at=taken,
            )
        )
        state.record(snapshot(pods, taken))
    return state


def _metas(state: State) -> list[PodMeta]:
    assert state.snapshot is not None
    labels = {"web-a": {"app": "web"}, "web-b": {"app": "web"}, "db-0": {"app": "db"}}
    return [
        PodMeta(
            uid=p.uid,
            cgroup_uid=p.uid,
            namespace=p.namespace,
            name=p.name,
            labels=labels.get(p.name or "", {"app": "dns"}),
            phase="Running",
        )
        for p in state.snapshot.pods
    ]


def _pod(state: State, name: str, previous: bool = False) -> Any:
    snap = state.previous if previous else state.snapshot
    assert snap is not None
    return next(p for p in snap.pods if p.name == name)


def nano(value: Decimal) -> Decimal:
    """What a quantity keeps: nano units (each pod's value is one, before it is combined)."""
    return value.quantize(Decimal("1e-9"))


def rate(state: State, name: str) -> Decimal:
    now, before = _pod(state, name), _pod(state, name, previous=True)
    return nano(Decimal(str((now.usage.cpu.usage_ns - before.usage.cpu.usage_ns) / 1e9 / 15)))


def cpu_seconds(state: State, name: str) -> Decimal:
    return Decimal(_pod(state, name).usage.cpu.usage_ns) / Decimal(10**9)


@dataclass
class Env:
    client: TestClient[Any, Any]
    api: FakeApiServer
    state: State

    async def get(self, path: str, status: int = 200) -> Any:
        resp = await self.client.get(path)
        assert resp.headers["Content-Type"].startswith("application/json")
        body = await resp.json()
        assert resp.status == status, body
        return body


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    state = _state()
    async with FakeApiServer() as api:
        api.add_object(make_service("web", "shop", {"app": "web"}))
        api.add_object(make_service("headless-external", "shop", None))
        api.add_object(make_workload("Deployment", "web", "shop", {"app": "web"}))
        api.add_object(
            make_workload(
                "StatefulSet",
                "db",
                "shop",
                match_expressions=[{"key": "app", "operator": "In", "values": ["db"]}],
            )
        )
        api.add_object(make_workload("DaemonSet", "dns", "infra", {"app": "dns"}))
        api.add_object(make_workload("Job", "migrate", "shop", {"app": "nothing-runs"}))
        kube = KubeClient(load_configuration(str(api.write_kubeconfig(tmp_path / "kubeconfig"))))
        app = build_app(
            state,
            FakeLookup(_metas(state)),
            stale_after_seconds=60,
            kube=kube,
            user_metrics=parse_definitions(DEFINITIONS),
        )
        async with TestClient(TestServer(app)) as client:
            yield Env(client, api, state)
        await kube.aclose()


async def test_discovery_lists_every_metric_for_every_resource_in_both_versions(
    env: Env,
) -> None:
    metrics = [
        "cpu_usage_rate",
        "cpu_seconds_total",
        "memory_working_set_bytes",
        "runtime_seconds",
        "java_working_set_bytes",
        "cpu_rate_avg",
        "running_containers",
    ]
    resources = [
        "pods",
        "namespaces",
        "services",
        "deployments.apps",
        "statefulsets.apps",
        "daemonsets.apps",
        "jobs.batch",
    ]
    for root, version in ((V2, "v1beta2"), (V1, "v1beta1")):
        body = await env.get(root)
        assert body["groupVersion"] == f"custom.metrics.k8s.io/{version}"
        listed = {(r["name"], r["namespaced"]) for r in body["resources"]}
        assert listed == {(f"{r}/{m}", r != "namespaces") for m in metrics for r in resources}
    external = await env.get(EXT)
    assert external["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    assert {r["name"] for r in external["resources"]} == set(metrics)
    assert {r["kind"] for r in external["resources"]} == {"ExternalMetricValueList"}


async def test_namespace_metric_is_the_sum_of_its_pods(env: Env) -> None:
    body = await env.get(f"{V2}/namespaces/shop/metrics/cpu_seconds_total")
    jsonschema.validate(body, OBJECT_VALUE_LIST)
    [item] = body["items"]
    assert item["describedObject"] == {"kind": "Namespace", "name": "shop", "apiVersion": "v1"}
    expected = sum(cpu_seconds(env.state, n) for n in ("web-a", "web-b", "db-0"))
    assert parse_quantity(item["value"]) == expected
    assert item["windowSeconds"] == 0
    rates = await env.get(f"{V2}/namespaces/shop/metrics/cpu_usage_rate")
    assert rates["items"][0]["windowSeconds"] == 15


@pytest.mark.parametrize(
    ("path", "kind", "api_version", "pods"),
    [
        ("services/web", "Service", "v1", ["web-a", "web-b"]),
        ("deployments.apps/web", "Deployment", "apps/v1", ["web-a", "web-b"]),
        ("deployments/web", "Deployment", "apps/v1", ["web-a", "web-b"]),
        ("statefulsets.apps/db", "StatefulSet", "apps/v1", ["db-0"]),
        ("jobs.batch/migrate", "Job", "batch/v1", []),
        ("services/headless-external", "Service", "v1", []),
    ],
)
async def test_object_metrics_sum_the_pods_the_object_selects(
    env: Env, path: str, kind: str, api_version: str, pods: list[str]
) -> None:
    body = await env.get(f"{V2}/namespaces/shop/{path}/cpu_usage_rate")
    jsonschema.validate(body, OBJECT_VALUE_LIST)
    [item] = body["items"]  # what the HPA demands of an Object metric: exactly one
    assert item["describedObject"] == {
        "kind": kind,
        "namespace": "shop",
        "name": path.split("/")[1],
        "apiVersion": api_version,
    }
    assert parse_quantity(item["value"]) == sum((rate(env.state, p) for p in pods), Decimal(0))
    assert item["windowSeconds"] == (15 if pods else 0)


async def test_a_daemonset_in_another_namespace(env: Env) -> None:
    body = await env.get(f"{V2}/namespaces/infra/daemonsets.apps/dns/cpu_seconds_total")
    assert parse_quantity(body["items"][0]["value"]) == cpu_seconds(env.state, "dns-0")


async def test_objects_by_label_selector(env: Env) -> None:
    body = await env.get(f"{V2}/namespaces/shop/deployments.apps/*/cpu_seconds_total")
    jsonschema.validate(body, OBJECT_VALUE_LIST)
    assert [i["describedObject"]["name"] for i in body["items"]] == ["web"]


async def test_user_defined_aggregations_per_object(env: Env) -> None:
    avg = await env.get(f"{V2}/namespaces/shop/deployments.apps/web/cpu_rate_avg")
    expected = nano((rate(env.state, "web-a") + rate(env.state, "web-b")) / 2)
    assert parse_quantity(avg["items"][0]["value"]) == expected
    count = await env.get(f"{V2}/namespaces/shop/metrics/running_containers")
    assert parse_quantity(count["items"][0]["value"]) == 5  # 2 + 2 + db-0's one
    java = await env.get(f"{V2}/namespaces/shop/pods/*/java_working_set_bytes")
    assert env.state.snapshot is not None
    mains = {
        c.pod_name: c.usage.memory.working_set_bytes
        for c in env.state.snapshot.containers
        if c.name == "main" and c.usage and c.usage.memory
    }
    assert {i["describedObject"]["name"]: parse_quantity(i["value"]) for i in java["items"]} == {
        name: Decimal(value or 0) for name, value in mains.items()
    }
    # an average over no pods has no value: 404, never a made-up zero
    await env.get(f"{V2}/namespaces/shop/jobs.batch/migrate/cpu_rate_avg", 404)


async def test_v1beta1_serves_the_same_values_in_its_own_shape(env: Env) -> None:
    for tail in (
        "namespaces/shop/pods/*/cpu_usage_rate",
        "namespaces/shop/pods/web-a/cpu_seconds_total",
        "namespaces/shop/deployments.apps/web/cpu_usage_rate",
        "namespaces/shop/metrics/memory_working_set_bytes",
    ):
        new = await env.get(f"{V2}/{tail}")
        old = await env.get(f"{V1}/{tail}")
        jsonschema.validate(old, V1BETA1_VALUE_LIST)
        assert [
            (i["describedObject"], i["metricName"], i["value"], i["window"]) for i in old["items"]
        ] == [
            (i["describedObject"], i["metric"]["name"], i["value"], i["windowSeconds"])
            for i in new["items"]
        ]


async def test_external_metric_of_selected_pods(env: Env) -> None:
    body = await env.get(f"{EXT}/namespaces/shop/cpu_usage_rate?labelSelector=app%3Dweb")
    jsonschema.validate(body, EXTERNAL_VALUE_LIST)
    [item] = body["items"]
    assert item["metricName"] == "cpu_usage_rate"
    assert item["metricLabels"] == {"app": "web"}
    assert item["window"] == 15
    assert parse_quantity(item["value"]) == rate(env.state, "web-a") + rate(env.state, "web-b")
    everything = await env.get(f"{EXT}/namespaces/shop/cpu_seconds_total")
    expected = sum(cpu_seconds(env.state, n) for n in ("web-a", "web-b", "db-0"))
    assert parse_quantity(everything["items"][0]["value"]) == expected


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"{V2}/namespaces/shop/deployments.apps/missing/cpu_usage_rate", 404),
        (f"{V2}/namespaces/shop/deployments.apps/web/no_such_metric", 404),
        (f"{V2}/namespaces/shop/replicasets.apps/web/cpu_usage_rate", 404),
        (f"{V2}/namespaces/shop/metrics/no_such_metric", 404),
        (f"{V1}/namespaces/shop/pods/*/cpu_usage_rate?labelSelector=a%20in%20(", 400),
        (f"{EXT}/namespaces/shop/no_such_metric", 404),
        (f"{EXT}/namespaces/shop/cpu_usage_rate?labelSelector=a%20in%20(", 400),
        (f"{EXT}/namespaces/shop/cpu_rate_avg?labelSelector=app%3Dnone", 404),
        (f"{EXT}/somewhere/else", 404),
    ],
)
async def test_errors_are_status_objects(env: Env, path: str, code: int) -> None:
    body = await env.get(path, code)
    jsonschema.validate(body, STATUS)
