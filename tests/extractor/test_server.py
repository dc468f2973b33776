"""The extractor's unix-socket server, over a real socket in a temp dir."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from extractor.connguard import Limits
from extractor.contract import FRESH_FLOOR_SECONDS, Changes, Container, Snapshot, apply
from extractor.server import SOCKET_MODE, Listener, ServeError, SnapshotSource, start, stop

CLI = os.path.join(os.path.dirname(sys.executable), "runtime-insights")


def sample(n: int = 0) -> Snapshot:
    return Snapshot(
        node=f"node-{n}",
        taken_at=1_700_000_000.0 + n,
        cgroup_version="v2",
        containers=[Container(id="c" * 64, runtime="containerd", name="app", pids=[1])],
    )


class Taker:
    """Counts passes; each pass can be held until the test releases it."""

    def __init__(self, hold: bool = False) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self) -> Snapshot:
        self.calls += 1
        self.started.set()
        assert self.release.wait(timeout=30)
        return sample(self.calls)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def until(condition: Callable[[], bool]) -> None:
    """Waits for a condition the server reaches on its own (bounded, never asserted on)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never reached")


@pytest.fixture
def sock(tmp_path: Path) -> str:
    return str(tmp_path / "extractor.sock")


async def serving(sock: str, source: SnapshotSource) -> AsyncIterator[httpx.AsyncClient]:
    runner = await start(sock, source)
    client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=sock), base_url="http://x")
    try:
        yield client
    finally:
        await client.aclose()
        await stop(runner, sock)


@pytest.fixture
def taker() -> Taker:
    return Taker()


@pytest.fixture
async def client(sock: str, taker: Taker) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serving(sock, SnapshotSource(taker)):
        yield c


