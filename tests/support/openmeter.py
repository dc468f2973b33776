"""A fake OpenMeter ingest server (aiohttp on 127.0.0.1:0) that validates like the real one.

Why: a real OpenMeter needs Kafka, ClickHouse and PostgreSQL. This fake does what its v1
ingest path does to a request, from the vendor files in ``tests/support/vendor-specs/``
(provenance in its README): the Content-Type must be exactly one the OpenAPI spec lists for
``POST /api/v1/events`` (the handler compares strings); the body must match
``openmeter-ingest-event.schema.json`` (``#/$defs/batch`` for batches) and every event
``openmeter-cloudevents.spec.json``; ``time`` must match kin-openapi's date-time pattern.
Valid → 204, invalid → 400 ``application/problem+json``. Accepted events are deduplicated
on (source, id), as OpenMeter Cloud does for 32 days.

    async with FakeOpenMeter(token="t") as om:
        om.url                      # base URL, e.g. http://127.0.0.1:40123
        om.events                   # {(source, id): event} accepted, first copy wins
        om.duplicates               # accepted again and dropped
        om.rejected                 # 400s answered
        om.requests                 # [(status, content_type, number of events)]
        om.fail(2, status=500)      # the next 2 requests answer 500 (429: + Retry-After)
        om.delay = 0.5              # accept, then answer late (a lost response)
        await om.down(); await om.up()   # stop / restart listening on the same port
"""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import yaml
from aiohttp import web
from referencing import Registry, Resource

SPECS = Path(__file__).parent / "vendor-specs"
# kin-openapi's built-in date-time check, which OpenMeter's request validator uses
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


@functools.cache
def _validators() -> tuple[frozenset[str], Any, Any, Any]:
    root = SPECS
    openapi = yaml.load(
        (root / "openmeter-openapi.yaml").read_text(),
        Loader=yaml.CSafeLoader,
    )
    content_types = frozenset(openapi["paths"]["/api/v1/events"]["post"]["requestBody"]["content"])
    formats = jsonschema.FormatChecker()
    formats.checks("date-time")(lambda v: not isinstance(v, str) or bool(DATE_TIME.match(v)))
    ingest = orjson.loads((root / "openmeter-ingest-event.schema.json").read_bytes())
    single = jsonschema.Draft202012Validator(ingest, format_checker=formats)
    registry: Registry[Any] = Registry().with_resource(
        ingest["$id"], Resource.from_contents(ingest)
    )
    batch = jsonschema.Draft202012Validator(
        {"$ref": f"{ingest['$id']}#/$defs/batch"}, registry=registry, format_checker=formats
    )
    cloudevents = jsonschema.Draft7Validator(
        orjson.loads((root / "openmeter-cloudevents.spec.json").read_bytes()),
        format_checker=formats,
    )
    return content_types, single, batch, cloudevents


def validate_body(content_type: str, body: bytes) -> list[dict[str, Any]]:
    """The events of a request body, or ValueError saying what OpenMeter would say."""
    content_types, single, batch, cloudevents = _validators()
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
    for event in events:
        _check(cloudevents, event)
    return events


def _check(validator: Any, instance: Any) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(body)"
        raise ValueError(f"request body has an error: {where}: {first.message}")


class FakeOpenMeter:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.duplicates = 0
        self.rejected = 0
        self.requests: list[tuple[int, str, int]] = []
        self.delay = 0.0
        self._failures: list[tuple[int, float | None]] = []
        self._runner: web.AppRunner | None = None
        self._port = 0
        _validators()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def fail(self, times: int, status: int = 500, retry_after: float | None = None) -> None:
        self._failures.extend([(status, retry_after)] * times)

    async def __aenter__(self) -> FakeOpenMeter:
        await self.up()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.down()

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/events", self._ingest)
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
        return sum(int(e["data"]["cpu_ns"]) for e in self.events.values())

    def _problem(self, status: int, title: str, detail: str) -> web.Response:
        body = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": "/api/v1/events",
        }
        return web.Response(
            status=status, body=orjson.dumps(body), content_type="application/problem+json"
        )

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "")
        body = await request.read()
        if self._failures:
            status, retry_after = self._failures.pop(0)
            self.requests.append((status, content_type, 0))
            response = self._problem(status, "Injected failure", f"fake failure {status}")
            if retry_after is not None:
                response.headers["Retry-After"] = f"{retry_after:g}"
            return response
        if self.token is not None and request.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            self.requests.append((401, content_type, 0))
            return self._problem(401, "Unauthorized", "missing or wrong bearer token")
        try:
            events = validate_body(content_type, body)
        except ValueError as e:
            self.rejected += 1
            self.requests.append((400, content_type, 0))
            return self._problem(400, "Bad Request", str(e))
        for event in events:
            key = (event["source"], event["id"])
            if key in self.events:
                self.duplicates += 1
            else:
                self.events[key] = event
        self.requests.append((204, content_type, len(events)))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=204)
