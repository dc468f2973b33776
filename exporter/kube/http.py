"""Async httpx clients for the Kubernetes API, with credentials resolved by the official client.

Why both: `kubernetes.config` (through `exporter.kube.config`) already understands every
way of reaching a cluster — in-cluster service account with its rotating token, kubeconfig
client certificates, tokens, exec plugins — so we reuse its resolution; but the requests
themselves go through httpx, which is natively async: a TokenReview per uncached request,
or one proxied call per node, must not occupy a worker thread, and a per-call timeout is
one argument.
"""

from __future__ import annotations

import ssl
from collections.abc import Generator
from typing import Any

import httpx

from exporter.kube.config import KubeConfigError, load_api_client


class ResponseTooLarge(ValueError):
    """A peer or exporter answered with more bytes than the caller accepts."""


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """A streamed response's body, refusing (``ResponseTooLarge``) past ``limit`` bytes, so
    a misbehaving exporter cannot make its caller buffer without end."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(f"answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class ConfigTokenAuth(httpx.Auth):
    """Asks the configuration for the token on every request so rotated tokens are picked up.

    The official loaders install a refresh hook that re-reads the projected service-account
    token (or re-runs an exec plugin) once it expires; calling it per request is cheap.
    """

    def __init__(self, cfg: Any) -> None:
        self._cfg = cfg

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            request.headers["Authorization"] = token
        yield request


def _tls_context(cfg: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    return ctx


def load_configuration(kubeconfig: str | None) -> Any:
    """The official client's `Configuration` for this kubeconfig (or in-cluster)."""
    return load_api_client(kubeconfig).configuration


def api_http_client(cfg: Any, *, timeout: float) -> httpx.AsyncClient:
    """An httpx client rooted at the API server, authenticated like the official client."""
    try:
        verify = _tls_context(cfg)
    except (OSError, ssl.SSLError) as exc:
        raise KubeConfigError(f"cannot load the API server's TLS material: {exc}") from exc
    return httpx.AsyncClient(
        base_url=cfg.host,
        verify=verify,
        auth=ConfigTokenAuth(cfg),
        timeout=timeout,
        headers={"Accept": "application/json"},
    )
