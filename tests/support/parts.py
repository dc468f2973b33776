"""The exporter's parts built as the wiring builds them, for tests that exercise one part.

Tests used to build parts from settings themselves; the wiring (exporter/wiring.py) is now
the one place that does, so tests call its builders through ``Parts``, which also closes
what they share (the API client, the front-proxy refresher) however the test ends.
"""

from __future__ import annotations

from typing import Any

from aiohttp.typedefs import Middleware

from exporter import wiring
from exporter.cluster.peers import Peers
from exporter.kube.client import KubeClient
from exporter.security.auth import AuthApi, auth_middleware
from exporter.security.front_proxy import ClusterRequestHeader, RequestHeaderSource
from exporter.security.tls import ServerContext
from exporter.settings import Settings


def settings_for(**values: Any) -> Settings:
    """Settings as given, with the pod reflector off unless asked for: most tests of one
    part have no node to watch."""
    return Settings(**{"kube_enabled": False, **values})


class Parts:
    """Lazily built parts for one Settings; ``aclose`` closes what was built."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._kube: KubeClient | None = None
        self._trusted: RequestHeaderSource | None = None

    @property
    def kube(self) -> KubeClient:
        if self._kube is None:
            self._kube = wiring.kube_client(self.settings)
            assert self._kube is not None, "these settings need no API server"
        return self._kube

    def auth_api(self) -> AuthApi:
        return wiring.auth_api(self.settings, self.kube)

    def auth_middleware(self, **kw: Any) -> Middleware:
        return auth_middleware(wiring.auth_policy(self.settings), self.auth_api(), **kw)

    def tls(self) -> ServerContext | None:
        """The serving context; a cluster front-proxy source is started, as the wiring's
        lifecycle would start it."""
        kube = self.kube if self.settings.needs_api_server else None
        self._trusted = wiring.front_proxy(self.settings, kube)
        if isinstance(self._trusted, ClusterRequestHeader):
            self._trusted.start()
        return wiring.server_tls(self.settings, self._trusted)

    def peers(self) -> Peers:
        fan_out = wiring.peers(self.settings, self.kube)
        assert fan_out is not None
        return fan_out

    async def aclose(self) -> None:
        if isinstance(self._trusted, ClusterRequestHeader):
            await self._trusted.stop()
        if self._kube is not None:
            await self._kube.aclose()
