"""The exporter's TLS server context, following its certificate and front-proxy trust.

Why per handshake: cert-manager and OpenShift's service-ca rewrite the mounted Secret in
place (kubelet swaps a `..data` symlink), typically weeks before expiry; a server that
read the files once serves an expired certificate after the next rotation. The listening
context's SNI callback — which OpenSSL calls for every ClientHello, with or without SNI —
stats the files (following symlinks: inode, size, mtime), asks the front-proxy source for
its current configuration, and hands the connection a context built from both. A
half-written pair that fails to load keeps the previous context until the files change
again, so a rotation never takes the server down.

Client certificates are requested but optional when a front proxy may be trusted
(`exporter.security.front_proxy`): the kube-aggregator presents one, bearer-token callers do not.
They verify only against the front-proxy CA (loaded with `cadata`), so a verified client
certificate is a front-proxy certificate. Until that CA is known (ConfigMap not read yet,
CA file not there yet) presented certificates fail verification: nothing is trusted early.
The CA a connection was verified with stays in force for that connection; a CA removed
from the source applies to connections opened after the change. Each context names its
source (`ServerContext.front_proxy`), so the authentication middleware reads the allowed
names and header names from the same place. TLS 1.2 is the floor.
"""

from __future__ import annotations

import logging
import ssl

from exporter.security.front_proxy import (
    FileState,
    RequestHeaderConfig,
    RequestHeaderSource,
    file_state,
)

log = logging.getLogger(__name__)


class TLSConfigError(Exception):
    """The configured certificate, key or CA cannot be loaded."""


class ServerContext(ssl.SSLContext):
    """A server context that knows which front-proxy source verifies its client certificates."""

    front_proxy: RequestHeaderSource | None = None


def front_proxy_source(ssl_object: object) -> RequestHeaderSource | None:
    """The front-proxy source of a connection's TLS context, from its
    `transport.get_extra_info("ssl_object")`; None when it trusts no front proxy."""
    context = getattr(ssl_object, "context", None)
    return context.front_proxy if isinstance(context, ServerContext) else None


def _build(
    cert_file: str,
    key_file: str,
    front_proxy: RequestHeaderSource | None,
    config: RequestHeaderConfig | None,
) -> ServerContext:
    ctx = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    if front_proxy is not None:
        # Requested even while no CA is known: the connection's verify mode comes from the
        # listening context, so it must be set from the start for a CA that appears later
        # to take effect. Without a CA, presented certificates fail verification.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.front_proxy = front_proxy
        if config is not None:
            ctx.load_verify_locations(cadata=config.ca_pem)
    return ctx


_State = tuple[FileState, FileState, RequestHeaderConfig | None]


class ReloadingContext:
    """Owns the outer (listening) context and the freshest one built from the sources."""

    def __init__(
        self, cert_file: str, key_file: str, front_proxy: RequestHeaderSource | None
    ) -> None:
        self._files = (cert_file, key_file)
        self._front_proxy = front_proxy
        self._state = self._states()
        try:
            self._current = self._build(self._state)
            self.listening = self._build(self._state)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"cannot load TLS files ({cert_file}, {key_file}): {exc}") from exc
        self.listening.sni_callback = self._on_client_hello
        self.reloads = 0

    def _states(self) -> _State:
        config = self._front_proxy.current() if self._front_proxy is not None else None
        return (file_state(self._files[0]), file_state(self._files[1]), config)

    def _build(self, state: _State) -> ServerContext:
        return _build(*self._files, self._front_proxy, state[2])

    def current(self) -> ssl.SSLContext:
        """The context for the sources as they are now (rebuilt only when they changed)."""
        state = self._states()
        if state != self._state:
            self._state = state
            try:
                self._current = self._build(state)
                self.reloads += 1
                log.info("reloaded the TLS context (certificate %s)", self._files[0])
            except (OSError, ssl.SSLError) as exc:
                log.warning("keeping the previous TLS context: %s", exc)
        return self._current

    def _on_client_hello(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        conn.context = self.current()


def server_context(
    cert_file: str, key_file: str, front_proxy: RequestHeaderSource | None
) -> ServerContext:
    """The listening context; it follows the files and ``front_proxy`` (which the wiring
    starts and stops). TLSConfigError when the files cannot be loaded at start."""
    return ReloadingContext(cert_file, key_file, front_proxy).listening
