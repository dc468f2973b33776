"""The exporter's client of the extractor socket, against the extractor's own server:
every fetch is the snapshot the extractor took, whole the first time and by difference
after; an extractor that restarts, knows no differences or sends ones that do not fit
puts it back on whole snapshots."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web

from exporter.node.source import ExtractorClient
from extractor.contract import Container, Cpu, Snapshot, Usage, runtime_seconds
from extractor.server import SnapshotSource, start, stop
from tests.support.kernel import KubeTree, container_id, hybrid_mounts, pod_uid

T0 = 1_700_000_000.0


def node(n: int, busy: set[int], gone: set[int] = frozenset()) -> Snapshot:  # type: ignore[assignment]
    """Snapshot number ``n`` of 200 containers; those in ``busy`` used more CPU."""
    taken = T0 + 10.0 * n
    containers = []
    for i in range(200):
        if i in gone:
            continue
        started = T0 - 1000.0 - i
        containers.append(
            Container(
                id=f"{i:064x}",
                runtime="containerd",
                name=f"app-{i}",
                namespace="shop",
                pod_name=f"web-{i}",
                pod_uid=f"00000000-0000-0000-0000-{i:012x}",
                pids=[1000 + i],
                started_at=started,
                runtime_seconds=runtime_seconds(taken, started),
                usage=Usage(
                    cgroup=f"/kubepods/pod{i}/{i:064x}",
                    cpu=Cpu(usage_ns=10**9 + (n if i in busy else 0)),
                ),
            )
        )
    return Snapshot(node="node-a", taken_at=taken, cgroup_version="v2", containers=containers)


class Passes:
    """The extractor's passes, one per request (min_interval 0)."""

    def __init__(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = snapshots
        self.taken: list[Snapshot] = []

    def __call__(self) -> Snapshot:
        snap = self.snapshots.pop(0)
        self.taken.append(snap)
        return snap


@asynccontextmanager
async def extractor(take: Callable[[], Snapshot], path: str) -> AsyncIterator[SnapshotSource]:
    source = SnapshotSource(take, min_interval=0.0)
    runner = await start(path, source)
    try:
        yield source
    finally:
        await stop(runner, path)


def socket_path() -> str:
    return os.path.join(tempfile.gettempdir(), f"ri-src-{uuid.uuid4().hex[:12]}.sock")


async def test_every_fetch_is_the_snapshot_taken_and_a_quiet_poll_moves_little() -> None:
    path = socket_path()
    passes = Passes([node(0, set()), node(1, set()), node(2, {7}), node(3, {7}, gone={9})])
    async with extractor(passes, path):
        client = ExtractorClient(path, 10.0)
        try:
            sizes = []
            for _ in range(4):
                before = client.bytes_read
                got = await client.fetch()
                assert got == passes.taken[-1]
                sizes.append(client.bytes_read - before)
        finally:
            await client.aclose()
    assert client.fetches == {"full": 1, "changes": 3}
    whole, quiet, one, two = sizes
    assert quiet < whole / 10 and one < whole / 10 and two < whole / 10
    assert quiet < one  # a changed record is what a difference carries


async def test_a_restarted_extractor_is_followed_whole_then_by_difference_again() -> None:
    path = socket_path()
    client = ExtractorClient(path, 10.0)
    try:
        async with extractor(Passes([node(0, set()), node(1, {3})]), path):
            await client.fetch()
            await client.fetch()
        restarted = Passes([node(5, {4}), node(6, {4, 5})])
        async with extractor(restarted, path):
            assert await client.fetch() == restarted.taken[-1]  # another epoch: complete
            assert await client.fetch() == restarted.taken[-1]
    finally:
        await client.aclose()
    assert client.fetches == {"full": 1, "changes": 3}


async def test_no_pass_since_gives_back_the_snapshot_held() -> None:
    path = socket_path()
    source = SnapshotSource(Passes([node(0, set())]), min_interval=60.0)
    runner = await start(path, source)
    client = ExtractorClient(path, 10.0)
    try:
        first = await client.fetch()
        assert await client.fetch() is first
    finally:
        await client.aclose()
        await stop(runner, path)


async def test_an_extractor_without_differences_is_read_whole() -> None:
    """An older extractor: no tag on its snapshots, no changes path."""
    snaps = [node(0, set()), node(1, {2})]
    path = socket_path()

    async def whole(request: web.Request) -> web.Response:
        return web.Response(body=snaps.pop(0).model_dump_json(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/snapshot", whole)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    client = ExtractorClient(path, 10.0)
    try:
        assert (await client.fetch()).taken_at == T0
        assert (await client.fetch()).taken_at == T0 + 10.0
    finally:
        await client.aclose()
        await runner.cleanup()
    assert client.fetches == {"full": 2, "changes": 0}


async def test_changes_that_do_not_fit_are_replaced_by_the_whole_snapshot() -> None:
    """A difference from a tag the client does not hold (a confused extractor): the
    client fetches the whole snapshot instead of applying it."""
    path = socket_path()
    snap = node(1, {2})

    async def whole(request: web.Request) -> web.Response:
        return web.Response(
            body=snap.model_dump_json(), content_type="application/json", headers={"ETag": '"e.1"'}
        )

    async def changes(request: web.Request) -> web.Response:
        body = (
            b'{"tag":"e.3","since":"e.2","snapshot":'
            + snap.model_dump_json(exclude={"containers", "pods", "exited_pods"}).encode()
            + b"}"
        )
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/snapshot", whole)
    app.router.add_get("/v1/snapshot/changes", changes)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    client = ExtractorClient(path, 10.0)
    try:
        await client.fetch()
        assert await client.fetch() == snap
    finally:
        await client.aclose()
        await runner.cleanup()
    assert client.fetches == {"full": 2, "changes": 1}


CLI = os.path.join(os.path.dirname(sys.executable), "runtime-insights")


@pytest.mark.root
async def test_the_real_extractors_differences_rebuild_its_whole_snapshots() -> None:
    """``extractor serve`` on this machine, with containers that burn between polls: the
    client's snapshot, made by difference, equals the whole snapshot of the same tag."""
    if os.geteuid() != 0:
        pytest.skip("needs root (real cgroups)")
    tree = KubeTree(hybrid_mounts())
    path = socket_path()
    proc = subprocess.Popen(
        [CLI, "extractor", "serve", "--socket", path, "--no-fingerprints"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = ExtractorClient(path, 60.0)
    whole = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=path), base_url="http://x")
    try:
        workers = [tree.spawn(tree.container_path(pod_uid(), container_id())) for _ in range(4)]
        for _ in range(3000):
            if os.path.exists(path):
                break
            await asyncio.sleep(0.01)
        compared = 0
        for round_ in range(6):
            workers[round_ % len(workers)].burn(0.01)
            if round_ == 3:
                workers.pop().stop()
            await asyncio.sleep(1.1)  # past the extractor's reuse interval: a new pass
            got = await client.fetch()
            resp = await whole.get("/v1/snapshot")
            if resp.headers["ETag"].strip('"') != client.tag:
                continue  # a slow machine: another pass came between the two requests
            assert got == Snapshot.model_validate_json(resp.content)
            compared += 1
        assert compared >= 3 and client.fetches["changes"] >= 3
    finally:
        await whole.aclose()
        await client.aclose()
        proc.terminate()
        proc.wait(30)
        tree.cleanup()
