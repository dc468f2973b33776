"""Every route of the exporter under random requests: never a 5xx, never a traceback.

The exporter is built by the wiring as the command builds it (authentication on against
the fake API server, the pod reflector syncing, the limits, the guarded listener) and
driven over raw TCP, so requests can be what no HTTP client library would send: odd
methods, bad paths and percent-escapes, query names and values with CR/LF, NUL or
invalid UTF-8, broken or duplicated headers, bad framing, nested and garbage bodies.

A seeded generator makes the run reproducible (``RI_FUZZ_SEED`` picks another seed);
a failure prints the request. Bounded: ``REQUESTS`` requests, ``CONCURRENCY`` at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web

from tests.support.apiserver import FakeApiServer, FakeContainer, make_pod
from tests.support.exporter_doubles import standard_snapshot
from tests.support.served import Served, extractor_standin, served, settings_with_api, socket_path

REQUESTS = 2500
CONCURRENCY = 8
SEED = int(os.environ.get("RI_FUZZ_SEED", "20260108"))
TOKEN = "fuzz-reader-token"
PLACEHOLDERS = {
    "namespace": ("shop", "infra", "x", "Not_A_Namespace"),
    "name": ("web-1", "dns-7", "*", "nope"),
    "metric": ("cpu_usage_rate", "cpu_seconds_total", "memory_working_set_bytes", "nope"),
    "resource": ("pods", "deployments", "services", "namespaces", "x"),
    "tail": ("x", "namespaces/shop", "namespaces/shop/pods", ""),
}
"""Values for the router's ``{placeholders}``: real names, wildcards and strangers."""


def routes_of(app: web.Application) -> list[str]:
    """Every route the application registered, as its path pattern."""
    return sorted({resource.canonical for resource in app.router.resources()})


def _fill(pattern: str, rng: random.Random) -> str:
    return re.sub(r"\{(\w+)[^}]*\}", lambda m: rng.choice(PLACEHOLDERS.get(m[1], ("x",))), pattern)


