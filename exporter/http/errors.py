"""JSON error responses shaped like a Kubernetes `Status`, with an `error` field as well.

Why both shapes in one body: the aggregator and kubectl understand `metav1.Status`
(`kind`, `code`, `reason`, `message`), while the exporter's own JSON API reports failures
as `{"error": ...}`; one body serves both kinds of caller.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    413: "RequestEntityTooLarge",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_response(
    code: int, message: str, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON error response with HTTP status `code` and a human-readable `message`."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
        "error": message,
    }
    return web.Response(
        status=code,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


class Refusal(Exception):
    """A request answered with the JSON error ``status`` and ``message``, raised where a
    handler cannot simply return it.

    Why not aiohttp's ``HTTPException(reason=...)``: the reason goes into the status line,
    and aiohttp refuses one holding CR or LF with a ValueError, so a message quoting the
    request (a query parameter named ``a%0D%0Ab``) turned a 400 into a 500. This message
    only ever goes into the JSON body.
    """

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def response(self) -> web.Response:
        return status_response(self.status, self.message, headers=self.headers)
