"""The exporter's TLS server context, following its certificate files as they rotate.

Why per handshake: cert-manager and OpenShift's service-ca rewrite the mounted Secret in
place (kubelet swaps a `..data` symlink), typically weeks before expiry; a server that
read the files once serves an expired certificate after the next rotation. The listening
context's SNI callback — which OpenSSL calls for every ClientHello, with or without SNI —
stats the files (following symlinks: inode, size, mtime) and hands the connection a
context built from the current files. A half-written pair that fails to load keeps the
previous context until the files change again, so a rotation never takes the server down.

When a front-proxy CA is configured, client certificates are requested but optional: the
kube-aggregator presents one, bearer-token callers do not. The CA file is watched like the
certificate; it may be absent at start (it is copied from the cluster's
`extension-apiserver-authentication` ConfigMap, possibly after install) — until it
appears, presented client certificates fail verification, so nothing is trusted early.
TLS 1.2 is the floor.
"""

from __future__ import annotations

import logging
import os
import ssl

from exporter.settings import Settings

log = logging.getLogger(__name__)

_FileState = tuple[int, int, int, int] | None


class TLSConfigError(Exception):
    """The configured certificate, key or CA cannot be loaded."""


def _file_state(path: str) -> _FileState:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _build(cert_file: str, key_file: str, client_ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        # Requested even while the CA file is absent: the connection's verify mode comes
        # from the listening context, so it must be set from the start for a CA that
        # appears later to take effect. Without the CA, presented certificates fail.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        if os.path.exists(client_ca_file):
            ctx.load_verify_locations(cafile=client_ca_file)
        else:
            log.warning(
                "front-proxy CA %s is absent: client certificates are refused until it appears",
                client_ca_file,
            )
    return ctx


class ReloadingContext:
    """Owns the outer (listening) context and the freshest one built from the files."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str | None) -> None:
        self._files = (cert_file, key_file, client_ca_file)
        self._state = self._states()
        try:
            self._current = _build(*self._files)
            self.listening = _build(*self._files)
        except (OSError, ssl.SSLError) as exc:
            names = ", ".join(f for f in self._files if f)
            raise TLSConfigError(f"cannot load TLS files ({names}): {exc}") from exc
        self.listening.sni_callback = self._on_client_hello
        self.reloads = 0

    def _states(self) -> tuple[_FileState, ...]:
        return tuple(_file_state(f) if f else None for f in self._files)

    def current(self) -> ssl.SSLContext:
        """The context for the files as they are now (rebuilt only when they changed)."""
        state = self._states()
        if state != self._state:
            self._state = state
            try:
                self._current = _build(*self._files)
                self.reloads += 1
                log.info("reloaded TLS certificate from %s", self._files[0])
            except (OSError, ssl.SSLError) as exc:
                log.warning("keeping the previous TLS certificate: %s", exc)
        return self._current

    def _on_client_hello(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        conn.context = self.current()


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The listening context, or None when no certificate is configured (plain HTTP).

    Raises TLSConfigError when the configured files cannot be loaded at start.
    """
    if not (settings.tls_cert_file and settings.tls_key_file):
        return None
    reloading = ReloadingContext(
        settings.tls_cert_file, settings.tls_key_file, settings.requestheader_client_ca_file
    )
    return reloading.listening
