"""``/gather_runtime_info``, answering exactly as insights-runtime-extractor's exporter.

Its consumers (the Insights Operator, scripts/extract.sh) compare structures exactly,
so this mirrors the Go handler byte for byte where it matters: the nested
namespace → pod → ``<runtime>://<id>`` map, ``omitempty`` fields, ``?hash=`` (absent or
``true`` hashes every leaf with the 12-character base64url sha256), the POST body
``{"containerIds": [...]}`` decoded like Go's encoding/json, and its error responses,
which Go's ``http.Error`` sends as text/plain with a trailing newline.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from aiohttp import web

from exporter.node.views import NodeView, Views, prefixed_id

PATH = "/gather_runtime_info"
INVALID_JSON = '{"error": "Invalid JSON in request body"}'
IDS_REQUIRED = '{"error": "containerIds field is required"}'
NOT_SUPPORTED = "Method is not supported."


def hash_value(value: str) -> str:
    """base64url(sha256(value)) without padding, first 12 characters (IRE's HashString);
    the empty string stays empty, as there."""
    if not value:
        return ""
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:12]


def go_http_error(text: str, status: int) -> web.Response:
    """What Go's http.Error writes: text/plain, nosniff, the message and a newline."""
    return web.Response(
        status=status,
        body=(text + "\n").encode(),
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )


class BadBody(Exception):
    """The POST body is rejected; the message is the exact error body to send."""


def parse_container_ids(body: bytes) -> list[str]:
    """Decode like ``json.NewDecoder(r.Body).Decode(&GatherRuntimeInfoRequest{})``.

    Go decodes only the first JSON value, matches the field name case-insensitively,
    treats ``null`` as "nothing set", and fails on any type mismatch.
    """
    text = body.decode("utf-8", "replace").lstrip(" \t\r\n")
    try:
        value, _ = json.JSONDecoder(parse_constant=_no_constants).raw_decode(text)
    except ValueError:
        raise BadBody(INVALID_JSON) from None
    if value is None:
        raise BadBody(IDS_REQUIRED)
    if not isinstance(value, dict):
        raise BadBody(INVALID_JSON)
    ids: Any = None
    for key, item in value.items():
        if key.lower() == "containerids":
            ids = item
    if ids is None:
        raise BadBody(IDS_REQUIRED)
    if not isinstance(ids, list) or not all(isinstance(i, str | None) for i in ids):
        raise BadBody(INVALID_JSON)
    return [i or "" for i in ids]


def _no_constants(name: str) -> None:
    """Go's decoder knows no NaN or Infinity."""
    raise ValueError(name)


def go_json(value: object) -> bytes:
    """encoding/json's output: compact, UTF-8, with <, >, &, U+2028/9 escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    for ch, esc in _GO_ESCAPES:
        text = text.replace(ch, esc)
    return text.encode()


_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def bare_id(container_id: str) -> str:
    """``cri-o://abc`` and ``containerd://abc`` name the same container as ``abc``."""
    return container_id.split("://", 1)[1] if "://" in container_id else container_id


def runtime_info(view: NodeView, ids: list[str], hashed: bool) -> dict[str, Any]:
    """The NodeRuntimeInfo map for the requested ids (no non-empty id = every container).

    The replaced exporter joins the ids with commas for its extractor, which reads an
    empty list as "all": ``[""]`` and ``[null]`` therefore mean all there, and do here.
    """
    wanted = {bare_id(i) for i in ids if i}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for cv in view.containers:
        if wanted and cv.container.id not in wanted:
            continue
        fp = cv.container.fingerprint
        info = fp.compatible() if fp is not None else {}
        if hashed:
            info = _hash_leaves(info)
        out.setdefault(cv.namespace, {}).setdefault(cv.pod, {})[prefixed_id(cv.container)] = info
    # Go marshals maps with sorted keys
    return {
        ns: {pod: dict(sorted(ctrs.items())) for pod, ctrs in sorted(pods.items())}
        for ns, pods in sorted(out.items())
    }


def _hash_leaves(info: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key == "runtimes":
            out[key] = [{k: hash_value(v) for k, v in item.items()} for item in value]
        else:
            out[key] = hash_value(value)
    return out


def add_routes(app: web.Application, views: Views) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET":
            ids: list[str] = []
        elif request.method == "POST":
            try:
                ids = parse_container_ids(await request.read())
            except BadBody as e:
                return go_http_error(str(e), 400)
        else:
            return go_http_error(NOT_SUPPORTED, 404)
        hashed = request.query.get("hash", "") in ("", "true")
        view = views.current()
        if view is None:
            reason = views.state.last_error or "the extractor has not answered yet"
            return go_http_error(f"no snapshot from the extractor: {reason}", 500)
        body = go_json(runtime_info(view, ids, hashed))
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    app.router.add_route("*", PATH, handler)
