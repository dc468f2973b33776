"""Request limits: body size, handler time, and JSON answers for unknown routes.

Why: the exporter is the network-facing half of a privileged agent; a caller must not be
able to make it buffer unbounded bodies or hold handlers forever, and every refusal is
JSON so scripts and the aggregator can read it. Bodies are capped twice — a declared
`Content-Length` over the limit is refused before anything is read, and the request's
own read limit is lowered so a chunked body stops at the limit too. A route that must
take more (`/gather_runtime_info`: every container id of a node) has its own bound.

Long-lived streams (Server-Sent Events) are exempt from the handler time limit by path.
A request whose body had not all arrived when its time ran out is the client's fault:
408, not 504.
Router 404/405 become JSON; a handler that answers 404/405 itself (the insights-compatible
`/gather_runtime_info` does, with its own bodies) is left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter.http.errors import status_response

STREAMING_PATHS = frozenset({"/v1/events"})


def limits_middleware(
    max_bytes: int,
    timeout: float,
    *,
    streaming_paths: Collection[str] = STREAMING_PATHS,
    route_max_bytes: Mapping[str, int] | None = None,
) -> Middleware:
    """The aiohttp middleware refusing bodies over ``max_bytes`` (or, on a path of
    ``route_max_bytes``, over the larger of the two) and handlers running longer than
    ``timeout`` seconds."""
    routes = dict(route_max_bytes or {})

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        bound = max(max_bytes, routes.get(request.path, 0))
        too_large = f"request body larger than {bound} bytes"
        if request.content_length is not None and request.content_length > bound:
            return status_response(413, too_large)
        request = request.clone(client_max_size=bound)
        routing_error = request.match_info.http_exception
        deadline = asyncio.timeout(None if request.path in streaming_paths else timeout)
        try:
            async with deadline:
                return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return status_response(413, too_large)
        except TimeoutError:
            if not deadline.expired():
                raise
            if request.body_exists and not request.content.is_eof():
                return status_response(408, f"request body not received within {timeout:g}s")
            return status_response(504, f"request did not complete within {timeout:g}s")
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            if routing_error is None:
                raise
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return status_response(
                exc.status, f"{request.method} {request.path}: {exc.reason}", headers=headers
            )

    return limit
