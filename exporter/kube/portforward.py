"""One HTTP(S) GET to a pod's port through the API server's port-forward subresource.

Why port-forward and not the pod proxy: kube-apiserver drops the caller's `Authorization`
header before proxying to a pod, so an exporter that authenticates its callers
(TokenReview + SubjectAccessReview) can never be reached through `pods/proxy`.
`pods/portforward` tunnels a TCP stream instead — what `kubectl port-forward` does — so
TLS runs end to end to the exporter, its certificate is verified by the caller, and the
bearer token arrives intact; RBAC still decides who may open the tunnel.

The tunnel is the official client's (`kubernetes.stream.portforward`: a WebSocket with the
`v4.channel.k8s.io` framing, relayed through a local socket pair by a thread of its own).
Everything here blocks and is meant for a worker thread. Every read and write after the
WebSocket handshake is bounded by one deadline; the handshake itself has no timeout in
the official client, so callers also bound the whole call from outside.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException, ApiValueError
from kubernetes.stream import portforward
from websocket import WebSocketBadStatusException

HANG_UP_SECONDS = 1.0
"""How long closing waits for the relay thread to acknowledge the end of the stream."""


class TunnelError(Exception):
    """The request could not be made or answered; the message says why, for a person."""


@dataclass(frozen=True)
class TlsTarget:
    """How to check the exporter's certificate: the trusted CAs and the name it must carry."""

    context: ssl.SSLContext
    server_name: str

    @classmethod
    def load(cls, ca_file: str | None, server_name: str) -> TlsTarget:
        """Trusting `ca_file` (else the system's CAs); TunnelError when it cannot be read."""
        try:
            return cls(ssl.create_default_context(cafile=ca_file), server_name)
        except (OSError, ssl.SSLError) as exc:
            raise TunnelError(f"cannot load the CA file {ca_file}: {exc}") from exc


@dataclass(frozen=True)
class Answer:
    """The exporter's HTTP answer."""

    status: int
    body: bytes


class _Deadline:
    """Seconds left until one fixed point in time; TimeoutError once it has passed."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self._end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        return remaining


def status_message(body: bytes) -> str:
    """The `message` of a Kubernetes `Status` body (or the start of any other body)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(parsed, dict):
        return str(parsed.get("message") or parsed.get("error") or "")
    return ""


def _refused(exc: ApiException) -> TunnelError:
    """Why the API server would not open the tunnel (RBAC, no such pod, no WebSockets…)."""
    cause = exc.__context__
    if isinstance(cause, WebSocketBadStatusException):
        message = status_message(cause.resp_body or b"")
        text = f"port-forward refused: HTTP {cause.status_code}"
        return TunnelError(text + (f": {message}" if message else ""))
    return TunnelError(f"port-forward failed: {exc.reason}")


def _open(api: ApiClient, namespace: str, pod: str, port: int) -> Any:
    try:
        return portforward(
            CoreV1Api(api).connect_get_namespaced_pod_portforward,
            pod,
            namespace,
            ports=str(port),
        )
    except ApiValueError as exc:
        raise TunnelError(f"port-forward failed: {exc}") from exc
    except ApiException as exc:
        raise _refused(exc) from exc


class _BorrowedSocketConnection(http.client.HTTPConnection):
    """An HTTP connection over a socket it does not own, so never closes.

    http.client closes its socket once a `Connection: close` answer is read; the tunnel's
    socket must instead be hung up by `_hang_up`.
    """

    def close(self) -> None:
        self.sock = None


def _exchange(
    sock: socket.socket | ssl.SSLSocket,
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    deadline: _Deadline,
    max_bytes: int,
) -> Answer:
    """HTTP/1.1 GET over an already connected socket, every blocking step deadline-bounded.

    The socket is left open: closing it is `_hang_up`'s job.
    """
    conn = _BorrowedSocketConnection(host, port)
    conn.sock = sock
    sock.settimeout(deadline.left())
    conn.request("GET", path, headers={**headers, "Connection": "close"})
    sock.settimeout(deadline.left())
    with conn.getresponse() as response:
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise TunnelError(f"response larger than {max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            sock.settimeout(deadline.left())
            chunk = response.read1(64 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise TunnelError(f"response larger than {max_bytes} bytes")
            chunks.append(chunk)
        return Answer(response.status, b"".join(chunks))


def _hang_up(sock: socket.socket | ssl.SSLSocket) -> None:
    """Half-close, read to the end, then close.

    Why: the official client's relay thread reads the other end of the socket pair, and
    closing a socket with unread bytes (a TLS session ticket, say) makes that read fail
    with ECONNRESET and print a traceback. Shutting down writes first lets the relay see a
    clean end of stream and close its side, which ends our read.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)  # on a TLS socket: drops TLS, no close_notify needed
        sock.settimeout(HANG_UP_SECONDS)
        while sock.recv(64 * 1024):
            pass
    sock.close()


def _handshake(sock: ssl.SSLSocket, tls: TlsTarget) -> None:
    try:
        sock.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        raise TunnelError(
            f"TLS: {exc.verify_message}; the exporter's certificate is not trusted for "
            f"{tls.server_name!r}: pass its CA with --ca-file and the name it carries "
            "with --tls-server-name"
        ) from exc


def get_through_portforward(
    api: ApiClient,
    namespace: str,
    pod: str,
    port: int,
    path: str,
    *,
    authorization: str | None,
    tls: TlsTarget | None,
    timeout: float,
    max_bytes: int,
) -> Answer:
    """GET `path` from `pod`:`port` through a fresh tunnel (TLS unless `tls` is None).

    `authorization` is the caller's own `Authorization` header value, sent to the pod.
    Raises TimeoutError when `timeout` passes, TunnelError for anything else.
    """
    deadline = _Deadline(timeout)
    forward = _open(api, namespace, pod, port)
    raw = forward.socket(port)
    sock: socket.socket | ssl.SSLSocket = raw
    try:
        raw.settimeout(deadline.left())
        if tls is not None:
            # Handshake apart from wrapping: a failed one must leave the socket to _hang_up
            # (wrap_socket would close it at once, unread records and all).
            sock = tls.context.wrap_socket(
                raw, server_hostname=tls.server_name, do_handshake_on_connect=False
            )
            _handshake(sock, tls)
        headers = {"Accept": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        host = tls.server_name if tls is not None else "localhost"
        return _exchange(sock, host, port, path, headers, deadline, max_bytes)
    except TimeoutError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        remote = forward.error(port)
        if remote:
            raise TunnelError(f"port-forward error: {remote.strip()}") from exc
        hint = ""
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
            hint = " (if the exporter serves plain HTTP, pass --insecure-http)"
        message = f"tunnel to {pod}:{port} broke: {type(exc).__name__}: {exc}{hint}"
        raise TunnelError(message) from exc
    finally:
        _hang_up(sock)
        raw.close()
