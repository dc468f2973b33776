"""The exporter's one way to the Kubernetes API server: credentials loaded once, one async
client for every request.

Credentials: ``kubernetes.config`` already understands every way of reaching a cluster —
the in-cluster service account with its rotating token, kubeconfig client certificates,
tokens and exec plugins — so ``load_configuration`` reuses it, once per process, in the
wiring (exporter/wiring.py), and hands the result to everything that calls the API.

Requests: httpx, natively async, so the pod watch, a TokenReview per uncached request,
the peer lookups and one call per node in ``collect`` never occupy a thread, and every
call has its own timeout. The bearer token is asked of the configuration on every
request, which runs the official loaders' refresh hook (a rotated service-account token
is picked up). JSON is parsed with orjson into plain data: the exporter converts what it
needs into its own models (exporter/kube/pods.py), and never loads the generated API
classes (``CoreV1Api`` alone costs ~21 MiB of resident memory). The official
``ApiClient`` is built from the same configuration only where its protocol code is
needed: the port-forward websocket (exporter/kube/portforward.py).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import kubernetes.client
import kubernetes.config
import orjson
import yaml
from kubernetes.config.config_exception import ConfigException

Query = Sequence[tuple[str, str | int | bool]]


class KubeConfigError(Exception):
    """Neither in-cluster credentials nor a usable kubeconfig were found."""


class ApiError(Exception):
    """The API server answered with a status other than 2xx."""

    def __init__(self, status: int, reason: str, body: bytes = b"") -> None:
        self.status = status
        self.reason = reason
        self.body = body
        super().__init__(f"API server answered {status} {reason}".strip())

    @property
    def message(self) -> str:
        """The ``message`` of the Status object the API server sent, else the reason."""
        try:
            status = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return self.reason
        message = status.get("message") if isinstance(status, dict) else None
        return str(message) if message else self.reason


class ResponseTooLarge(ValueError):
    """A peer or exporter answered with more bytes than the caller accepts."""


def load_configuration(kubeconfig: str | None) -> kubernetes.client.Configuration:
    """In-cluster when no kubeconfig is named and KUBERNETES_SERVICE_HOST is set, else the
    named kubeconfig (or $KUBECONFIG / ~/.kube/config)."""
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return configuration
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        return configuration
    except (ConfigException, OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as err:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "in-cluster/~/.kube/config"
        raise KubeConfigError(f"cannot load Kubernetes credentials ({where}): {err}") from err


def describe_error(err: BaseException) -> str:
    """One line for a failed request: the API server's status, or the transport error with
    the operating system's reason beneath it (httpx says only "All connection attempts
    failed"; the refused or unreachable address is in its cause)."""
    if isinstance(err, ApiError):
        return str(err)
    text = f"{type(err).__name__}: {str(err) or type(err).__name__}"
    cause: BaseException | None = err
    while cause is not None and not (isinstance(cause, OSError) and cause.errno):
        cause = cause.__cause__ or cause.__context__
    if cause is not None and cause is not err:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def api_path(template: str, **params: str) -> str:
    """``template`` with its ``{name}`` placeholders filled, each value URL-quoted."""
    return template.format(**{k: quote(v, safe="") for k, v in params.items()})


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """A streamed response's body, refusing (``ResponseTooLarge``) past ``limit`` bytes, so
    a misbehaving peer cannot make its caller buffer without end."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(f"answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class TokenAuth(httpx.Auth):
    """Asks the configuration for the token on every request, so rotated tokens are used.

    Also what peers authenticate with (exporter/cluster/peers.py): the exporter's own
    service-account token.
    """

    def __init__(self, configuration: kubernetes.client.Configuration) -> None:
        self._configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            request.headers["Authorization"] = token
        yield request


def tls_context(configuration: kubernetes.client.Configuration) -> ssl.SSLContext:
    """The API server's CA and the client certificate, as the configuration names them."""
    try:
        ctx = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if not configuration.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            ctx.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise KubeConfigError(f"cannot load the API server's TLS material: {exc}") from exc
    return ctx


class KubeClient:
    """Async JSON requests to the API server with one configuration's credentials."""

    def __init__(
        self, configuration: kubernetes.client.Configuration, *, timeout: float = 10.0
    ) -> None:
        self.configuration = configuration
        self._http = httpx.AsyncClient(
            base_url=configuration.host,
            verify=tls_context(configuration),
            auth=TokenAuth(configuration),
            timeout=timeout,
            headers={"Accept": "application/json"},
        )

    async def get_json(
        self, path: str, params: Query = (), *, timeout: float | httpx.Timeout | None = None
    ) -> Any:
        """GET ``path`` as parsed JSON; ApiError for a non-2xx answer, httpx.HTTPError when
        the server cannot be reached, ValueError for a body that is not JSON."""
        response = await self._http.get(path, params=_params(params), **_timeout(timeout))
        return _parsed(response)

    async def post_json(
        self, path: str, body: Any, *, timeout: float | httpx.Timeout | None = None
    ) -> Any:
        response = await self._http.post(
            path,
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
            **_timeout(timeout),
        )
        return _parsed(response)

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        params: Query = (),
        *,
        timeout: float | httpx.Timeout | None = None,
        allow_errors: bool = False,
    ) -> AsyncIterator[httpx.Response]:
        """GET ``path`` with the body left to read (a watch, line by line); ApiError for a
        non-2xx answer, with its body read, unless ``allow_errors`` (a proxied answer whose
        status is the backend's)."""
        request = self._http.build_request("GET", path, params=_params(params), **_timeout(timeout))
        response = await self._http.send(request, stream=True)
        try:
            if not (response.is_success or allow_errors):
                await response.aread()
                raise ApiError(response.status_code, response.reason_phrase, response.content)
            yield response
        finally:
            await response.aclose()

    def official(self) -> kubernetes.client.ApiClient:
        """The official client on the same credentials, for the protocols only it speaks."""
        return kubernetes.client.ApiClient(self.configuration)

    async def aclose(self) -> None:
        await self._http.aclose()


def _params(params: Query) -> httpx.QueryParams:
    """Booleans as the API server spells them (``true``), everything else as text."""
    return httpx.QueryParams(
        [(k, ("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in params]
    )


def _timeout(timeout: float | httpx.Timeout | None) -> dict[str, Any]:
    return {} if timeout is None else {"timeout": timeout}


def _parsed(response: httpx.Response) -> Any:
    if not response.is_success:
        raise ApiError(response.status_code, response.reason_phrase, response.content)
    return orjson.loads(response.content)
