"""What every endpoint of the fake shares: its state, credentials and error answers."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import Counter
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from tests.support.apiserver.objects import JSON, status_object


@dataclass
class _Event:
    rv: int
    type: str
    old: JSON | None
    new: JSON


@dataclass
class _Grant:
    subject: str
    verb: str
    path: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    api_group: str

    def covers(self, user: str, groups: list[str], spec: JSON) -> bool:
        if self.subject not in (user, *(f"group:{g}" for g in groups)):
            return False
        non_resource = spec.get("nonResourceAttributes")
        resource = spec.get("resourceAttributes")
        if non_resource is not None:
            return (
                self.path is not None
                and self.verb in ("*", non_resource.get("verb"))
                and _path_matches(self.path, non_resource.get("path", ""))
            )
        if resource is None or self.resource is None:
            return False
        return (
            self.verb in ("*", resource.get("verb"))
            and self.resource in ("*", resource.get("resource"))
            and self.api_group in ("*", resource.get("group", ""))
            and (self.subresource is None or self.subresource == resource.get("subresource", ""))
            and (self.namespace is None or self.namespace == resource.get("namespace", ""))
            and (self.name is None or self.name == resource.get("name", ""))
        )


def _path_matches(pattern: str, path: str) -> bool:
    """RBAC nonResourceURLs: exact, or a prefix when the rule ends in '*'."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


@dataclass(eq=False)
class _Watcher:
    wake: asyncio.Event
    dropped: bool = False


class Shared:
    """State and helpers of the fake API server, shared by its endpoint groups."""

    def __init__(
        self,
        *,
        bookmark_interval: float = 1.0,
        token: str | None = None,
        expired_as_http_status: bool = False,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.bookmark_interval = bookmark_interval
        self.expired_as_http_status = expired_as_http_status
        self.calls: Counter[str] = Counter()
        self.proxy_requests: list[tuple[str, str, str, str, str, str, str]] = []
        self.portforward_requests: list[tuple[str, str, str]] = []
        self.pod_requests: list[tuple[str, dict[str, str]]] = []
        self.access_reviews: list[JSON] = []
        self._lock = threading.RLock()
        self._pods: dict[tuple[str, str], JSON] = {}
        self._log: list[_Event] = []
        self._rv = 100
        self._horizon = 0
        self._watchers: set[_Watcher] = set()
        self._backends: dict[tuple[str, str], str] = {}
        self._forwards: dict[tuple[str, str, int], tuple[str, int]] = {}
        self._tokens: dict[str, JSON] = {}
        self._grants: list[_Grant] = []
        self._configmaps: dict[tuple[str, str], JSON] = {}
        self._nodes: dict[str, JSON] = {}
        self._objects: dict[tuple[str, str, str], JSON] = {}
        self._forbidden: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0
        self._client: aiohttp.ClientSession | None = None

    def forbid(self, resource: str) -> None:
        """Answer every request for ``configmaps`` or ``nodes`` with RBAC's 403."""
        self._forbidden.add(resource)

    def _authorized(self, request: web.Request) -> bool:
        if request.headers.get("Authorization") == f"Bearer {self.token}":
            return True
        self.calls["unauthorized"] += 1
        return False

    @staticmethod
    def _error(code: int, reason: str, message: str) -> web.Response:
        return web.json_response(status_object(code, reason, message), status=code)

    def _unauthorized(self) -> web.Response:
        return self._error(401, "Unauthorized", "Unauthorized")

    def _rbac_denied(self, verb: str, resource: str, name: str, namespace: str) -> web.Response:
        """The 403 Status the RBAC authorizer gives, wording included."""
        self.calls["forbidden"] += 1
        subject = f'{resource} "{name}"' if name else resource
        scope = f'the namespace "{namespace}"' if namespace else "the cluster scope"
        message = (
            f'{subject} is forbidden: User "fake" cannot {verb} resource "{resource}" '
            f'in API group "" {"in" if namespace else "at"} {scope}'
        )
        return self._error(403, "Forbidden", message)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"
