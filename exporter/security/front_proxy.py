"""Front-proxy ("requestheader") trust: which client certificates may name a user in headers.

Why from the cluster: kube-apiserver publishes what its aggregator presents — the CA that
signs its front-proxy client certificate, the CNs that certificate may carry, and the
headers it puts the user in — in ConfigMap kube-system/extension-apiserver-authentication,
and keeps it current when the front-proxy CA rotates. Reading it there, as
k8s.io/apiserver's delegating authentication does, replaces a hand-made copy that goes
stale at the first rotation and header names hard-coded to one cluster's flags.

Which source wins, as in k8s.io/apiserver: an explicit
``RUNTIME_INSIGHTS_REQUESTHEADER_CLIENT_CA_FILE`` (for clusters where the ConfigMap cannot
be read) is used alone — that file, ``RUNTIME_INSIGHTS_REQUESTHEADER_ALLOWED_NAMES`` and the
standard ``X-Remote-*`` headers; without it the ConfigMap is read by a background task at
start and every ``REFRESH_SECONDS``. A failed read keeps the last good copy (an
API outage must not lock the aggregator out) and is retried sooner; until a first read
succeeds, client certificates are refused and bearer tokens keep working. A ConfigMap
without a front-proxy CA is an answer, not a failure: nothing is trusted then.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx
import orjson
from kubernetes.config.config_exception import ConfigException

from exporter.kube.client import ApiError, KubeClient, api_path
from exporter.lifecycle import Background

log = logging.getLogger(__name__)

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "extension-apiserver-authentication"
CONFIGMAP = f"ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}"
READER_ROLE = "extension-apiserver-authentication-reader"
REFRESH_SECONDS = 60.0
"""How often the ConfigMap is re-read: a rotated front-proxy CA is trusted within a minute."""
RETRY_SECONDS = 5.0
"""First retry after a failed read; doubled per failure up to the refresh interval."""

FileState = tuple[int, int, int, int] | None


def file_state(path: str) -> FileState:
    """What changes when a file is replaced or rewritten (symlinks followed), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class RequestHeaderConfig:
    """One consistent front-proxy configuration: the CA and how to read the headers."""

    ca_pem: str
    origin: str
    """Where it was read, for log lines and error messages."""
    allowed_names: frozenset[str] = frozenset()
    """CNs the client certificate may carry; empty means any the CA signed (as upstream)."""
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)

    def describe(self) -> str:
        names = ", ".join(sorted(self.allowed_names)) or "any"
        certificates = self.ca_pem.count("-----BEGIN CERTIFICATE-----")
        return (
            f"{certificates} CA certificate(s), allowed names: {names}, user headers: "
            f"{', '.join(self.username_headers) or 'none'}, group headers: "
            f"{', '.join(self.group_headers) or 'none'}, extra prefixes: "
            f"{', '.join(self.extra_prefixes) or 'none'}"
        )


class RequestHeaderSource(Protocol):
    """Where the TLS layer and the authentication middleware get the configuration."""

    def current(self) -> RequestHeaderConfig | None:
        """The configuration in force, or None when no front proxy is to be trusted."""
        ...


