"""Exporter configuration from the environment (prefix ``RUNTIME_INSIGHTS_``).

Bad values stop the process at start with a message naming the setting: a node agent
that silently falls back to defaults is worse than one that does not start.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from extractor.contract import DEFAULT_SOCKET


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNTIME_INSIGHTS_", extra="forbid")

    # the extractor
    extractor_socket: str = DEFAULT_SOCKET
    poll_interval_seconds: float = Field(default=10.0, gt=0)
    extractor_timeout_seconds: float = Field(default=30.0, gt=0)

    # listening
    host: str = "0.0.0.0"
    port: int = Field(default=8443, ge=0, le=65535)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    max_request_bytes: int = Field(default=64 * 1024, gt=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)

    # authentication and authorization (on in the manifests, off for local use)
    auth_enabled: bool = False
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
    auth_cache_max_entries: int = Field(default=4096, gt=0)
    auth_outage_grace_seconds: float = Field(
        default=300.0,
        ge=0,
        description="while the API server cannot be reached, an allow decision is honoured "
        "this long past its expiry (0: fail closed at once)",
    )
    auth_token_audiences: list[str] = Field(
        default_factory=list, description="TokenReview audiences; empty = the API server's"
    )
    auth_review_timeout_seconds: float = Field(default=5.0, gt=0)

    # the Kubernetes API
    kube_enabled: bool = True
    kubeconfig: str | None = None
    node_name: str | None = Field(default=None, description="this node; from the downward API")
    watch_timeout_seconds: int = Field(default=300, gt=0)
    api_read_timeout_seconds: float = Field(default=330.0, gt=0)

    # peer exporters: the custom metrics API answers for every node, not just this one
    peers_enabled: bool = False
    peer_namespace: str | None = Field(
        default=None, description="the DaemonSet's namespace; from the downward API"
    )
    peer_selector: str = "app.kubernetes.io/name=runtime-insights"
    peer_port: int = Field(default=8443, gt=0, le=65535)
    peer_ca_file: str | None = Field(default=None, description="CA of the peers' serving certs")
    peer_server_name: str | None = Field(
        default=None, description="name in the peers' serving certs: the Service DNS name"
    )
    peer_timeout_seconds: float = Field(default=3.0, gt=0)

    # OpenMeter usage events (off unless openmeter_url is set); the seeds' OPENMETER_URL and
    # OPENMETER_TOKEN keep working as aliases
    openmeter_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RUNTIME_INSIGHTS_OPENMETER_URL", "OPENMETER_URL"),
    )
    openmeter_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RUNTIME_INSIGHTS_OPENMETER_TOKEN", "OPENMETER_TOKEN"),
    )
    openmeter_token_file: str | None = Field(
        default=None, description="re-read before every request, so a rotated Secret is picked up"
    )
    openmeter_timeout_seconds: float = Field(default=10.0, gt=0)
    meter_source: str = Field(default="kubernetes-api", min_length=1)
    meter_event_type: str = Field(default="kube-pod-exec-time", min_length=1)
    meter_interval_seconds: float = Field(default=60.0, gt=0)
    meter_batch_size: int = Field(default=100, ge=1, le=1000)
    meter_max_attempts: int = Field(default=5, ge=1, description="per batch and delivery round")
    meter_spool_dir: str = "/var/lib/runtime-insights/meter"
    meter_spool_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError(
                "RUNTIME_INSIGHTS_TLS_CERT_FILE and RUNTIME_INSIGHTS_TLS_KEY_FILE go together"
            )
        return self

    @model_validator(mode="after")
    def _openmeter(self) -> Settings:
        url = self.openmeter_url
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(
                f"RUNTIME_INSIGHTS_OPENMETER_URL (or OPENMETER_URL): {url!r} is not an http(s) URL "
                "(e.g. https://openmeter.cloud)"
            )
        if self.openmeter_token is not None and self.openmeter_token_file is not None:
            raise ValueError(
                "RUNTIME_INSIGHTS_OPENMETER_TOKEN and RUNTIME_INSIGHTS_OPENMETER_TOKEN_FILE "
                "exclude each other"
            )
        return self
