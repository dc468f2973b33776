"""``GET /v1/inventory``: this node's runtimes with their CPU (exporter/inventory/).

JSON by default; ``?format=csv`` or ``?format=table`` give the same as ``collect
--report`` prints for the cluster, for this node alone.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from exporter.http.documents import container_document
from exporter.http.errors import Refusal
from exporter.inventory import NodeContainers, build_inventory, table, to_csv
from exporter.node.views import Views

PATH = "/v1/inventory"
FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8",
           "table": "text/plain; charset=utf-8"}  # fmt: skip


def add_routes(app: web.Application, views: Views) -> None:
    async def inventory(request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - {"format"})
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise Refusal(400, f"unknown query parameter(s) {names}; known: format")
        fmt = request.query.get("format", "json")
        if fmt not in FORMATS:
            raise Refusal(400, f"format must be one of {', '.join(FORMATS)}")
        view = views.current()
        if view is None:
            reason = views.state.last_error or "the extractor has not answered yet"
            raise Refusal(503, f"no snapshot from the extractor: {reason}")
        node = NodeContainers(
            view.snapshot.node,
            view.snapshot.taken_at,
            [container_document(cv, view.snapshot.block_devices) for cv in view.containers],
        )
        document = build_inventory([node], now=time.time())
        if fmt == "json":
            body = orjson.dumps(document)
        else:
            body = (to_csv(document) if fmt == "csv" else table(document)).encode()
        return web.Response(body=body, headers={"Content-Type": FORMATS[fmt]})

    app.router.add_get(PATH, inventory)