METHODS = ("GET",) * 8 + ("POST",) * 4 + ("HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
ODD_METHODS = ("TRACE", "CONNECT", "PRI", "get", "G\x00T", "GÉT", "M-SEARCH", "", "X" * 300)
QUERY_NAMES = (
    "namespace",
    "pod",
    "container",
    "labelSelector",
    "metricLabelSelector",
    "hash",
    "initial",
    "scope",
    "a\r\nb",
    "\r\n",
    "x\x00y",
    "",
    "ü",
    "%",
    "=",
)
QUERY_VALUES = (
    "shop",
    "web-1",
    "main",
    "true",
    "false",
    "node",
    "app=web",
    "app in (a,b),!canary",
    "tier notin (x)",
    "a=b=c",
    "!",
    "in (",
    ",,,",
    "x\r\nSet-Cookie: y",
    "\x00",
    "é" * 50,
    "z" * 3000,
)
HEADER_NAMES = (
    "X-Remote-User",
    "X-Remote-Group",
    "X-Remote-Extra-Scopes",
    "Accept",
    "Accept-Encoding",
    "Content-Type",
    "Upgrade",
    "Origin",
    "X-Forwarded-For",
    "Cookie",
)
ODD_HEADER_NAMES = ("Bad Name", "Bad:Name", "", "\u00fc", "X-" + "h" * 300, "Expect")
HEADER_VALUES = (
    "x",
    "",
    " spaced ",
    "text/html",
    "application/json",
    "gzip, br",
    "websocket",
    "system:masters",
    '()<>@,;:\\"/[]?={}',
)
ODD_HEADER_VALUES = ("a\tb", "caf\u00e9", "\x7f", "v" * 9000, "100-continue", "x\x00y")


def _pct_garbage(rng: random.Random) -> str:
    return "".join(f"%{rng.randrange(256):02X}" for _ in range(rng.randrange(1, 6)))


def _path(rng: random.Random, routes: list[str], odd: bool, method: str) -> str:
    # bodies matter to one route: most POSTs go there
    if method == "POST" and rng.random() < 0.6:
        base = "/gather_runtime_info"
    else:
        base = _fill(rng.choice(routes), rng)
    if rng.random() < 0.5:
        return base
    mutations = [
        lambda: base + "/" + rng.choice(["x", "..", ".", "", "%2e%2e", "*", "\u2603"]),
        lambda: base + _pct_garbage(rng),
        lambda: "//" + base.lstrip("/"),
        lambda: base.replace("/", "/%2F", 1),
        lambda: base + "%",
        lambda: base + "%zz",
        lambda: base.upper(),
        lambda: base + "#frag",
    ]
    if odd:
        mutations += [
            lambda: "/" + "".join(rng.choice(string.printable[:94]) for _ in range(40)),
            lambda: "*",
            lambda: "http://exporter.example" + base,
            lambda: base + "/" + "a" * rng.choice([100, 5000, 9000]),
            lambda: base + "\x00",
        ]
    return rng.choice(mutations)()


def _query(rng: random.Random, odd: bool) -> str:
    if rng.random() < 0.4:
        return ""
    pairs = []
    for _ in range(rng.randrange(1, 5)):
        name, value = rng.choice(QUERY_NAMES), rng.choice(QUERY_VALUES)
        if not odd or rng.random() < 0.5:
            name, value = quote(name, safe=""), quote(value, safe="")
        sep = rng.choice(["=", "=", "", "=="])
        pairs.append(f"{name}{sep}{value}")
    if rng.random() < 0.1:
        pairs.append(_pct_garbage(rng))
    return "?" + rng.choice(["&", "&", ";", "&&"]).join(pairs)


def _body(rng: random.Random) -> bytes:
    roll = rng.randrange(10)
    if roll == 0:
        return b""
    if roll == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if roll in (2, 3):
        depth = rng.choice([50, 999, 1001, 5000, 20000, 30000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        inner = '{"containerIds": []}' if rng.random() < 0.5 else "1"
        return (opener * depth + inner + closer * depth).encode()
    if roll == 4:
        return b"x" * (64 * 1024 + rng.randrange(1, 1000))
    ids: object = rng.choice(
        [
            [],
            [""],
            [None],
            ["cri-o://" + "a" * 64],
            [c.id for c in standard_snapshot().containers[:2]],
            [1, 2],
            "nope",
            {"x": 1},
        ]
    )
    doc: object = rng.choice(
        [
            {"containerIds": ids},
            {"CONTAINERIDS": ids},
            {"other": 1},
            None,
            [ids],
            "text",
            {"containerIds": ids, "extra": {"deep": [[[[]]]]}},
        ]
    )
    text = orjson.dumps(doc)
    if rng.random() < 0.2:
        text = text[: rng.randrange(len(text) + 1)] + b"NaN"
    return text


@dataclass
class Request:
    raw: bytes
    method: str
    path: str


def _request(rng: random.Random, routes: list[str]) -> Request:
    """One request; about a third are odd beyond what the URL can carry (method, request
    line, header names and values), the rest reach the handlers."""
    odd = rng.random() < 0.3
    method = rng.choice(ODD_METHODS if odd and rng.random() < 0.3 else METHODS)
    path = _path(rng, routes, odd, method) + _query(rng, odd)
    version = "HTTP/1.1"
    if odd and rng.random() < 0.3:
        version = rng.choice(["HTTP/1.0", "HTTP/2.0", "HTTP/1.x", "HTTPS/1.1", ""])
    headers: list[tuple[str, str]] = []
    if not odd or rng.random() < 0.8:
        hosts = ["exporter", "127.0.0.1:8443"] + (["", "a b", "x" * 300] if odd else [])
        headers.append(("Host", rng.choice(hosts)))
    auth = rng.random()
    if auth < 0.7:
        headers.append(("Authorization", f"Bearer {TOKEN}"))
    elif auth < 0.85:
        bad = ["Bearer", "Bearer ", "Basic abc", "bearer x", "Bearer nope"]
        bad += ["Bearer \x01", "Bearer " + "t" * 9000] if odd else []
        headers.append(("Authorization", rng.choice(bad)))
    for _ in range(rng.randrange(4)):
        names = HEADER_NAMES + (ODD_HEADER_NAMES if odd else ())
        values = HEADER_VALUES + (ODD_HEADER_VALUES if odd else ())
        headers.append((rng.choice(names), rng.choice(values)))
    body = _body(rng) if method in ("POST", "PUT", "PATCH") or rng.random() < 0.05 else b""
    framing = rng.randrange(12 if odd else 40)
    if framing == 0 and body:
        size = f"{len(body):x}".encode()
        payload = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
        headers.append(
            ("Transfer-Encoding", rng.choice(["chunked", "gzip, chunked", "chunked, identity"]))
        )
        if rng.random() < 0.3:
            payload = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    else:
        payload = body
        length = str(len(body))
        if framing == 1:
            length = rng.choice(["-1", "abc", "1e3", " 5", "0x10", "99999999999999999999"])
        elif framing == 2:
            headers.append(("Content-Length", length))
        elif framing == 3:
            length = str(max(0, len(body) - rng.randrange(1, 5)))
        if body or framing in (1, 2):
            headers.append(("Content-Length", length))
    if odd and rng.random() < 0.1:
        headers.append(("X-Folded", "first"))
        headers.append(("", " continued"))  # obs-fold: a line starting with a space
    headers.append(("Connection", "close"))
    lines = [f"{method} {path} {version}".rstrip()]
    for name, value in headers:
        lines.append(f" {value}" if not name else f"{name}: {value}")
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    return Request(head + payload, method, path)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def _send(served_at: Served, request: Request) -> Answer | None:
    """The first response to ``request``, or None when the server closed without one."""
    reader, writer = await asyncio.open_connection(served_at.host, served_at.port)
    try:
        writer.write(request.raw)
        await writer.drain()
        return await asyncio.wait_for(_read_answer(reader, request.method), timeout=15)
    except ConnectionResetError:
        return None
    finally:
        writer.close()


async def _read_answer(reader: asyncio.StreamReader, method: str) -> Answer | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise AssertionError(f"a partial response head: {e.partial!r}") from None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    status = int(status_line.split(" ")[1])
    if headers.get("content-type", "").startswith("text/event-stream") or method == "HEAD":
        return Answer(status, headers, b"")
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return Answer(status, headers, body)


def _problem(request: Request, answer: Answer | None) -> str | None:
    """What is wrong with this answer, if anything."""
    if answer is None:
        return None  # the server dropped a connection it could not frame an answer on
    if answer.status >= 500:
        return f"answered {answer.status}: {answer.body[:300]!r}"
    if answer.status < 400 or request.method == "HEAD":
        return None
    content_type = answer.headers.get("content-type", "")
    if content_type.startswith("text/plain") and "/gather_runtime_info" in request.path:
        return None  # that endpoint's own error bodies are Go's text, as the replaced tool's
    if not content_type.startswith("application/json"):
        return f"a {answer.status} that is not JSON: {content_type} {answer.body[:200]!r}"
    try:
        error = orjson.loads(answer.body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if not error:
        return f"a {answer.status} without an error message: {answer.body[:200]!r}"
    return None


@pytest.fixture
async def exporter(tmp_path: Path) -> AsyncIterator[Served]:
    sock = socket_path("fuzz")
    snap = standard_snapshot()
    async with FakeApiServer(bookmark_interval=0.5) as api, extractor_standin(sock):
        for pod in snap.pods:
            assert pod.name and pod.namespace
            ids = [c for c in snap.containers if c.pod_uid == pod.uid and not c.sandbox]
            api.add_pod(
                make_pod(
                    pod.name,
                    pod.namespace,
                    uid=pod.uid,
                    node="node-a",
                    containers=[FakeContainer(c.name or "c", container_id=c.id) for c in ids],
                    labels={"app": pod.name},
                )
            )
        api.add_token(TOKEN, "fuzzer")
        api.allow("fuzzer", "*", path="*")
        api.allow("fuzzer", "*", resource="*", api_group="*")
        settings = settings_with_api(
            api,
            tmp_path,
            sock,
            poll_interval_seconds=0.5,
            auth_enabled=True,
            request_timeout_seconds=5,
            max_event_streams_per_client=CONCURRENCY * 2,
        )
        async with served(settings) as running:
            await _until_ready(running)
            yield running


async def _until_ready(running: Served) -> None:
    probe = Request(
        f"GET /readyz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Connection: close\r\n\r\n".encode(),
        "GET",
        "/readyz",
    )
    for _ in range(200):
        answer = await _send(running, probe)
        if answer and answer.status == 200 and orjson.loads(answer.body)["metadataSource"] == "api":
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the exporter never got ready: {answer}")


async def test_random_requests_get_no_5xx_and_log_no_traceback(
    exporter: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rng = random.Random(SEED)
    routes = routes_of(exporter.exporter.app)
    assert {"/v1/events", "/gather_runtime_info", "/livez", "/metrics"} <= set(routes)
    requests = [_request(rng, routes) for _ in range(REQUESTS)]
    todo = iter(requests)
    problems: list[str] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        for request in todo:
            answer = await _send(exporter, request)
            if answer is not None:
                statuses[answer.status] = statuses.get(answer.status, 0) + 1

            problem = _problem(request, answer)
            if problem:
                problems.append(f"{problem}\n    request: {request.raw[:400]!r}")

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    assert not problems, f"seed {SEED}: {len(problems)} bad answers:\n" + "\n".join(problems[:20])
    # the generator reaches handlers, refusals and the parser's errors alike
    assert statuses.get(200, 0) > REQUESTS // 20, statuses
    assert {400, 401, 404, 405, 413} <= statuses.keys(), statuses
    loud = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info or "Traceback" in r.getMessage()
    ]
    assert not loud, [f"{r.name}: {r.getMessage()[:300]}" for r in loud[:10]]
    # malformed requests are logged once per client per minute: this run is one client
    refused = [r for r in caplog.records if r.name == "exporter.http.server"]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING, refused
    # and the exporter still answers
    answer = await _send(
        exporter,
        Request(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET", ""),
    )
    assert answer is not None and answer.status == 200
