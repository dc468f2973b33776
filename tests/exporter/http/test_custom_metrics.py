"""The custom metrics API against schemas of the Kubernetes types it must produce.

Schemas written from k8s.io/metrics pkg/apis/custom_metrics/v1beta2/types.go and
apimachinery's APIResourceList/Status as summarised in docs/kubernetes.md:
MetricValueList{kind, apiVersion, metadata, items[]}, MetricValue{describedObject
(ObjectReference), metric{name, selector(LabelSelector, no omitempty)}, timestamp
(RFC 3339), windowSeconds (*int64, omitempty), value (Quantity, a string)}. The
quantity grammar is apimachinery's (pkg/api/resource/quantity.go).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import jsonschema
import pytest

from exporter.kube.quantity import parse_quantity
from exporter.kube.quantity_format import format_quantity
from exporter.node.state import State
from tests.support.exporter_doubles import FakeLookup, api_meta_for, client_for, standard_snapshot

ROOT = "/apis/custom.metrics.k8s.io/v1beta2"
T0 = 1_700_000_000.0
QUANTITY = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"

LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
API_RESOURCE_LIST = {
    "type": "object",
    "required": ["kind", "apiVersion", "groupVersion", "resources"],
    "properties": {
        "kind": {"const": "APIResourceList"},
        "apiVersion": {"const": "v1"},
        "groupVersion": {"const": "custom.metrics.k8s.io/v1beta2"},
        "resources": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "singularName", "namespaced", "kind", "verbs"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[a-z0-9.]+/[a-z0-9_]+$"},
                    "singularName": {"type": "string"},
                    "namespaced": {"type": "boolean"},
                    "kind": {"const": "MetricValueList"},
                    "verbs": {
                        "type": "array",
                        "items": {"type": "string"},
                        "contains": {"const": "get"},
                    },
                },
            },
        },
    },
}
METRIC_VALUE_LIST = {
    "type": "object",
    "required": ["kind", "apiVersion", "metadata", "items"],
    "properties": {
        "kind": {"const": "MetricValueList"},
        "apiVersion": {"const": "custom.metrics.k8s.io/v1beta2"},
        "metadata": {"type": "object"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["describedObject", "metric", "timestamp", "value"],
                "additionalProperties": False,
                "properties": {
                    "describedObject": {
                        "type": "object",
                        "required": ["kind", "name", "apiVersion"],
                        "properties": {
                            "kind": {"const": "Pod"},
                            "namespace": {"type": "string"},
                            "name": {"type": "string", "minLength": 1},
                            "apiVersion": {"const": "v1"},
                            "uid": {"type": "string"},
                        },
                    },
                    "metric": {
                        "type": "object",
                        "required": ["name", "selector"],
                        "additionalProperties": False,
                        "properties": {"name": {"type": "string"}, "selector": LABEL_SELECTOR},
                    },
                    "timestamp": {"type": "string", "pattern": RFC3339},
                    "windowSeconds": {"type": "integer", "minimum": 0},
                    "value": {"type": "string", "pattern": QUANTITY},
                },
            },
        },
    },
}
STATUS = {
    "type": "object",
    "required": ["kind", "apiVersion", "status", "message", "reason", "code"],
    "properties": {
        "kind": {"const": "Status"},
        "apiVersion": {"const": "v1"},
        "status": {"const": "Failure"},
        "code": {"type": "integer"},
        "reason": {"type": "string"},
        "message": {"type": "string"},
    },
}


def _state() -> State:
    state = State()
    state.record(standard_snapshot(T0, cpu_ns=3_000_000_000))
    state.record(standard_snapshot(T0 + 15, cpu_ns=4_500_000_000))
    return state


async def _get(path: str, api: bool = True) -> tuple[int, Any, State]:
    state = _state()
    assert state.snapshot is not None
    lookup = FakeLookup(api_meta_for(state.snapshot)) if api else None
    async with client_for(state, lookup) as client:
        resp = await client.get(path)
        assert resp.headers["Content-Type"].startswith("application/json")
        return resp.status, await resp.json(), state


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.25, "250m"),
        (4, "4"),
        (1500, "1500"),
        (2000, "2k"),
        (1_500_000, "1500k"),
        (3 * 10**9, "3G"),
        (0.0004, "400u"),
        (1.234567891, "1234567891n"),
        (-0.5, "-500m"),
        (52_428_800, "52428800"),
    ],
)
def test_quantity_formatting(value: float, text: str) -> None:
    assert format_quantity(value) == text
    assert re.match(QUANTITY, text)
    assert parse_quantity(text) == Decimal(str(value))


def test_quantity_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        format_quantity(float("nan"))


async def test_discovery_is_an_api_resource_list() -> None:
    status, body, _ = await _get(ROOT)
    assert status == 200
    jsonschema.validate(body, API_RESOURCE_LIST)
    names = {r["name"] for r in body["resources"]}
    assert {
        "pods/cpu_usage_rate",
        "pods/cpu_seconds_total",
        "pods/memory_working_set_bytes",
        "pods/runtime_seconds",
    } <= names


async def test_cpu_usage_rate_for_all_pods_of_a_namespace() -> None:
    status, body, state = await _get(f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate")
    assert status == 200
    jsonschema.validate(body, METRIC_VALUE_LIST)
    assert state.snapshot is not None and state.previous is not None
    pod = next(p for p in state.snapshot.pods if p.namespace == "shop")
    old = next(p for p in state.previous.pods if p.uid == pod.uid)
    assert pod.usage and pod.usage.cpu and old.usage and old.usage.cpu
    cores = (pod.usage.cpu.usage_ns - old.usage.cpu.usage_ns) / 1e9 / 15
    [item] = body["items"]
    assert item["describedObject"]["name"] == "web-1-api"  # the API's name
    assert parse_quantity(item["value"]) == Decimal(str(cores))
    assert item["windowSeconds"] == 15
    assert item["metric"] == {"name": "cpu_usage_rate", "selector": {}}


@pytest.mark.parametrize(
    ("metric", "read"),
    [
        ("cpu_seconds_total", lambda p: Decimal(p.usage.cpu.usage_ns) / Decimal(10**9)),
        ("memory_working_set_bytes", lambda p: Decimal(p.usage.memory.working_set_bytes)),
    ],
)
async def test_single_pod_values_equal_the_pod_cgroup(metric: str, read: Any) -> None:
    status, body, state = await _get(f"{ROOT}/namespaces/infra/pods/dns-7-api/{metric}")
    assert status == 200
    jsonschema.validate(body, METRIC_VALUE_LIST)
    assert state.snapshot is not None
    pod = next(p for p in state.snapshot.pods if p.namespace == "infra")
    [item] = body["items"]
    assert parse_quantity(item["value"]) == read(pod)
    assert item["windowSeconds"] == 0  # an instantaneous value


async def test_runtime_seconds_is_the_oldest_container() -> None:
    status, body, state = await _get(f"{ROOT}/namespaces/infra/pods/*/runtime_seconds")
    assert status == 200
    assert state.snapshot is not None
    oldest = max(
        c.runtime_seconds
        for c in state.snapshot.containers
        if c.namespace == "infra" and c.runtime_seconds is not None
    )
    assert parse_quantity(body["items"][0]["value"]) == Decimal(str(oldest))


@pytest.mark.parametrize(
    ("selector", "count"),
    [("app%3Dweb-1", 1), ("app%3Dother", 0), ("tier%20in%20(backend)", 1), ("!app", 0)],
)
async def test_label_selector_selects_pods(selector: str, count: int) -> None:
    status, body, _ = await _get(
        f"{ROOT}/namespaces/shop/pods/*/cpu_seconds_total?labelSelector={selector}"
    )
    assert status == 200
    jsonschema.validate(body, METRIC_VALUE_LIST)
    assert len(body["items"]) == count


async def test_metric_label_selector_is_echoed_and_filters_series() -> None:
    path = f"{ROOT}/namespaces/shop/pods/*/cpu_seconds_total?metricLabelSelector="
    _, body, _ = await _get(path + "foo!%3Dbar")
    jsonschema.validate(body, METRIC_VALUE_LIST)
    assert body["items"][0]["metric"]["selector"] == {
        "matchExpressions": [{"key": "foo", "operator": "NotIn", "values": ["bar"]}]
    }
    _, body, _ = await _get(path + "foo%3Dbar")
    assert body["items"] == []


async def test_runtime_names_without_the_api() -> None:
    status, body, _ = await _get(f"{ROOT}/namespaces/shop/pods/web-1/cpu_usage_rate", api=False)
    assert status == 200
    assert body["items"][0]["describedObject"]["name"] == "web-1"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"{ROOT}/namespaces/shop/pods/*/no_such_metric", 404),
        (f"{ROOT}/namespaces/shop/pods/missing-pod/cpu_usage_rate", 404),
        (f"{ROOT}/namespaces/shop/nodes/web/cpu_usage_rate", 404),
        (f"{ROOT}/namespaces/shop/services/web/cpu_usage_rate", 503),  # no API server here
        (f"{ROOT}/namespaces/shop/pods/*/cpu_usage_rate?labelSelector=a%20in%20(", 400),
    ],
)
async def test_errors_are_status_objects(path: str, code: int) -> None:
    status, body, _ = await _get(path)
    assert status == code
    jsonschema.validate(body, STATUS)
    assert body["code"] == code and body["error"]
