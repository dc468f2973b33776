"""A fake OpenMeter ingest server (aiohttp on 127.0.0.1) that validates like the real one.

Why: a real OpenMeter needs Kafka, ClickHouse and PostgreSQL. This fake does what its
ingest paths do to a request, from the vendor files in ``tests/support/vendor-specs/``
(provenance in its README): on ``POST /api/v1/events`` the Content-Type must be exactly
one the OpenAPI spec lists (the v1 handler compares strings), the body must match
``openmeter-ingest-event.schema.json`` (``#/$defs/batch`` for batches) and every event
``openmeter-cloudevents.spec.json``; ``time`` must match the date-time pattern of the
validator OpenMeter runs. Valid → 204, invalid → 400 ``application/problem+json``.
``POST /api/v3/openmeter/events`` validates against the v3 spec's ``MeteringEvent``
(which admits no extension attributes) and answers 202. Accepted events are
deduplicated on (source, id), as OpenMeter Cloud does for 32 days.

    async with FakeOpenMeter(token="t") as om:
        om.url                      # base URL, e.g. http://127.0.0.1:40123
        om.events                   # {(source, id): event} accepted, first copy wins
        om.duplicates               # accepted again and dropped
        om.rejected                 # 400s answered
        om.requests                 # [(status, content_type, number of events)]
        om.fail(2, status=500)      # the next 2 requests answer 500 (429: + Retry-After)
        om.drop(1)                  # the next request's connection is cut before ingest
        om.drop(1, after=True)      # ... after the events were ingested (a lost response)
        om.chaos(0.3, random.Random(seed))   # a third of requests fail in one of those ways
        om.delay = 0.5              # accept, then answer late
        await om.down(); await om.up()   # stop / restart listening on the same port

``with FakeOpenMeter.threaded() as om:`` runs it on its own event loop in a thread, for
tests that drive subprocesses synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import yaml
from aiohttp import web
from referencing import Registry, Resource

SPECS = Path(__file__).parent / "vendor-specs"
# the date-time check of kin-openapi, the validator OpenMeter's server runs
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
V1 = "/api/v1/events"
V3 = "/api/v3/openmeter/events"


def _formats() -> jsonschema.FormatChecker:
    formats = jsonschema.FormatChecker()
    formats.checks("date-time")(lambda v: not isinstance(v, str) or bool(DATE_TIME.match(v)))
    return formats


def _openapi_to_json_schema(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 schema object as JSON Schema: ``nullable`` to type arrays, ``$ref``s
    to components inlined (the ones MeteringEvent uses are flat)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return _openapi_to_json_schema(components[name], components)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("nullable", "example", "description", "title") or key.startswith("x-"):
            continue
        if key == "properties":
            out[key] = {k: _openapi_to_json_schema(v, components) for k, v in value.items()}
        elif key == "allOf":
            for part in value:
                out.update(_openapi_to_json_schema(part, components))
        else:
            out[key] = value
    if schema.get("nullable"):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@functools.cache
def _validators() -> dict[str, tuple[frozenset[str], Any, Any, Any]]:
    formats = _formats()
    loader = yaml.CSafeLoader
    v1 = yaml.load((SPECS / "openmeter-openapi.yaml").read_text(), Loader=loader)
    v1_types = frozenset(v1["paths"][V1]["post"]["requestBody"]["content"])
    ingest = orjson.loads((SPECS / "openmeter-ingest-event.schema.json").read_bytes())
    single = jsonschema.Draft202012Validator(ingest, format_checker=formats)
    registry: Registry[Any] = Registry().with_resource(
        ingest["$id"], Resource.from_contents(ingest)
    )
    batch = jsonschema.Draft202012Validator(
        {"$ref": f"{ingest['$id']}#/$defs/batch"}, registry=registry, format_checker=formats
    )
    cloudevents = jsonschema.Draft7Validator(
        orjson.loads((SPECS / "openmeter-cloudevents.spec.json").read_bytes()),
        format_checker=formats,
    )
    v3 = yaml.load((SPECS / "openmeter-openapi-v3.yaml").read_text(), Loader=loader)
    v3_types = frozenset(v3["paths"]["/openmeter/events"]["post"]["requestBody"]["content"])
    components = v3["components"]["schemas"]
    event = _openapi_to_json_schema(components["MeteringEvent"], components)
    v3_single = jsonschema.Draft202012Validator(event, format_checker=formats)
    v3_batch = jsonschema.Draft202012Validator(
        {"type": "array", "items": event}, format_checker=formats
    )
    return {
        V1: (v1_types, single, batch, cloudevents),
        V3: (v3_types, v3_single, v3_batch, None),
    }


def validate_body(content_type: str, body: bytes, path: str = V1) -> list[dict[str, Any]]:
    """The events of a request body, or ValueError saying what OpenMeter would say."""
    content_types, single, batch, cloudevents = _validators()[path]
    if content_type not in content_types:
        raise ValueError(f"invalid content type: {content_type}")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"request body is not JSON: {e}") from None
    if content_type == "application/cloudevents-batch+json" or (
        content_type == "application/json" and isinstance(parsed, list)
    ):
        _check(batch, parsed)
        events = list(parsed)
    else:
        _check(single, parsed)
        events = [parsed]
    if not events:
        raise ValueError("no events found")
    if cloudevents is not None:
        for event in events:
            _check(cloudevents, event)
    return events


def _check(validator: Any, instance: Any) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(body)"
        raise ValueError(f"request body has an error: {where}: {first.message}")


Failure = tuple[str, int, float | None]
"""(kind, status, Retry-After): kind ``status``, ``drop`` (before ingest), ``lost`` (after)."""


class FakeOpenMeter:
    def __init__(self, token: str | None = None, port: int = 0) -> None:
        self.token = token
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.duplicates = 0
        self.rejected = 0
        self.requests: list[tuple[int, str, int]] = []
        self.delay = 0.0
        self._failures: list[Failure] = []
        self._chaos: tuple[float, random.Random] | None = None
        self._runner: web.AppRunner | None = None
        self._port = port
        self._lock = threading.Lock()
        _validators()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def fail(self, times: int, status: int = 500, retry_after: float | None = None) -> None:
        self._failures.extend([("status", status, retry_after)] * times)

    def drop(self, times: int, after: bool = False) -> None:
        self._failures.extend([("lost" if after else "drop", 0, None)] * times)

    def chaos(self, rate: float, rng: random.Random) -> None:
        """Fail about ``rate`` of the requests: 503, 429 with Retry-After, a connection
        cut before the events are taken, or after (the answer is lost)."""
        self._chaos = (rate, rng)

    def snapshot(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self._lock:
            return dict(self.events)

    async def __aenter__(self) -> FakeOpenMeter:
        await self.up()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.down()

    @classmethod
    @contextlib.contextmanager
    def threaded(cls, token: str | None = None) -> Iterator[FakeOpenMeter]:
        """The fake on an event loop of its own, in a daemon thread."""
        server = cls(token)
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.up())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="fake-openmeter", daemon=True)
        thread.start()
        ready.wait(30)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.down(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            loop.close()

    async def up(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post(V1, functools.partial(self._ingest, path=V1))
        app.router.add_post(V3, functools.partial(self._ingest, path=V3))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def billed_cpu_ns(self) -> int:
        return sum(int(e["data"]["cpu_ns"]) for e in self.snapshot().values())

    def _problem(self, status: int, title: str, detail: str, path: str) -> web.Response:
        body = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
        }
        return web.Response(
            status=status, body=orjson.dumps(body), content_type="application/problem+json"
        )

    def _next_failure(self) -> Failure | None:
        if self._failures:
            return self._failures.pop(0)
        if self._chaos is not None:
            rate, rng = self._chaos
            if rng.random() < rate:
                kind = rng.choice(("503", "429", "drop", "lost"))
                if kind == "503":
                    return ("status", 503, None)
                if kind == "429":
                    return ("status", 429, rng.choice((0.2, 0.5, 1.0)))
                return (kind, 0, None)
        return None

    async def _ingest(self, request: web.Request, path: str) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "")
        failure = self._next_failure()
        if failure is not None and failure[0] == "drop":
            self.requests.append((0, content_type, 0))
            assert request.transport is not None
            request.transport.close()  # cut mid-request: the body is never read
            raise asyncio.CancelledError
        body = await request.read()
        if failure is not None and failure[0] == "status":
            _, status, retry_after = failure
            self.requests.append((status, content_type, 0))
            response = self._problem(status, "Injected failure", f"fake failure {status}", path)
            if retry_after is not None:
                response.headers["Retry-After"] = f"{retry_after:g}"
            return response
        if self.token is not None and request.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            self.requests.append((401, content_type, 0))
            return self._problem(401, "Unauthorized", "missing or wrong bearer token", path)
        try:
            events = validate_body(content_type, body, path)
        except ValueError as e:
            self.rejected += 1
            self.requests.append((400, content_type, 0))
            return self._problem(400, "Bad Request", str(e), path)
        with self._lock:
            for event in events:
                key = (event["source"], event["id"])
                if key in self.events:
                    self.duplicates += 1
                else:
                    self.events[key] = event
        if failure is not None and failure[0] == "lost":
            self.requests.append((0, content_type, len(events)))
            assert request.transport is not None
            request.transport.close()  # ingested, but the answer never arrives
            raise asyncio.CancelledError
        status = 204 if path == V1 else 202
        self.requests.append((status, content_type, len(events)))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=status)
