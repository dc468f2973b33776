"""Exporter configuration from the environment (prefix ``RUNTIME_INSIGHTS_``).

One flat model, grouped by the part each setting configures; every check that spans
settings is a validator here, so a bad combination stops the process at start with a
message naming the variables. The wiring (exporter/wiring.py) hands each part plain
values from here; no part reads the settings itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from exporter.kube.selectors import SelectorError, parse_selector
from extractor.contract import DEFAULT_SOCKET


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNTIME_INSIGHTS_", extra="forbid")

    # the extractor
    extractor_socket: str = Field(default=DEFAULT_SOCKET, description="the extractor's unix socket")
    poll_interval_seconds: float = Field(
        default=10.0, gt=0, description="how often a snapshot is taken"
    )
    extractor_timeout_seconds: float = Field(
        default=30.0, gt=0, description="how long one snapshot may take"
    )
    gather_max_age_seconds: float = Field(
        default=1.0,
        ge=0,
        description="a /gather_runtime_info request for every container, or for one the last "
        "snapshot does not have, is answered from a pass at most this old (shared with "
        "concurrent requests and the poll); 0 answers from the last poll",
    )

    # listening
    host: str = Field(default="0.0.0.0", description="address to listen on")
    port: int = Field(
        default=8443, ge=0, le=65535, description="port to listen on (0: any free port)"
    )
    tls_cert_file: str | None = Field(
        default=None,
        description="serving certificate (unset: plain HTTP); re-read when the file changes",
    )
    tls_key_file: str | None = Field(
        default=None, description="the serving certificate's key; re-read when the file changes"
    )
    max_request_bytes: int = Field(
        default=64 * 1024, gt=0, description="larger request bodies get 413"
    )
    request_timeout_seconds: float = Field(
        default=30.0, gt=0, description="a request taking longer gets 504 (event streams excepted)"
    )

    # slow, idle and greedy clients (exporter/http/server.py, exporter/feeds/sse.py)
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a request's headers must be complete this soon after the connection "
        "opened (a TLS handshake gets as long again) or after the request's first byte",
    )
    idle_timeout_seconds: float = Field(
        default=120.0, gt=0, description="a keep-alive connection with no request is closed"
    )
    max_connections_per_client: int = Field(
        default=64, gt=0, description="open connections per remote address; beyond: 503"
    )
    max_event_streams: int = Field(default=64, gt=0, description="open /v1/events streams")
    max_event_streams_per_client: int = Field(
        default=8, gt=0, description="open /v1/events streams per remote address"
    )

    # authentication and authorization (on in the manifests, off for local use)
    auth_enabled: bool = Field(
        default=False,
        description="TokenReview + SubjectAccessReview for every request but /healthz, /readyz, "
        "/livez (true in the manifests)",
    )
    auth_cache_ttl_seconds: float = Field(
        default=10.0, ge=0, description="how long an allow is remembered (k8s.io/apiserver: 10s)"
    )
    requestheader_client_ca_file: str | None = Field(
        default=None,
        description="front-proxy CA bundle, for clusters whose ConfigMap "
        "kube-system/extension-apiserver-authentication cannot be read; when set it wins "
        "(as k8s.io/apiserver's --requestheader-client-ca-file): the ConfigMap is not read, "
        "allowed names come from REQUESTHEADER_ALLOWED_NAMES and the headers are "
        "X-Remote-User, X-Remote-Group and X-Remote-Extra-*",
    )
    requestheader_allowed_names: list[str] = Field(
        default_factory=list,
        description="CNs allowed on the front-proxy certificate with REQUESTHEADER_CLIENT_CA_FILE "
        "(empty = any); otherwise the ConfigMap's requestheader-allowed-names apply",
    )
    auth_cache_negative_ttl_seconds: float = Field(
        default=10.0, ge=0, description="how long a 401/403 is remembered (k8s.io/apiserver: 10s)"
    )
    auth_cache_max_entries: int = Field(
        default=4096, gt=0, description="authentication decisions kept"
    )
    auth_outage_grace_seconds: float = Field(
        default=300.0,
        ge=0,
        description="while the API server cannot be reached, an allow decision is honoured "
        "this long past its expiry (0: fail closed at once)",
    )
    auth_token_audiences: list[str] = Field(
        default_factory=list, description="TokenReview audiences; empty = the API server's"
    )
    auth_review_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="timeout of one review; an unreachable API fails closed (503)",
    )

    # the Kubernetes API
    kube_enabled: bool = Field(
        default=True,
        description="watch this node's pods on the API server (false: runtime names only)",
    )
    kubeconfig: str | None = Field(
        default=None, description="a kubeconfig file instead of the in-cluster service account"
    )
    node_name: str | None = Field(
        default=None,
        description="this node, from the downward API spec.nodeName "
        "(required with RUNTIME_INSIGHTS_KUBE_ENABLED=true)",
    )
    watch_timeout_seconds: int = Field(
        default=300, gt=0, description="server-side timeout of one pod watch"
    )
    api_read_timeout_seconds: float = Field(
        default=330.0, gt=0, description="client-side read timeout (catches half-open connections)"
    )

    # peer exporters: the custom metrics API answers for every node, not just this one
    peers_enabled: bool = Field(
        default=False,
        description="custom metrics answer for every node by asking the other exporters (true in "
        "the manifests)",
    )
    peer_namespace: str | None = Field(
        default=None, description="the DaemonSet's namespace; from the downward API"
    )
    peer_selector: str = Field(
        default="app.kubernetes.io/name=runtime-insights",
        description="label selector of the DaemonSet's pods (the peers)",
    )
    peer_port: int = Field(default=8443, gt=0, le=65535, description="the peers' port")
    peer_ca_file: str | None = Field(default=None, description="CA of the peers' serving certs")
    peer_server_name: str | None = Field(
        default=None, description="name in the peers' serving certs: the Service DNS name"
    )
    peer_timeout_seconds: float = Field(default=3.0, gt=0, description="deadline per peer")
    peer_fanout_timeout_seconds: float = Field(
        default=10.0, gt=0, description="the whole fan-out of one request ends by then"
    )
    peer_concurrency: int = Field(default=64, ge=1, le=1024, description="peers asked at once")

    # usage events: off unless an OpenMeter URL or token is set, or METER_ENABLED; the
    # collectors' own variable names are read too (exporter/meter/compat.py)
    openmeter_url: str | None = Field(
        default=None, description="OpenMeter base URL (unset with a token: https://openmeter.cloud)"
    )
    openmeter_token: SecretStr | None = Field(
        default=None, description="OpenMeter API token (Bearer)"
    )
    openmeter_token_file: str | None = Field(
        default=None,
        description="read the token from this file before every request (a rotated Secret "
        "needs no restart); a missing file means no token",
    )
    openmeter_timeout_seconds: float = Field(
        default=10.0, gt=0, description="timeout of one ingest request"
    )
    meter_enabled: bool | None = Field(
        default=None,
        description="make usage events (unset: on when an OpenMeter URL or token is set; "
        "true without a URL: to a local file)",
    )
    meter_sink: Literal["openmeter", "file", "stdout"] | None = Field(
        default=None,
        description="where events go: openmeter (the default with a URL), file (JSON lines, "
        "the default without one) or stdout",
    )
    meter_file: str | None = Field(
        default=None,
        description="the file sink's file (unset: <RUNTIME_INSIGHTS_METER_SPOOL_DIR>/events.jsonl)",
    )
    meter_file_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=4096,
        description="the file sink's file is rotated to <file>.1 at this size",
    )
    meter_ingest_api: Literal["v1", "v3"] = Field(
        default="v1",
        description="v1 (/api/v1/events) or v3 (/api/v3/openmeter/events, Kong Konnect)",
    )
    meter_mode: Literal["collector", "watcher"] = Field(
        default="collector",
        description="collector or watcher: whose conventions the events follow (README: Usage "
        "events)",
    )
    meter_source: str = Field(
        default="kubernetes-api", min_length=1, description="CloudEvents source of usage events"
    )
    meter_event_type: str = Field(
        default="kube-pod-exec-time",
        min_length=1,
        description="CloudEvents type in collector mode (what your meters match)",
    )
    meter_namespaces: str = Field(
        default="", description="namespaces billed, comma-separated (empty: every namespace)"
    )
    meter_label_selector: str = Field(
        default="", description="pods billed, Kubernetes selector syntax (empty: every pod)"
    )
    meter_opt_in_label: str | None = Field(
        default=None, description="bill only pods carrying this label (any value)"
    )
    meter_events: Literal["pod", "container"] = Field(
        default="pod", description="one event per pod or per container and window"
    )
    meter_interval_seconds: float = Field(
        default=60.0, gt=0, description="length of a metering window"
    )
    meter_batch_size: int = Field(
        default=100, ge=1, le=1000, description="events per ingest request (at most 1000)"
    )
    meter_batch_period_seconds: float = Field(
        default=0.0,
        ge=0,
        description="wait this long after a window closes for more events before sending",
    )
    meter_max_attempts: int = Field(
        default=5, ge=1, description="attempts per batch in one delivery round"
    )
    meter_max_in_flight: int = Field(default=4, ge=1, le=64, description="batches sent at once")
    meter_park_after_seconds: float = Field(
        default=600.0,
        ge=0,
        description="an event OpenMeter keeps refusing is parked after this long (and three "
        "refusals)",
    )
    meter_metadata_wait_seconds: float = Field(
        default=300.0,
        ge=0,
        description="a new pod's window is held open this long for its metadata from the API "
        "server",
    )
    meter_debug: bool = Field(default=False, description="log every event")
    meter_spool_dir: str = Field(
        default="/var/lib/runtime-insights/meter",
        description="the meter's durable state (a hostPath in the manifests)",
    )
    meter_spool_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=4096,
        description="undelivered events kept at most; when full, windows stay open (nothing is "
        "dropped)",
    )

    # the lifecycle feed over Redis (off unless a host is set): telemd's galileo/events and
    # our container events; telemd-kubernetes-adapter's own variable names keep working
    redis_host: str | None = Field(
        description="Redis host of the lifecycle feed (unset: no Redis feed)",
        default=None,
        validation_alias=AliasChoices(
            "RUNTIME_INSIGHTS_REDIS_HOST", "telemd_kubernetes_adapter_redis_host"
        ),
    )
    redis_port: int = Field(
        description="Redis port",
        default=6379,
        gt=0,
        le=65535,
        validation_alias=AliasChoices(
            "RUNTIME_INSIGHTS_REDIS_PORT", "telemd_kubernetes_adapter_redis_port"
        ),
    )
    redis_password_file: str | None = Field(
        default=None, description="read at start; Redis AUTH with this password"
    )
    redis_events_channel: str = Field(
        default="runtime-insights/events",
        min_length=1,
        description="Redis channel of our container events",
    )
    redis_key_prefix: str = Field(
        default="runtime-insights",
        min_length=1,
        description="prefix of the Redis keys holding the current set",
    )
    redis_backlog: int = Field(
        default=10_000, ge=1, description="messages kept while Redis is away; oldest dropped"
    )
    redis_timeout_seconds: float = Field(
        default=5.0, gt=0, description="timeout of one Redis command or connection attempt"
    )
    redis_refresh_seconds: float = Field(
        default=60.0, gt=0, description="how often the current set in Redis is rewritten"
    )

    # metrics users define (exporter/http/definitions.py): a YAML/JSON file, checked at start
    metric_definitions_file: str | None = Field(
        default=None, description="a YAML/JSON file of metrics users define, checked at start"
    )

    @property
    def metering(self) -> bool:
        """Whether usage events are made at all."""
        if self.meter_enabled is not None:
            return self.meter_enabled
        return bool(self.openmeter_url or self.openmeter_token or self.meter_sink)

    @property
    def sink(self) -> Literal["openmeter", "file", "stdout"]:
        if self.meter_sink is not None:
            return self.meter_sink
        return "openmeter" if self.openmeter_url else "file"

    @property
    def namespaces(self) -> frozenset[str]:
        names = {n.strip() for n in self.meter_namespaces.split(",")} - {"", "*"}
        return frozenset(names)

    @property
    def needs_api_server(self) -> bool:
        """Whether any part calls the API server (then credentials are loaded, once)."""
        return self.kube_enabled or self.auth_enabled or self.peers_enabled

    @property
    def stale_after_seconds(self) -> float:
        """A snapshot older than this means polling is stuck: three missed polls."""
        return 3 * self.poll_interval_seconds + self.extractor_timeout_seconds

    @model_validator(mode="after")
    def _combinations(self) -> Settings:
        """Every check that spans settings; all problems are named at once."""
        problems = [p for check in _CHECKS if (p := check(self))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _node_name(s: Settings) -> str | None:
    if s.kube_enabled and not s.node_name:
        return (
            "RUNTIME_INSIGHTS_NODE_NAME is required when RUNTIME_INSIGHTS_KUBE_ENABLED is "
            "true (set it from the downward API, spec.nodeName)"
        )
    return None


def _peers(s: Settings) -> str | None:
    if not s.peers_enabled:
        return None
    missing = [
        f"RUNTIME_INSIGHTS_{name}"
        for name, value in (
            ("NODE_NAME", s.node_name),
            ("PEER_NAMESPACE", s.peer_namespace),
            ("PEER_CA_FILE", s.peer_ca_file),
            ("PEER_SERVER_NAME", s.peer_server_name),
            ("TLS_CERT_FILE", s.tls_cert_file),
        )
        if not value
    ]
    if not s.kube_enabled:
        missing.append("RUNTIME_INSIGHTS_KUBE_ENABLED=true")
    if missing:
        return (
            f"RUNTIME_INSIGHTS_PEERS_ENABLED=true needs {', '.join(missing)} "
            "(peers are found through the API and called over TLS only)"
        )
    return None


def _tls_pair(s: Settings) -> str | None:
    if bool(s.tls_cert_file) != bool(s.tls_key_file):
        return "RUNTIME_INSIGHTS_TLS_CERT_FILE and RUNTIME_INSIGHTS_TLS_KEY_FILE go together"
    return None


def _openmeter(s: Settings) -> str | None:
    url = s.openmeter_url
    if url is not None and not url.startswith(("http://", "https://")):
        return (
            f"RUNTIME_INSIGHTS_OPENMETER_URL (or OPENMETER_URL): {url!r} is not an http(s) URL "
            "(e.g. https://openmeter.cloud)"
        )
    if s.openmeter_token is not None and s.openmeter_token_file is not None:
        return (
            "RUNTIME_INSIGHTS_OPENMETER_TOKEN and RUNTIME_INSIGHTS_OPENMETER_TOKEN_FILE "
            "exclude each other"
        )
    if s.meter_sink == "openmeter" and not url:
        return "RUNTIME_INSIGHTS_METER_SINK=openmeter needs RUNTIME_INSIGHTS_OPENMETER_URL"
    return None


def _redis(s: Settings) -> str | None:
    if s.redis_host is not None and not s.kube_enabled:
        return (
            "RUNTIME_INSIGHTS_REDIS_HOST (or telemd_kubernetes_adapter_redis_host) needs "
            "RUNTIME_INSIGHTS_KUBE_ENABLED=true: the feed announces the pods the API server "
            "reports"
        )
    return None


_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _billing(s: Settings) -> str | None:
    """What is billed: a selector in the Kubernetes grammar, label keys and namespace
    names that can exist."""
    problems = []
    try:
        parse_selector(s.meter_label_selector)
    except SelectorError as e:
        problems.append(f"RUNTIME_INSIGHTS_METER_LABEL_SELECTOR: {e}")
    if s.meter_opt_in_label is not None and not _LABEL_KEY.match(s.meter_opt_in_label):
        problems.append(
            f"RUNTIME_INSIGHTS_METER_OPT_IN_LABEL: {s.meter_opt_in_label!r} is not a label key"
        )
    bad = sorted(n for n in s.namespaces if not _NAMESPACE.match(n))
    if bad:
        problems.append(f"RUNTIME_INSIGHTS_METER_NAMESPACES: {', '.join(bad)} not namespace names")
    return "; ".join(problems) or None


_CHECKS: tuple[Callable[[Settings], str | None], ...] = (
    _node_name,
    _peers,
    _tls_pair,
    _openmeter,
    _redis,
    _billing,
)
