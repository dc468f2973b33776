"""``exporter.wiring.serve`` wires the pieces together: extractor socket, pod reflector,
authentication, TLS, limits, and a clean stop.

Runs in-process against the fake API server and a unix-socket stand-in for the
extractor serving a fixed snapshot; certificates come from the real ``openssl``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from exporter.http import insights
from exporter.kube.quantity import parse_quantity
from exporter.meter.spool import MeterState
from exporter.settings import Settings
from exporter.wiring import flag_overrides, load_settings, serve
from runtime_insights.cli import build_parser
from tests.support.apiserver import FakeApiServer, FakeContainer, make_pod
from tests.support.certs import make_ca, make_cert
from tests.support.exporter_doubles import cid, standard_snapshot
from tests.support.meter_snapshots import C, P, snap
from tests.support.openmeter import FakeOpenMeter
from tests.support.redis import RedisServer
from tests.support.redis import skip_reason as redis_skip_reason
from tests.support.served import extractor_standin


@asynccontextmanager
async def _serving(settings: Settings, caplog: pytest.LogCaptureFixture) -> AsyncIterator[str]:
    """Run serve() until the block ends; yields the base URL it logged."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    pattern = re.compile(r"listening on (https?://127\.0\.0\.1:\d+)")
    url = None
    for _ in range(200):
        url = next(
            (m.group(1) for r in caplog.records if (m := pattern.search(r.getMessage()))), None
        )
        if url or task.done():
            break
        await asyncio.sleep(0.05)
    assert url is not None, task.exception() if task.done() else "never listened"
    try:
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _until(
    client: httpx.AsyncClient,
    path: str,
    key: str,
    value: object,
    headers: dict[str, str] | None = None,
) -> dict[str, object]:
    for _ in range(200):
        resp = await client.get(path, headers=headers)
        if resp.status_code == 200 and resp.json().get(key) == value:
            body: dict[str, object] = resp.json()
            return body
        await asyncio.sleep(0.05)
    pytest.fail(f"{path} never had {key}={value!r}: {resp.status_code} {resp.text}")


async def test_tls_auth_reflector_and_clean_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runtime_insights.exporter")
    ca = make_ca(tmp_path, "ri-test-ca")
    server = make_cert(tmp_path, ca, "127.0.0.1")
    trust = ssl.create_default_context(cafile=str(ca.cert))
    sock = f"/tmp/ri-h5a-{uuid.uuid4().hex[:12]}.sock"
    snap = standard_snapshot()
    web_pod = next(p for p in snap.pods if p.name == "web-1")
    main_id = next(c.id for c in snap.containers if c.pod_uid == web_pod.uid and c.name == "main")
    async with FakeApiServer(bookmark_interval=0.5) as api, extractor_standin(sock):
        api.add_pod(
            make_pod(
                "web-1-from-api",
                "shop",
                uid=web_pod.uid,
                node="node-a",
                containers=[FakeContainer("main", container_id=main_id)],
                labels={"app": "web"},
            )
        )
        api.add_token("scraper-token", "prometheus", ["monitoring"])
        api.allow("prometheus", "get", path="/v1/containers")
        api.allow("prometheus", "post", path="/gather_runtime_info")
        api.allow("prometheus", "post", path="/v1/containers")  # only to reach its body bound
        api.allow("prometheus", "get", path="/readyz")
        settings = Settings(
            host="127.0.0.1",
            port=0,
            extractor_socket=sock,
            poll_interval_seconds=0.2,
            tls_cert_file=str(server.cert),
            tls_key_file=str(server.key),
            auth_enabled=True,
            kube_enabled=True,
            kubeconfig=str(api.write_kubeconfig(tmp_path / "kubeconfig")),
            node_name="node-a",
        )
        async with (
            _serving(settings, caplog) as url,
            httpx.AsyncClient(base_url=url, verify=trust, timeout=30) as client,
        ):
            assert url.startswith("https://")
            headers = {"Authorization": "Bearer scraper-token"}
            ready = await _until(client, "/readyz", "metadataSource", "api", headers)
            assert ready["ready"] is True and ready["reasonCodes"] == []
            # without credentials: the status and reason codes, nothing about the cluster
            anonymous = await client.get("/readyz")
            assert (anonymous.status_code, anonymous.json()) == (
                200,
                {"status": "ok", "reasonCodes": []},
            )
            assert (await client.get("/v1/containers")).status_code == 401
            resp = await client.get("/v1/containers", headers=headers)
            assert resp.status_code == 200
            docs = {d["id"]: d for d in resp.json()["containers"]}
            assert docs[main_id]["pod"] == "web-1-from-api"
            assert docs[main_id]["metadataSource"] == "api"
            assert (await client.get("/metrics", headers=headers)).status_code == 403
            too_big = b"x" * (settings.max_request_bytes + 1)
            resp = await client.post("/v1/containers", headers=headers, content=too_big)
            assert resp.status_code == 413
            # /gather_runtime_info has its own bound: a node's every container id
            ids = [f"cri-o://{cid(str(n))}" for n in range(10_000)]
            resp = await client.post(
                "/gather_runtime_info", headers=headers, json={"containerIds": ids}
            )
            assert (resp.status_code, resp.json()) == (200, {})
            too_big = b"x" * (insights.MAX_REQUEST_BYTES + 1)
            resp = await client.post("/gather_runtime_info", headers=headers, content=too_big)
            assert resp.status_code == 413
    assert any("stopping" in r.getMessage() for r in caplog.records)


async def test_meter_bills_the_served_counters_exactly_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With OpenMeter configured, every snapshot the poll loop takes is metered: what
    OpenMeter received plus the window still open equals the pod counter's change over
    the snapshots the extractor served, and the subject comes from the pod's annotation.
    """
    caplog.set_level(logging.INFO, logger="runtime_insights.exporter")
    uid, app_id = str(uuid.uuid4()), cid("metered-app")
    served: list[int] = []

    def next_snapshot() -> str:
        counter = 5 * 10**9 + len(served) * 123_456_789
        served.append(counter)
        app = C(app_id, counter - 10**6, started=1.0, name="app")
        return snap(time.time(), P(uid, counter, [app], name="billing-0")).model_dump_json()

    sock = f"/tmp/ri-m-{uuid.uuid4().hex[:12]}.sock"
    spool_dir = tmp_path / "spool"
    async with (
        FakeApiServer() as api,
        FakeOpenMeter(token="om-token") as om,
        extractor_standin(sock, next_snapshot),
    ):
        api.add_pod(
            make_pod(
                "billing-0",
                uid=uid,
                node="node-a",
                containers=[FakeContainer("app", container_id=app_id)],
                annotations={"openmeter.io/subject": "customer-42"},
            )
        )
        settings = Settings(
            host="127.0.0.1",
            port=0,
            extractor_socket=sock,
            poll_interval_seconds=0.05,
            kube_enabled=True,
            kubeconfig=str(api.write_kubeconfig(tmp_path / "kubeconfig")),
            node_name="node-a",
            openmeter_url=om.url,
            openmeter_token="om-token",
            meter_interval_seconds=0.3,
            meter_spool_dir=str(spool_dir),
        )
        async with (
            _serving(settings, caplog) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            for _ in range(200):
                if len(om.events) >= 3:
                    break
                await asyncio.sleep(0.05)
            assert len(om.events) >= 3, om.requests
            metrics = (await client.get("/metrics")).text
            delivered = re.search(
                r"^runtime_insights_meter_events_delivered_total (\S+)$", metrics, re.M
            )
            assert delivered is not None and float(delivered.group(1)) >= 3
            ready = (await client.get("/readyz")).json()
            assert ready["meter"]["lastError"] is None
    events = list(om.events.values())
    assert {e["subject"] for e in events} == {"customer-42"}
    assert {e["data"]["pod_name"] for e in events} == {"billing-0"}
    assert om.rejected == 0
    state = MeterState.model_validate_json((spool_dir / "state.json").read_bytes())
    still_open = sum(w.cpu_ns for w in state.open.values())
    pending = sum(
        e["data"]["cpu_ns"]
        for f in (spool_dir / "pending").glob("*.json")
        for e in orjson.loads(f.read_bytes())["events"]
    )
    billed = sum(e["data"]["cpu_ns"] for e in events)
    # the stop may cancel a fetch the stand-in already answered: the last metered reading
    # is the marks', one of the last two served
    last = state.marks.pods[uid].cpu_ns
    assert last in served[-2:]
    assert billed + pending + still_open == last - served[0]


async def test_started_as_flux_metrics_api_with_telemd_settings_and_user_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flags win over the environment; telemd-kubernetes-adapter's own variables start the
    Redis feed; a definitions file adds a metric to discovery, its values and /metrics."""
    reason = redis_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    caplog.set_level(logging.INFO, logger="runtime_insights.exporter")
    sock = f"/tmp/ri-h5d-{uuid.uuid4().hex[:12]}.sock"
    snap = standard_snapshot()
    web = next(p for p in snap.pods if p.name == "web-1")
    main_id = next(c.id for c in snap.containers if c.pod_uid == web.uid and c.name == "main")
    definitions = tmp_path / "metrics.yaml"
    definitions.write_text(
        "metrics:\n"
        "  - name: java_cpu_seconds\n"
        "    field: container.cpu.totalSeconds\n"
        "    aggregation: sum\n"
        "    fingerprintKind: Java\n"
    )
    with RedisServer.start(tmp_path) as redis_server:
        async with FakeApiServer(bookmark_interval=0.5) as api, extractor_standin(sock):
            api.add_pod(
                make_pod(
                    "web-1",
                    "shop",
                    uid=web.uid,
                    node="node-a",
                    containers=[FakeContainer("main", container_id=main_id)],
                )
            )
            for name, value in {
                "RUNTIME_INSIGHTS_PORT": "1",  # the flag wins
                "RUNTIME_INSIGHTS_EXTRACTOR_SOCKET": sock,
                "RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS": "0.2",
                "RUNTIME_INSIGHTS_NODE_NAME": "node-a",
                "RUNTIME_INSIGHTS_KUBECONFIG": str(api.write_kubeconfig(tmp_path / "kc")),
                "telemd_kubernetes_adapter_redis_host": "127.0.0.1",
                "telemd_kubernetes_adapter_redis_port": str(redis_server.port),
            }.items():
                monkeypatch.setenv(name, value)
            args = build_parser().parse_args(
                [
                    *("exporter", "--host", "127.0.0.1", "--port", "0"),
                    *("--metric-definitions", str(definitions)),
                ]
            )
            settings = load_settings(None, flag_overrides(args))
            assert (settings.host, settings.port) == ("127.0.0.1", 0)
            subscriber = aioredis.Redis(port=redis_server.port)
            pubsub = subscriber.pubsub()
            await pubsub.subscribe("galileo/events")
            try:
                async with (
                    _serving(settings, caplog) as url,
                    httpx.AsyncClient(base_url=url, timeout=30) as client,
                ):
                    got = None
                    for _ in range(100):
                        got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                        if got is not None:
                            break
                    assert got is not None, "no pod/create on galileo/events"
                    assert b" pod/create {" in got["data"]
                    await _until(client, "/readyz", "metadataSource", "api")
                    root = "/apis/custom.metrics.k8s.io/v1beta2"
                    names = {r["name"] for r in (await client.get(root)).json()["resources"]}
                    assert "pods/java_cpu_seconds" in names
                    assert "deployments.apps/java_cpu_seconds" in names
                    resp = await client.get(f"{root}/namespaces/shop/pods/web-1/java_cpu_seconds")
                    assert resp.status_code == 200, resp.text
                    main = next(c for c in snap.containers if c.id == main_id)
                    assert main.usage and main.usage.cpu
                    expected = Decimal(main.usage.cpu.usage_ns) / Decimal(10**9)
                    assert parse_quantity(resp.json()["items"][0]["value"]) == expected
                    exposition = (await client.get("/metrics")).text
                    assert (
                        f'runtime_insights_custom_java_cpu_seconds{{namespace="shop",pod="web-1",'
                        f'pod_uid="{web.uid}"}} {float(expected)}' in exposition
                    )
                    assert (
                        'runtime_insights_exporter_redis_published_total{channel="galileo/events"}'
                        in exposition
                    )
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await subscriber.aclose()
