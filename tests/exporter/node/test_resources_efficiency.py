"""Requests and limits of containers and pods, and usage against them.

The pod rule is Kubernetes' (k8s.io/component-helpers PodRequests, KEP-753 for sidecars);
expected values are worked out here from the containers' own numbers by that rule.
"""

from __future__ import annotations

from typing import Any

import pytest

from exporter.kube.pods import pod_meta
from exporter.node.efficiency import PodUse, Totals, Use, efficiency_fields, namespace_documents
from exporter.node.resources import container_resources, pod_resources
from tests.support.exporter_doubles import workload_meta


def pod_json(
    init: list[dict[str, object]], containers: list[dict[str, object]], **spec: object
) -> dict[str, object]:
    return {
        "metadata": {"uid": "u-1", "name": "p", "namespace": "ns"},
        "spec": {"initContainers": init, "containers": containers, **spec},
        "status": {},
    }


def spec(
    name: str,
    cpu: str | None = None,
    memory: str | None = None,
    *,
    limit: bool = True,
    sidecar: bool = False,
) -> dict[str, object]:
    amounts = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    out: dict[str, object] = {
        "name": name,
        "resources": {"requests": amounts, **({"limits": amounts} if limit else {})},
    }
    if sidecar:
        out["restartPolicy"] = "Always"
    return out


def test_a_containers_spec_in_cores_and_bytes() -> None:
    meta = workload_meta()
    app = next(c for c in meta.containers if c.kind == "regular")
    r = container_resources(app)
    assert r.cpu_request_cores == (app.cpu_request_millicores or 0) / 1000
    assert r.cpu_limit_cores == (app.cpu_limit_millicores or 0) / 1000
    assert (r.memory_request_bytes, r.memory_limit_bytes) == (
        app.memory_request_bytes,
        app.memory_limit_bytes,
    )
    assert container_resources(None).cpu_request_cores is None


def test_pod_requests_follow_sidecars_and_init_phases() -> None:
    """KEP-753's example shape: a sidecar, an init container, a second sidecar, one app.
    Sidecars run with the app (they add up); an init container runs with the sidecars
    started before it; the pod needs the larger; overhead comes on top."""
    meta = pod_meta(
        pod_json(
            [
                spec("sidecar-1", "100m", "10Mi", sidecar=True),
                spec("migrate", "900m", "50Mi"),
                spec("sidecar-2", "50m", "20Mi", sidecar=True),
            ],
            [spec("app", "200m", "30Mi")],
            overhead={"cpu": "25m", "memory": "5Mi"},
        )
    )
    mi = 1 << 20
    running_cpu = 0.1 + 0.05 + 0.2  # sidecars and the app together
    init_cpu = 0.9 + 0.1  # migrate with the one sidecar started before it
    running_mem = (10 + 20 + 30) * mi
    init_mem = (50 + 10) * mi
    r = pod_resources(meta)
    assert r.cpu_request_cores == pytest.approx(max(running_cpu, init_cpu) + 0.025)
    assert r.memory_request_bytes == max(running_mem, init_mem) + 5 * mi
    assert r.cpu_limit_cores == pytest.approx(max(running_cpu, init_cpu) + 0.025)


def test_a_pod_without_any_request_has_none_and_one_unlimited_container_no_limit() -> None:
    meta = pod_meta(pod_json([], [spec("a", "100m", limit=True), spec("b", "100m", limit=False)]))
    r = pod_resources(meta)
    assert r.cpu_request_cores == pytest.approx(0.2)
    assert r.memory_request_bytes is None  # nobody asked for memory
    assert r.cpu_limit_cores is None  # b may use any CPU, so may the pod
    assert pod_resources(None).cpu_request_cores is None


def test_efficiency_billable_and_idle() -> None:
    meta = workload_meta()
    app = container_resources(next(c for c in meta.containers if c.kind == "regular"))
    assert app.cpu_request_cores is not None and app.memory_request_bytes is not None
    under, over = app.cpu_request_cores / 4, app.cpu_request_cores * 3
    doc = efficiency_fields(Use(under, app.memory_request_bytes // 2, app))
    assert doc["cpu"] == {
        "efficiency": under / app.cpu_request_cores,
        "billableCores": app.cpu_request_cores,  # the request is reserved, used or not
        "idleCores": app.cpu_request_cores - under,
    }
    assert doc["memory"] == {
        "efficiency": (app.memory_request_bytes // 2) / app.memory_request_bytes,
        "billableBytes": app.memory_request_bytes,
        "idleBytes": app.memory_request_bytes - app.memory_request_bytes // 2,
    }
    doc = efficiency_fields(Use(over, None, app))
    assert doc["cpu"] == {
        "efficiency": over / app.cpu_request_cores,
        "billableCores": over,
        "idleCores": 0.0,
    }
    assert doc["memory"] == {"efficiency": None, "billableBytes": None, "idleBytes": None}


def test_totals_leave_pods_without_requests_out_of_efficiency_only() -> None:
    meta = workload_meta()
    requested = pod_resources(meta)
    assert requested.cpu_request_cores is not None
    uses = [
        PodUse(
            "shop", "Deployment", "web", Use(requested.cpu_request_cores / 2, 1 << 20, requested)
        ),
        PodUse(
            "shop", "Deployment", "web", Use(requested.cpu_request_cores * 2, 2 << 20, requested)
        ),
        PodUse("shop", None, None, Use(0.3, 3 << 20, container_resources(None))),
        PodUse("bank", "StatefulSet", "db", Use(None, None, requested)),
    ]
    docs: dict[str, Any] = {str(d["namespace"]): d for d in namespace_documents(uses)}
    assert list(docs) == ["bank", "shop"]
    shop = docs["shop"]
    want = Totals()
    for u in uses[:3]:
        want.add(u.use)
    assert shop["pods"] == 3
    cpu = shop["cpu"]
    req = requested.cpu_request_cores
    assert cpu["usedCores"] == pytest.approx(req / 2 + req * 2 + 0.3)
    assert cpu["requestedCores"] == pytest.approx(2 * req)
    assert cpu["efficiency"] == pytest.approx((req / 2 + req * 2) / (2 * req))
    assert cpu["billableCores"] == pytest.approx(req + req * 2 + 0.3)
    assert cpu["idleCores"] == pytest.approx(req / 2)
    assert shop["cpu"] == want.document()["cpu"]
    owners = {(o["kind"], o["name"]): o for o in shop["owners"]}
    assert set(owners) == {("Deployment", "web"), (None, None)}
    assert owners[("Deployment", "web")]["pods"] == 2
    bank = docs["bank"]
    assert bank["pods"] == 1 and bank["cpu"]["usedCores"] == 0
    assert bank["cpu"]["requestedCores"] == pytest.approx(req)
    assert bank["cpu"]["efficiency"] is None