async def test_snapshot_round_trips(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/snapshot")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert Snapshot.model_validate_json(resp.content) == sample(1)


async def test_the_exporters_client_reads_it(sock: str, taker: Taker) -> None:
    """Contract with the other end of the socket: exporter.node.source."""
    from exporter.node.source import ExtractorClient

    async for _ in serving(sock, SnapshotSource(taker)):
        client = ExtractorClient(sock, timeout_seconds=30)
        try:
            assert await client.fetch() == sample(1)
        finally:
            await client.aclose()


async def test_socket_is_not_world_writable(client: httpx.AsyncClient, sock: str) -> None:
    mode = os.stat(sock).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == SOCKET_MODE
    assert not mode & (stat.S_IWOTH | stat.S_IROTH)


async def test_healthz(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


async def test_unknown_path_and_method_answer_json(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v2/nothing")
    assert resp.status_code == 404
    assert "/v2/nothing" in resp.json()["error"]
    resp = await client.post("/v1/snapshot")
    assert resp.status_code == 405 and "error" in resp.json()


async def test_concurrent_requests_share_one_pass(sock: str) -> None:
    taker = Taker(hold=True)
    source = SnapshotSource(taker)
    async for client in serving(sock, source):
        requests = [asyncio.create_task(client.get("/v1/snapshot")) for _ in range(6)]
        await until(lambda: source.waiting == 6 and taker.started.is_set())
        taker.release.set()
        bodies = {(await r).content for r in requests}
        assert taker.calls == 1 and source.passes == 1
        assert len(bodies) == 1


async def test_a_client_hanging_up_does_not_start_a_second_pass() -> None:
    taker = Taker(hold=True)
    source = SnapshotSource(taker)
    gone = asyncio.create_task(source.body())
    await until(taker.started.is_set)
    gone.cancel()
    later = asyncio.create_task(source.body())
    await until(lambda: source.waiting == 1 and gone.done())
    taker.release.set()
    assert Snapshot.model_validate_json(await later) == sample(1)
    assert taker.calls == 1


async def test_result_is_reused_within_min_interval_only(sock: str) -> None:
    taker, clock = Taker(), Clock()
    source = SnapshotSource(taker, min_interval=1.0, clock=clock)
    async for client in serving(sock, source):
        first = (await client.get("/v1/snapshot")).content
        clock.now += 0.5
        assert (await client.get("/v1/snapshot")).content == first
        assert taker.calls == 1
        clock.now += 1.0
        second = Snapshot.model_validate_json((await client.get("/v1/snapshot")).content)
        assert taker.calls == 2 and second == sample(2)


async def test_a_failing_pass_is_a_503_and_the_server_stays_up(sock: str) -> None:
    outcomes: list[Exception | Snapshot] = [OSError("cgroupfs vanished"), sample(7)]

    def take() -> Snapshot:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    source = SnapshotSource(take)
    async for client in serving(sock, source):
        resp = await client.get("/v1/snapshot")
        assert resp.status_code == 503 and "cgroupfs vanished" in resp.json()["error"]
        assert "cgroupfs vanished" in (await client.get("/healthz")).json()["last_error"]
        resp = await client.get("/v1/snapshot")
        assert Snapshot.model_validate_json(resp.content) == sample(7)


async def test_stale_socket_is_replaced(sock: str, taker: Taker) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock)
    stale.close()  # the file stays, nobody listens: what a crash leaves behind
    async for client in serving(sock, SnapshotSource(taker)):
        assert (await client.get("/healthz")).status_code == 200


async def test_a_regular_file_at_the_socket_path_is_not_replaced(sock: str, taker: Taker) -> None:
    Path(sock).write_text("precious")
    with pytest.raises(ServeError, match="not a socket"):
        await start(sock, SnapshotSource(taker))
    assert Path(sock).read_text() == "precious"


async def test_missing_directory_is_a_clear_error(tmp_path: Path, taker: Taker) -> None:
    with pytest.raises(ServeError, match="does not exist"):
        await start(str(tmp_path / "no" / "s.sock"), SnapshotSource(taker))


async def test_too_long_socket_path_is_a_clear_error(tmp_path: Path, taker: Taker) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    with pytest.raises(ServeError, match="cannot listen"):
        await start(str(deep / "s.sock"), SnapshotSource(taker))


async def test_stop_removes_the_socket(sock: str, taker: Taker) -> None:
    listener = await start(sock, SnapshotSource(taker))
    assert isinstance(listener, Listener) and isinstance(listener.runner, web.AppRunner)
    assert os.path.exists(sock)
    await stop(listener, sock)
    assert not os.path.exists(sock)


def test_cli_serves_this_machine_and_stops_on_sigterm(sock: str) -> None:
    proc = subprocess.Popen(
        [CLI, "extractor", "serve", "--socket", sock, "--no-fingerprints"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(3000):
            if os.path.exists(sock) or proc.poll() is not None:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[1]
        with httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://x") as c:
            snapshot = Snapshot.model_validate_json(c.get("/v1/snapshot", timeout=60).content)
        assert snapshot.node and snapshot.cgroup_version in ("v1", "v2", "hybrid")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert b"Traceback" not in err
        assert not os.path.exists(sock)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_reports_an_unreadable_node_in_one_line(sock: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [CLI, "extractor", "serve", "--socket", sock, "--proc-root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("runtime-insights extractor serve:")
    assert "Traceback" not in proc.stderr


# --- slow, idle and surplus clients (extractor/connguard.py) -----------------------------


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sent until it closed the connection (bounded wait)."""
    data = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                data += chunk
    except ConnectionResetError:
        pass
    return data


async def test_slow_headers_are_cut(sock: str, taker: Taker) -> None:
    source = SnapshotSource(taker)
    listener = await start(sock, source, Limits(header_timeout=0.3, idle_timeout=30))
    try:
        reader, writer = await asyncio.open_unix_connection(sock)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        dripped = 0
        with contextlib.suppress(ConnectionError):
            while not reader.at_eof() and dripped < 100:  # 10 s of dripping at most
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                dripped += 1
                await asyncio.sleep(0.1)
                if listener.guard.counts.slow:
                    break
        assert await _closed_by_server(reader, 5) == b""  # cut, never answered
        assert listener.guard.counts.slow == 1 and dripped < 100
        writer.close()
        # a client that sends its headers at once is not affected, request after request
        async with httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=sock), base_url="http://x"
        ) as client:
            for _ in range(3):
                assert (await client.get("/healthz")).status_code == 200
                await asyncio.sleep(0.4)  # longer than the header timeout, between requests
        assert listener.guard.counts.slow == 1
    finally:
        await stop(listener, sock)


async def test_idle_connections_are_closed(sock: str, taker: Taker) -> None:
    listener = await start(sock, SnapshotSource(taker), Limits(idle_timeout=0.3))
    try:
        silent_reader, silent = await asyncio.open_unix_connection(sock)  # sends nothing
        reader, writer = await asyncio.open_unix_connection(sock)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await _closed_by_server(reader, 10)
        assert answer.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in answer.replace(b" ", b"")
        assert await _closed_by_server(silent_reader, 10) == b""
        assert listener.guard.counts.open == 0
        writer.close()
        silent.close()
    finally:
        await stop(listener, sock)


async def test_connections_beyond_the_limit_get_503(sock: str, taker: Taker) -> None:
    listener = await start(sock, SnapshotSource(taker), Limits(max_connections=3))
    try:
        held = [await asyncio.open_unix_connection(sock) for _ in range(3)]
        await until(lambda: listener.guard.counts.open == 3)
        reader, writer = await asyncio.open_unix_connection(sock)
        refused = await _closed_by_server(reader, 10)
        assert refused.startswith(b"HTTP/1.1 503")
        assert refused.endswith(b'{"error": "too many connections"}')
        writer.close()
        held[0][1].close()
        await until(lambda: listener.guard.counts.open == 2)
        async with httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=sock), base_url="http://x"
        ) as client:
            assert (await client.get("/healthz")).status_code == 200
        assert listener.guard.counts.refused == 1
        for _, w in held[1:]:
            w.close()
    finally:
        await stop(listener, sock)


def test_cli_rejects_bad_limits(sock: str) -> None:
    for option, value in (("--header-timeout", "0"), ("--max-connections", "none")):
        proc = subprocess.run(
            [CLI, "extractor", "serve", "--socket", sock, option, value],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2
        assert option in proc.stderr and "Traceback" not in proc.stderr


async def test_the_whole_snapshot_carries_its_tag_and_an_unchanged_one_is_not_resent(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/v1/snapshot")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = await client.get("/v1/snapshot", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


async def test_changes_since_a_tag_apply_to_the_snapshot_held(sock: str) -> None:
    snaps = [sample(1), sample(1).model_copy(update={"taken_at": 1_700_000_010.0})]
    clock = Clock()
    source = SnapshotSource(lambda: snaps.pop(0), clock=clock)
    async for client in serving(sock, source):
        whole = await client.get("/v1/snapshot")
        held = Snapshot.model_validate_json(whole.content)
        clock.now += 5.0
        resp = await client.get("/v1/snapshot/changes", params={"since": whole.headers["ETag"]})
        got = Changes.model_validate_json(resp.content)
        assert got.since == whole.headers["ETag"].strip('"')
        assert got.records.containers.changed == []  # only time passed
        assert apply(held, got).taken_at == 1_700_000_010.0
        assert resp.headers["ETag"] == f'"{got.tag}"'


async def test_max_age_takes_a_fresh_pass_within_the_reuse_interval(sock: str) -> None:
    taker, clock = Taker(), Clock()
    source = SnapshotSource(taker, min_interval=10.0, clock=clock)
    async for client in serving(sock, source):
        await client.get("/v1/snapshot")
        clock.now += 2.0
        await client.get("/v1/snapshot")
        assert taker.calls == 1
        await client.get("/v1/snapshot", params={"max_age": "1"})
        assert taker.calls == 2
        clock.now += FRESH_FLOOR_SECONDS / 2
        await client.get("/v1/snapshot", params={"max_age": "0"})  # floored: reused
        assert taker.calls == 2
        for bad in ("-1", "soon", "nan", "inf"):
            resp = await client.get("/v1/snapshot", params={"max_age": bad})
            assert resp.status_code == 400 and "max_age" in resp.json()["error"]


async def test_fresh_requests_share_the_next_pass_not_the_stale_one_in_flight() -> None:
    """A pass that started before a fresh request came cannot answer it: the request
    waits for the next pass, which every such request shares."""
    taker, clock = Taker(hold=True), Clock()
    source = SnapshotSource(taker, min_interval=10.0, clock=clock)
    stale = asyncio.create_task(source.served())
    await until(taker.started.is_set)
    clock.now += 1.0
    fresh = [asyncio.create_task(source.served(max_age=0.5)) for _ in range(5)]
    await until(lambda: source.waiting == 6)
    taker.started.clear()
    taker.release.set()
    first = await stale
    served = {id(await f) for f in fresh}
    assert taker.calls == 2 and len(served) == 1
    assert first.version == 1 and (await fresh[0]).version == 2
