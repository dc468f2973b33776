"""Authentication and authorization of exporter requests, delegated to the API server.

Why delegate: the exporter serves what every container on a node runs; who may read that
is a cluster policy, so it is decided where cluster policy lives — RBAC — exactly as the
kubelet and kube-rbac-proxy do: a bearer token is checked with a TokenReview, the caller's
right to the path with a SubjectAccessReview. Requests the kube-aggregator forwards for the
custom metrics API carry no token but a front-proxy client certificate and the user in
headers (`X-Remote-User` and friends). Those headers are trusted only behind a certificate
the TLS layer verified against the front-proxy CA and whose CN is an allowed name, and only
the header names the cluster publishes count: CA, names and headers come from one source
(`exporter.security.front_proxy`), which the connection's TLS context names and which is read
per request, so a refresh applies at once.

Decisions are cached briefly (allow and deny separately, bounded LRU) so a scraper does not
cost two API calls per scrape. When the API server cannot answer, requests fail with 503:
an outage must never open the data to everyone.

The API calls go through the exporter's one async API client (exporter/kube/client.py):
one timeout per call, no thread per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDictProxy

from exporter.http.errors import status_response
from exporter.http.health import ANONYMOUS
from exporter.kube.client import ApiError, KubeClient
from exporter.security.front_proxy import RequestHeaderConfig
from exporter.security.tls import front_proxy_source

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez"})
"""Probes: the kubelet calls them without credentials (as k8s.io/apiserver allows); a
caller who does authenticate (and may ``get`` the path) sees ``/readyz``'s details."""

USER_KEY = web.RequestKey("user", str)
"""Where the middleware leaves the authenticated username for handlers and access logs."""

_TOKEN_REVIEW = "/apis/authentication.k8s.io/v1/tokenreviews"
_ACCESS_REVIEW = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


@dataclass(frozen=True)
class AuthPolicy:
    """How long decisions are remembered, and what an API outage still allows."""

    cache_ttl_seconds: float = 10.0
    """An allow is reused this long (k8s.io/apiserver: 10 s)."""
    cache_negative_ttl_seconds: float = 10.0
    """A 401/403 is reused this long (k8s.io/apiserver: 10 s)."""
    cache_max_entries: int = 4096
    outage_grace_seconds: float = 300.0
    """While the API server cannot answer, an allow is honoured this long past its expiry."""


class ApiUnavailable(Exception):
    """The API server could not give an authentication or authorization answer."""


@dataclass(frozen=True)
class Identity:
    """Who is calling, as the API server (or the front proxy) says."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome for one (caller, verb, path): HTTP 200 to proceed, else the error."""

    code: int
    message: str
    username: str | None = None