def checked_ca(pem: str, what: str) -> str:
    """`pem` if OpenSSL loads it as a CA bundle, else ValueError naming `what`."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"{what} is not a PEM CA bundle: {exc}") from exc
    return pem


def _json_list(data: Mapping[str, str], key: str) -> tuple[str, ...]:
    """A JSON list of strings as kube-apiserver writes them; absent or empty is none."""
    text = data.get(key) or ""
    if not text.strip():
        return ()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{key} is not JSON: {text!r}") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} is not a JSON list of strings: {text!r}")
    return tuple(value)


def config_from_configmap(data: Mapping[str, str]) -> RequestHeaderConfig | None:
    """The configuration a ConfigMap's data describes, None when it has no front-proxy CA.

    Raises ValueError when a key is malformed: such a copy must not replace a good one.
    """
    ca = data.get("requestheader-client-ca-file") or ""
    if not ca.strip():
        return None
    return RequestHeaderConfig(
        ca_pem=checked_ca(ca, "requestheader-client-ca-file"),
        origin=CONFIGMAP,
        allowed_names=frozenset(_json_list(data, "requestheader-allowed-names")),
        username_headers=_json_list(data, "requestheader-username-headers"),
        uid_headers=_json_list(data, "requestheader-uid-headers"),
        group_headers=_json_list(data, "requestheader-group-headers"),
        extra_prefixes=_json_list(data, "requestheader-extra-headers-prefix"),
    )


class FileRequestHeader:
    """A CA bundle file (followed as it is rewritten) with the allowed names of the settings.

    Header names are k8s.io/apiserver's defaults; a UID header is not trusted, as there.
    An absent file trusts nothing; a file that stops loading keeps the previous copy, but
    one that does not load at start is a configuration error (ValueError).
    """

    def __init__(self, path: str, allowed_names: frozenset[str]) -> None:
        self._path = path
        self._allowed_names = allowed_names
        self._state = file_state(path)
        self._config = self._read() if self._state is not None else None
        if self._state is None:
            self._absent()

    def current(self) -> RequestHeaderConfig | None:
        state = file_state(self._path)
        if state != self._state:
            self._state = state
            if state is None:
                self._absent()
                self._config = None
            else:
                try:
                    self._config = self._read()
                except ValueError as exc:
                    log.warning("keeping the previous front-proxy CA: %s", exc)
        return self._config

    def _absent(self) -> None:
        log.warning(
            "front-proxy CA %s is absent: client certificates are refused until it appears",
            self._path,
        )

    def _read(self) -> RequestHeaderConfig:
        try:
            with open(self._path, encoding="ascii") as f:
                pem = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read front-proxy CA {self._path}: {exc}") from exc
        config = RequestHeaderConfig(
            checked_ca(pem, self._path), f"file {self._path}", allowed_names=self._allowed_names
        )
        log.info("front-proxy trust from %s: %s", config.origin, config.describe())
        return config


def _failure_hint(exc: ApiError) -> str:
    if exc.status == 403:
        return (
            f"; bind Role {READER_ROLE} in {CONFIGMAP_NAMESPACE} to the exporter's service "
            "account (manifests/base/rbac.yaml), or set "
            "RUNTIME_INSIGHTS_REQUESTHEADER_CLIENT_CA_FILE"
        )
    if exc.status == 404:
        return (
            "; kube-apiserver publishes it at start: without it no front proxy is trusted "
            "unless RUNTIME_INSIGHTS_REQUESTHEADER_CLIENT_CA_FILE is set"
        )
    return ""


class ClusterRequestHeader:
    """ConfigMap kube-system/extension-apiserver-authentication, re-read periodically.

    `current()` is read by TLS handshakes and requests while the refresh task replaces the
    copy: one attribute, swapped whole. The copy is replaced only when its content
    changed, so an unchanged ConfigMap rebuilds nothing.
    """

    def __init__(
        self, client: KubeClient, *, timeout: float, refresh_seconds: float | None = None
    ) -> None:
        self._client = client
        self._refresh_seconds = REFRESH_SECONDS if refresh_seconds is None else refresh_seconds
        self._timeout = timeout
        self._config: RequestHeaderConfig | None = None
        self._read_at: float | None = None
        self._failure: str | None = None
        self._loop = Background("front-proxy-trust", self._run)

    def current(self) -> RequestHeaderConfig | None:
        return self._config

    async def refresh(self) -> bool:
        """Read the ConfigMap once; True when the copy in force is now current, False when
        the read failed and the last good copy (or none) stays in force."""
        path = api_path(
            "/api/v1/namespaces/{namespace}/configmaps/{name}",
            namespace=CONFIGMAP_NAMESPACE,
            name=CONFIGMAP_NAME,
        )
        try:
            found = await self._client.get_json(path, timeout=self._timeout)
            data = found.get("data") if isinstance(found, dict) else None
            config = config_from_configmap(data if isinstance(data, dict) else {})
        except ApiError as exc:
            return self._failed(f"HTTP {exc.status} {exc.reason}{_failure_hint(exc)}")
        except httpx.HTTPError as exc:
            return self._failed(f"cannot reach the API server: {exc}")
        except (OSError, ConfigException) as exc:  # a token file or exec plugin refreshing
            return self._failed(f"no usable credentials: {exc}")
        except ValueError as exc:
            return self._failed(str(exc))
        if config != self._config or self._read_at is None:
            if config is None:
                log.warning(
                    "%s has no requestheader-client-ca-file: front-proxy client certificates "
                    "are not trusted",
                    CONFIGMAP,
                )
            else:
                log.info("front-proxy trust from %s: %s", CONFIGMAP, config.describe())
            self._config = config
        elif self._failure is not None:
            log.info("%s is readable again; its front-proxy trust is unchanged", CONFIGMAP)
        self._read_at = time.time()
        self._failure = None
        return True

    def _failed(self, error: str) -> bool:
        if self._read_at is None:
            kept = "no copy yet, so front-proxy client certificates are refused"
        else:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._read_at))
            kept = f"keeping the copy read at {when}"
        level = logging.WARNING if error != self._failure else logging.DEBUG
        log.log(level, "cannot read %s (%s): %s", CONFIGMAP, error, kept)
        self._failure = error
        return False

    def start(self) -> None:
        """Read now and then periodically, in the background."""
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        failures = 0
        while True:
            if await self.refresh():
                failures, delay = 0, self._refresh_seconds
            else:
                failures += 1
                delay = min(self._refresh_seconds, RETRY_SECONDS * 2 ** (failures - 1))
            await asyncio.sleep(delay)
