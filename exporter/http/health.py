"""``/healthz``, ``/livez`` and ``/readyz``: the probes, answered without credentials.

Why two readiness bodies: the kubelet calls ``/readyz`` without credentials, and so can
anyone who reaches the port, while the reasons name the API server's address, the node
and raw error text. So a caller the authentication middleware marked ``ANONYMOUS``
gets the status and stable reason codes only; an authenticated reader (RBAC ``get`` on
``/readyz``), or anyone when authentication is off, gets the details too.

``/healthz`` and ``/livez`` read nothing: they answer as fast as the event loop turns.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from exporter.meter.pipeline import Meter
from exporter.node.views import Views
from extractor.contract import rfc3339

ANONYMOUS = web.RequestKey("anonymous", bool)
"""Set by the authentication middleware on a probe request whose caller did not prove
who it is (exporter/security/auth.py)."""

ALIVE = orjson.dumps({"status": "ok"})


def readiness(
    views: Views, stale_after: float, now: float, meter: Meter | None = None
) -> tuple[dict[str, object], bool]:
    """Ready once there is a snapshot and the pod list has synced (or the API is known down).

    An unreachable API server does not make the exporter unready: it keeps serving with
    the runtime's names, says so (``degraded``), and readiness explains why. Neither does
    an unreachable OpenMeter: events wait in the spool, and readiness says how many;
    events parked (never to be sent) or set aside, and a full spool, are reported with
    where they are. ``reasonCodes`` has one stable code per entry of ``reasons``.
    """
    state = views.state
    reasons: list[tuple[str, str]] = []
    ready = state.snapshot is not None
    if not ready:
        detail = state.last_error or "first pass pending"
        reasons.append(("extractor-pending", f"no snapshot from the extractor yet: {detail}"))
    elif state.last_error:
        reasons.append(("pass-failed", f"last snapshot pass failed: {state.last_error}"))
    if state.last_success is not None and now - state.last_success > stale_after:
        reasons.append(("snapshot-stale", f"snapshot is {now - state.last_success:.0f}s old"))
    reflector = views.reflector
    reflector_state = None
    if reflector is not None:
        reflector_state = reflector.state
        if reflector_state == "starting":
            ready = False
            reasons.append(("api-syncing", "waiting for the first pod list from the API server"))
        elif reflector_state == "disconnected":
            detail = f": {reflector.last_error}" if reflector.last_error else ""
            reasons.append(
                ("api-unreachable", f"API server unreachable, serving runtime names{detail}")
            )
    body: dict[str, object] = {
        "status": "ok",
        "ready": ready,
        "metadataSource": "api" if views.api_usable() else "runtime",
        "reflector": reflector_state,
        "lastSnapshot": rfc3339(state.last_success),
    }
    if meter is not None:
        stats = meter.stats()
        body["meter"] = {
            "pendingEvents": stats.pending,
            "parkedEvents": stats.events_parked,
            "droppedEvents": stats.events_dropped,
            "spoolFull": bool(stats.spool_full),
            "spool": str(meter.spool.directory),
            "sink": meter.sender.describe(),
            "lastError": meter.last_error,
        }
        reasons.extend(meter.problems())
    if not ready:
        body["status"] = "not ready"
    elif reasons:
        body["status"] = "degraded"
    body["reasons"] = [text for _, text in reasons]
    body["reasonCodes"] = [code for code, _ in reasons]
    return body, ready


def public(body: dict[str, object]) -> dict[str, object]:
    """What an unauthenticated caller may see of a readiness body."""
    return {"status": body["status"], "reasonCodes": body["reasonCodes"]}


def add_routes(
    app: web.Application, views: Views, *, stale_after_seconds: float, meter: Meter | None
) -> None:
    async def alive(request: web.Request) -> web.Response:
        return web.Response(body=ALIVE, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        body, is_ready = readiness(views, stale_after_seconds, time.time(), meter)
        if request.get(ANONYMOUS):
            body = public(body)
        return web.Response(
            body=orjson.dumps(body),
            status=200 if is_ready else 503,
            content_type="application/json",
        )

    app.router.add_get("/healthz", alive)
    app.router.add_get("/livez", alive)
    app.router.add_get("/readyz", ready)