class AuthApi:
    """TokenReview and SubjectAccessReview against the API server."""

    def __init__(
        self, client: KubeClient, *, timeout: float, audiences: Sequence[str] = ()
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._audiences = list(audiences)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            data = await self._client.post_json(path, body, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except ApiError as exc:
            raise ApiUnavailable(f"{path} answered HTTP {exc.status}") from exc
        except ValueError as exc:
            raise ApiUnavailable(f"{path} answered with invalid JSON") from exc
        status = data.get("status") if isinstance(data, dict) else None
        if not isinstance(status, dict):
            raise ApiUnavailable(f"{path} answered without a status")
        return status

    async def review_token(self, token: str) -> Identity | None:
        """The token's user, or None when the API server does not accept the token."""
        spec: dict[str, Any] = {"token": token}
        if self._audiences:
            spec["audiences"] = self._audiences
        status = await self._post(
            _TOKEN_REVIEW,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
        )
        user = status.get("user") or {}
        if status.get("authenticated") is not True or not user.get("username"):
            return None
        granted = status.get("audiences") or []
        if self._audiences and granted and not set(granted) & set(self._audiences):
            return None
        return Identity(
            username=str(user["username"]),
            uid=str(user.get("uid") or ""),
            groups=tuple(str(g) for g in user.get("groups") or ()),
            extra={str(k): [str(v) for v in vs] for k, vs in (user.get("extra") or {}).items()},
        )

    async def review_access(self, who: Identity, attributes: dict[str, Any]) -> tuple[bool, str]:
        """Whether `who` may do what `attributes` describe, and the API server's reason."""
        spec: dict[str, Any] = {"user": who.username, "groups": list(who.groups), **attributes}
        if who.uid:
            spec["uid"] = who.uid
        if who.extra:
            spec["extra"] = {k: list(v) for k, v in who.extra.items()}
        status = await self._post(
            _ACCESS_REVIEW,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )
        allowed = status.get("allowed") is True and status.get("denied") is not True
        return allowed, str(status.get("reason") or "")


_RESOURCE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_attributes(method: str, path: str) -> dict[str, Any]:
    """SubjectAccessReview attributes for a request, as kube-apiserver's RequestInfo derives them.

    `/apis/<group>/<version>/...` paths naming a resource (the custom metrics API) become
    resourceAttributes — namespaced `…/namespaces/<ns>/<resource>/<name>/<subresource>`,
    name `*` meaning a list — so RBAC rules on `custom.metrics.k8s.io` apply. Everything
    else is a non-resource URL whose verb is the lower-cased HTTP method (HEAD counts as
    get, as the kubelet does): RBAC `nonResourceURLs` rules say `get` and `post`.
    """
    parts = [p for p in path.split("/") if p]
    if len(parts) > 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
        namespace = ""
        if rest[0] == "namespaces" and len(rest) > 2:
            namespace, rest = rest[1], rest[2:]
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        subresource = "/".join(rest[2:])
        if method in ("GET", "HEAD"):
            verb = "list" if name in ("", "*") else "get"
        else:
            verb = _RESOURCE_VERBS.get(method, method.lower())
        attrs = {"group": group, "version": version, "resource": resource, "verb": verb}
        if namespace:
            attrs["namespace"] = namespace
        if name and name != "*":
            attrs["name"] = name
        if subresource:
            attrs["subresource"] = subresource
        return {"resourceAttributes": attrs}
    verb = "get" if method == "HEAD" else method.lower()
    return {"nonResourceAttributes": {"path": path, "verb": verb}}


class DecisionCache:
    """A bounded LRU of decisions with an expiry per entry."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, Decision]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> Decision | None:
        """The decision if it has not expired (an expired one stays, for ``stale``)."""
        hit = self._entries.get(key)
        if hit is None:
            return None
        expires, decision = hit
        if now >= expires:
            return None
        self._entries.move_to_end(key)
        return decision

    def stale(self, key: str, now: float, grace: float) -> Decision | None:
        """An allow decision expired at most ``grace`` seconds ago (denials never)."""
        hit = self._entries.get(key)
        if hit is None:
            return None
        expires, decision = hit
        return decision if decision.code == 200 and now < expires + grace else None

    def put(self, key: str, decision: Decision, ttl: float, now: float) -> None:
        if ttl <= 0:
            return
        self._entries[key] = (now + ttl, decision)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _peer_common_name(transport: asyncio.BaseTransport) -> str | None:
    """The CN of a client certificate the TLS layer verified, if one was presented."""
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def _front_proxy(request: web.Request) -> tuple[RequestHeaderConfig, str] | None:
    """The front-proxy configuration in force and the client certificate's CN, when the
    connection presented a certificate its TLS context verified against that source."""
    transport = request.transport
    if transport is None:
        return None
    common_name = _peer_common_name(transport)
    if common_name is None:
        return None
    source = front_proxy_source(transport.get_extra_info("ssl_object"))
    config = source.current() if source is not None else None
    return None if config is None else (config, common_name)


def _first_header(headers: CIMultiDictProxy[str], names: Sequence[str]) -> str:
    """The first non-empty value among `names`, in their order (as upstream's headerValue)."""
    for name in names:
        if value := headers.get(name, "").strip():
            return value
    return ""


def _front_proxy_identity(
    headers: CIMultiDictProxy[str], config: RequestHeaderConfig
) -> Identity | None:
    """The user the front proxy names, read as k8s.io/apiserver's requestheader authenticator
    does: first user header set, every value of every group header, extras by prefix
    (prefixes in order, key lower-cased then %-unescaped)."""
    user = _first_header(headers, config.username_headers)
    if not user:
        return None
    groups = tuple(
        g for name in config.group_headers for h in headers.getall(name, ()) if (g := h.strip())
    )
    extra: dict[str, list[str]] = {}
    for prefix in (p.lower() for p in config.extra_prefixes):
        for key, value in headers.items():
            if key.lower().startswith(prefix):
                extra.setdefault(unquote(key[len(prefix) :].lower()), []).append(value)
    uid = _first_header(headers, config.uid_headers)
    return Identity(username=user, uid=uid, groups=groups, extra=extra)


class _Authorizer:
    """The per-request decision with its cache; one per application."""

    def __init__(self, policy: AuthPolicy, api: AuthApi, clock: Callable[[], float]) -> None:
        self._api = api
        self._clock = clock
        self._cache = DecisionCache(policy.cache_max_entries)
        self._allow_ttl = policy.cache_ttl_seconds
        self._deny_ttl = policy.cache_negative_ttl_seconds
        self._outage_grace = policy.outage_grace_seconds
        self._inflight: dict[str, asyncio.Future[Decision]] = {}

    async def _once(self, key: str, compute: Callable[[], Awaitable[Decision]]) -> Decision:
        """The cached decision, else one shared computation for all concurrent askers.

        A burst of requests with a new token (a scrape fan-out, an HPA resync) costs one
        review, not one per request. Failures are not cached: the next request retries.
        While the API server cannot be reached, a caller allowed shortly before (within
        ``auth_outage_grace_seconds`` of the decision's expiry) stays allowed, so an API
        outage does not also blind every scraper; nobody new gets in.
        """
        cached = self._cache.get(key, self._clock())
        if cached is not None:
            return cached
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._remembered(key, compute))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        try:
            return await asyncio.shield(task)
        except ApiUnavailable:
            stale = self._cache.stale(key, self._clock(), self._outage_grace)
            if stale is None:
                raise
            return stale

    def _settled(self, key: str, task: asyncio.Future[Decision]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not logged as lost

    async def _remembered(self, key: str, compute: Callable[[], Awaitable[Decision]]) -> Decision:
        decision = await compute()
        ttl = self._allow_ttl if decision.code == 200 else self._deny_ttl
        self._cache.put(key, decision, ttl, self._clock())
        return decision

    async def _authorize(self, who: Identity, attributes: dict[str, Any]) -> Decision:
        allowed, reason = await self._api.review_access(who, attributes)
        if allowed:
            return Decision(200, "allowed", who.username)
        what = attributes.get("nonResourceAttributes") or attributes["resourceAttributes"]
        target = what.get("path") or "/".join(
            str(what[k]) for k in ("group", "resource", "subresource") if what.get(k)
        )
        message = f'forbidden: User "{who.username}" cannot {what["verb"]} {target}'
        return Decision(403, f"{message}: {reason}" if reason else message, who.username)

    async def _review(self, token: str, attributes: dict[str, Any]) -> Decision:
        who = await self._api.review_token(token)
        if who is None:
            return Decision(401, "Unauthorized: invalid bearer token")
        return await self._authorize(who, attributes)

    async def decide(self, request: web.Request) -> Decision:
        attributes = request_attributes(request.method, request.path)
        scope = repr(sorted(attributes.items()))
        front_proxy = _front_proxy(request)
        if front_proxy is not None:
            config, common_name = front_proxy
            if config.allowed_names and common_name not in config.allowed_names:
                return Decision(
                    401,
                    f'client certificate CN "{common_name}" is not among the front-proxy '
                    f"allowed names ({config.origin})",
                )
            who = _front_proxy_identity(request.headers, config)
            if who is None:
                names = ", ".join(config.username_headers) or "none configured"
                return Decision(401, f"front-proxy request without a user header ({names})")
            caller = (who.username, who.uid, who.groups, sorted(who.extra.items()))
            key = "proxy\0" + repr(caller) + scope
            return await self._once(key, lambda: self._authorize(who, attributes))

        token = _bearer_token(request)
        if token is None:
            return Decision(401, "Unauthorized: a bearer token is required")
        key = "token\0" + hashlib.sha256(token.encode()).hexdigest() + scope
        return await self._once(key, lambda: self._review(token, attributes))


def auth_middleware(
    policy: AuthPolicy, api: AuthApi, *, clock: Callable[[], float] = time.monotonic
) -> Middleware:
    """The aiohttp middleware (the wiring adds it only with authentication on).

    The authenticated username is left in `request[USER_KEY]` for handlers and logs.
    """
    authorizer = _Authorizer(policy, api, clock)

    async def identify(request: web.Request) -> None:
        """A probe never fails for its credentials: one that brings none (the kubelet) or
        whose credentials are refused or cannot be checked is served as ``ANONYMOUS``."""
        if _bearer_token(request) is not None or _front_proxy(request) is not None:
            with contextlib.suppress(ApiUnavailable):
                decision = await authorizer.decide(request)
                if decision.code == 200:
                    request[USER_KEY] = decision.username or ""
                    return
        request[ANONYMOUS] = True

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            await identify(request)
            return await handler(request)
        try:
            decision = await authorizer.decide(request)
        except ApiUnavailable as exc:
            log.warning("cannot authorize %s %s: %s", request.method, request.path, exc)
            return status_response(
                503,
                f"authentication/authorization unavailable: {exc}",
                headers={"Retry-After": "5"},
            )
        if decision.code != 200:
            headers = {"WWW-Authenticate": 'Bearer realm="runtime-insights"'}
            return status_response(
                decision.code, decision.message, headers=headers if decision.code == 401 else None
            )
        request[USER_KEY] = decision.username or ""
        return await handler(request)

    return authenticate
