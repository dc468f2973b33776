"""/gather_runtime_info about the containers running now: a request for every container,
or for one the last poll did not see, is answered from a fresh pass, shared by every
concurrent request; one for containers already seen is answered without a pass."""

from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestClient, TestServer

from exporter.http.app import build_app
from exporter.node.state import State
from extractor.contract import Snapshot
from tests.support.exporter_doubles import java_fingerprint, pod_with, snapshot, standard_snapshot

NEW_POD = "33333333-3333-3333-3333-333333333333"


class Extractor:
    """The last poll saw the standard node; a pass now also sees a pod just started."""

    def __init__(self) -> None:
        self.asked: list[float | None] = []

    async def __call__(self, max_age: float | None = None) -> Snapshot:
        self.asked.append(max_age)
        await asyncio.sleep(0.05)  # a pass takes a while: concurrent requests overlap it
        now = time.time()
        base = standard_snapshot(now)
        new_pod, new_containers = pod_with(
            "shop", "cart-1", NEW_POD, [("cart", java_fingerprint())], taken_at=now
        )
        return snapshot(
            [(p, [c for c in base.containers if c.pod_uid == p.uid]) for p in base.pods]
            + [(new_pod, new_containers)],
            taken_at=now,
        )


def new_container_id(snap: Snapshot) -> str:
    return next(c.id for c in snap.containers if c.pod_uid == NEW_POD and not c.sandbox)


async def test_every_container_now_and_one_pass_for_concurrent_requests() -> None:
    extractor = Extractor()
    state = State(extractor)
    state.record(standard_snapshot(time.time() - 30))
    app = build_app(state, None, stale_after_seconds=60, gather_max_age_seconds=1.0)
    async with TestClient(TestServer(app)) as client:
        answers = await asyncio.gather(
            *(client.get("/gather_runtime_info?hash=false") for _ in range(4))
        )
        bodies = [await a.json() for a in answers]
    assert extractor.asked == [1.0]
    assert all(b == bodies[0] for b in bodies)
    assert "cart-1" in bodies[0]["shop"]
    assert state.snapshot is not None
    cart = bodies[0]["shop"]["cart-1"]
    assert cart == {
        f"containerd://{new_container_id(state.snapshot)}": java_fingerprint().compatible()
    }


async def test_an_id_already_seen_needs_no_pass_and_an_unseen_one_gets_one() -> None:
    extractor = Extractor()
    state = State(extractor)
    seen = standard_snapshot(time.time() - 30)
    state.record(seen)
    known = next(c.id for c in seen.containers if not c.sandbox)
    app = build_app(state, None, stale_after_seconds=60, gather_max_age_seconds=1.0)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/gather_runtime_info", json={"containerIds": [known]})
        assert resp.status == 200 and extractor.asked == []
        fresh = await extractor()  # what the next pass will see, to know the new id
        extractor.asked.clear()
        resp = await client.post(
            "/gather_runtime_info", json={"containerIds": [known, new_container_id(fresh)]}
        )
        body = await resp.json()
    assert extractor.asked == [1.0]
    assert "cart-1" in body["shop"]


async def test_off_answers_from_the_last_poll() -> None:
    extractor = Extractor()
    state = State(extractor)
    state.record(standard_snapshot(time.time() - 30))
    app = build_app(state, None, stale_after_seconds=60)
    async with TestClient(TestServer(app)) as client:
        body = await (await client.get("/gather_runtime_info?hash=false")).json()
    assert extractor.asked == [] and "cart-1" not in body.get("shop", {})
