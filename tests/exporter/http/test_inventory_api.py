"""``GET /v1/inventory``: this node's runtimes with their CPU, from the snapshot."""

from __future__ import annotations

import csv
import io

import pytest

from exporter.node.state import State
from tests.support.exporter_doubles import FakeLookup, api_meta_for, client_for, standard_snapshot


def _state() -> State:
    state = State()
    state.record(standard_snapshot())
    return state


async def test_json_rows_hold_each_runtimes_containers_and_cpu() -> None:
    snap = standard_snapshot()
    apps = [c for c in snap.containers if not c.sandbox]
    async with client_for(_state(), FakeLookup(api_meta_for(snap))) as client:
        resp = await client.get("/v1/inventory")
        assert resp.status == 200 and resp.content_type == "application/json"
        body = await resp.json()
    seconds = {c.id: c.usage.cpu.usage_ns / 1e9 for c in apps if c.usage and c.usage.cpu}
    assert body["nodes"] == {"ok": [snap.node], "failed": []}
    assert body["totals"]["containers"] == len(apps)
    assert body["totals"]["cpuSeconds"] == pytest.approx(sum(seconds.values()))
    by_kind = {row["kind"]: row for row in body["runtimes"]}
    java = next(c for c in apps if c.fingerprint and c.fingerprint.kind == "Java")
    assert by_kind["Java"]["cpuSeconds"] == pytest.approx(seconds[java.id])
    assert by_kind["Java"]["frameworks"] == [{"name": "Quarkus", "version": "3.15.3.redhat-00002"}]
    assert by_kind["Java"]["owners"] == [
        {"namespace": "shop", "kind": "Deployment", "name": "web-1-deploy"}
    ]
    assert by_kind[None]["identified"] is False  # the sidecar with an empty fingerprint
    assert {u["container"] for u in body["flags"]["unidentified"]} == {"proxy-api"}
    assert sum(r["cpuShare"] for r in body["runtimes"]) == pytest.approx(1.0)


async def test_csv_and_table_formats() -> None:
    async with client_for(_state()) as client:
        sheet = await client.get("/v1/inventory?format=csv")
        assert sheet.headers["Content-Type"] == "text/csv; charset=utf-8"
        rows = list(csv.DictReader(io.StringIO(await sheet.text())))
        text = await (await client.get("/v1/inventory?format=table")).text()
    assert {r["kind"] for r in rows} == {"Java", "Golang", ""}
    assert "RUNTIME" in text and "Golang go1.22.6" in text


@pytest.mark.parametrize("query", ["?format=xml", "?node=a"])
async def test_bad_queries_are_400(query: str) -> None:
    async with client_for(_state()) as client:
        resp = await client.get("/v1/inventory" + query)
        assert resp.status == 400
        assert "error" in await resp.json()


async def test_no_snapshot_is_503() -> None:
    async with client_for(State()) as client:
        assert (await client.get("/v1/inventory")).status == 503
