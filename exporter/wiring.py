"""``runtime-insights exporter``: every part built once from the settings, run, stopped.

This is the only module that reads the settings (exporter/settings.py) and the only one
that builds parts: credentials for the API server are loaded once and one API client is
shared by the pod reflector, authentication, front-proxy trust and the peers; each part
gets plain values. Every part that runs or holds something open is on one ``Lifecycle``
list, started in order and stopped in reverse.

Everything that can be wrong before serving (a bad setting, no credentials for the API
server, an unreadable certificate, a busy port) ends the process with exit code 2 and
one line naming the cause, so a crash-looping pod shows the fix in its last log line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from dotenv import dotenv_values
from pydantic import AliasChoices, ValidationError
from pydantic_settings import SettingsError

from exporter.cluster.peers import KubePeerSource, PeerCA, PeerDirectory, Peers
from exporter.feeds.redis_feed import RedisFeed
from exporter.feeds.runtime import RuntimePods
from exporter.feeds.sse import PodEventSource
from exporter.http import insights
from exporter.http.app import build_app
from exporter.http.definitions import DefinitionError, load_definitions
from exporter.http.limits import limits_middleware
from exporter.http.metric_defs import MetricDef
from exporter.http.server import ConnectionLimits, GuardedSite
from exporter.kube.client import KubeClient, KubeConfigError, TokenAuth, load_configuration
from exporter.kube.reflector import PodReflector
from exporter.kube.selectors import parse_selector
from exporter.lifecycle import Lifecycle
from exporter.meter.billing import Billing
from exporter.meter.client import OpenMeterClient
from exporter.meter.compat import CompatError, map_environment
from exporter.meter.delivery import Sender
from exporter.meter.pipeline import Meter, token_source
from exporter.meter.sinks import FileSink, StdoutSink
from exporter.meter.spool import Spool, SpoolError
from exporter.node.source import ExtractorClient
from exporter.node.state import State
from exporter.security.auth import AuthApi, AuthPolicy, auth_middleware
from exporter.security.front_proxy import (
    ClusterRequestHeader,
    FileRequestHeader,
    RequestHeaderSource,
)
from exporter.security.tls import ServerContext, TLSConfigError, server_context
from exporter.settings import Settings
from exporter.settings_doc import unknown_variables

log = logging.getLogger("runtime_insights.exporter")
ENV_PREFIX = "RUNTIME_INSIGHTS_"


class StartupError(Exception):
    """The exporter cannot start; the message says what to fix."""


def describe_validation_error(
    err: ValidationError, flags: Iterable[str] = (), origin: dict[str, str] | None = None
) -> str:
    """One line naming every offending setting by its environment variable (and by its
    flag when one of ``flags``, the settings given on the command line, set it; by the
    OpenMeter collector's variable when the value came from one, ``origin``)."""
    by_flag = {setting: flag for flag, setting in FLAGS.items() if setting in set(flags)}
    parts: list[str] = []
    for e in err.errors():
        msg = str(e["msg"]).removeprefix("Value error, ")
        if not e["loc"]:
            for ours, theirs in (origin or {}).items():
                msg = re.sub(rf"\b{ours}\b", f"{theirs} (read as {ours})", msg)
            parts.append(msg)
            continue
        loc = str(e["loc"][0])
        name = loc.upper()
        env = name if name.startswith(ENV_PREFIX) else ENV_PREFIX + name
        choices = _alias_choices().get(loc)
        if choices:  # the seeds' names too: the user may have set either
            env = f"{choices[0]} (or {', '.join(choices[1:])})"
        if origin and env in origin:
            env = f"{origin[env]} (read as {env})"
        if loc in by_flag:
            env = f"--{by_flag[loc].replace('_', '-')} ({env})"
        if e["type"] == "extra_forbidden":
            msg = "unknown setting"
        parts.append(f"{env}: {msg}")
    return "invalid settings: " + "; ".join(parts)


def _alias_choices() -> dict[str, list[str]]:
    """Every name of a setting with several (a field's name or any alias) → all of them."""
    out: dict[str, list[str]] = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            choices = [str(c) for c in alias.choices]
            for key in (name, *choices):
                out[key] = choices
    return out


FLAGS = {
    "host": "host",
    "port": "port",
    "tls_cert_file": "tls_cert_file",
    "tls_key_file": "tls_key_file",
    "metric_definitions": "metric_definitions_file",
}
"""``runtime-insights exporter`` flags (runtime_insights/cli.py) → the setting each sets."""


def flag_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as flags; they win over the environment and the env file."""
    return {
        setting: value
        for flag, setting in FLAGS.items()
        if (value := getattr(args, flag, None)) is not None
    }


def _environment(env_file: str | None) -> dict[str, str]:
    """The process environment over the env file's, as pydantic-settings reads them."""
    merged: dict[str, str] = {}
    if env_file is not None:
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def load_settings(env_file: str | None, overrides: dict[str, str] | None = None) -> Settings:
    """The settings from the environment (and ``env_file``, and the flags' ``overrides``),
    with the variables of the OpenMeter collectors read as ours
    (exporter/meter/compat.py); logs which were."""
    if env_file is not None and not Path(env_file).is_file():
        raise StartupError(f"--env-file {env_file}: no such file")
    unknown = unknown_variables(os.environ)
    if unknown:
        raise StartupError("invalid settings: " + "; ".join(unknown))
    values: dict[str, Any] = dict(overrides or {})
    if env_file:
        values["_env_file"] = env_file
    try:
        mapped = map_environment(_environment(env_file))
    except CompatError as e:
        raise StartupError(f"invalid settings: {e}") from None
    line = mapped.describe()
    if line is not None:
        log.info("%s", line)
    for key, value in mapped.values.items():
        values.setdefault(key.removeprefix(ENV_PREFIX).lower(), value)
    try:
        return Settings(**values)
    except ValidationError as e:
        raise StartupError(describe_validation_error(e, values, mapped.origin)) from None
    except SettingsError as e:
        # raised before validation when a list setting is not JSON
        field = re.search(r'field "(\w+)"', str(e))
        name = ENV_PREFIX + field.group(1).upper() if field else "a setting"
        raise StartupError(
            f'invalid settings: {name}: not valid JSON (lists are written as ["a", "b"])'
        ) from None


def kube_client(settings: Settings) -> KubeClient | None:
    """The one API client, when any part needs the API server; StartupError without
    usable credentials, naming what needed them."""
    if not settings.needs_api_server:
        return None
    try:
        return KubeClient(load_configuration(settings.kubeconfig))
    except KubeConfigError as e:
        needs = []
        if settings.kube_enabled:
            needs.append("pod metadata (off: RUNTIME_INSIGHTS_KUBE_ENABLED=false)")
        if settings.auth_enabled:
            trust = (
                ""
                if settings.requestheader_client_ca_file
                else " and front-proxy trust from ConfigMap "
                "kube-system/extension-apiserver-authentication (or set "
                "RUNTIME_INSIGHTS_REQUESTHEADER_CLIENT_CA_FILE)"
            )
            needs.append(f"authentication (off: RUNTIME_INSIGHTS_AUTH_ENABLED=false){trust}")
        if settings.peers_enabled:
            needs.append("peers (RUNTIME_INSIGHTS_PEERS_ENABLED)")
        raise StartupError(
            f"{e}; needed for {', '.join(needs)}: set RUNTIME_INSIGHTS_KUBECONFIG or turn those off"
        ) from None


def front_proxy(
    settings: Settings, kube: KubeClient | None
) -> FileRequestHeader | ClusterRequestHeader | None:
    """Where the aggregation layer's client certificates are trusted from: the CA file when
    set, else the cluster's ConfigMap (with authentication on), else nowhere."""
    if settings.requestheader_client_ca_file:
        try:
            return FileRequestHeader(
                settings.requestheader_client_ca_file,
                frozenset(settings.requestheader_allowed_names),
            )
        except ValueError as e:
            raise StartupError(f"RUNTIME_INSIGHTS_REQUESTHEADER_CLIENT_CA_FILE: {e}") from None
    if not settings.auth_enabled or kube is None:
        return None
    return ClusterRequestHeader(kube, timeout=settings.auth_review_timeout_seconds)


def server_tls(settings: Settings, trusted: RequestHeaderSource | None) -> ServerContext | None:
    """The serving context, or None for plain HTTP (no certificate configured)."""
    if not (settings.tls_cert_file and settings.tls_key_file):
        return None
    try:
        return server_context(settings.tls_cert_file, settings.tls_key_file, trusted)
    except TLSConfigError as e:
        raise StartupError(str(e)) from None


def auth_policy(settings: Settings) -> AuthPolicy:
    return AuthPolicy(
        cache_ttl_seconds=settings.auth_cache_ttl_seconds,
        cache_negative_ttl_seconds=settings.auth_cache_negative_ttl_seconds,
        cache_max_entries=settings.auth_cache_max_entries,
        outage_grace_seconds=settings.auth_outage_grace_seconds,
    )


def auth_api(settings: Settings, kube: KubeClient) -> AuthApi:
    return AuthApi(
        kube,
        timeout=settings.auth_review_timeout_seconds,
        audiences=settings.auth_token_audiences,
    )


def peers(settings: Settings, kube: KubeClient | None) -> Peers | None:
    if not settings.peers_enabled or kube is None:
        return None
    # the settings' validator made sure these are set
    assert settings.node_name and settings.peer_namespace
    assert settings.peer_ca_file and settings.peer_server_name
    source = KubePeerSource(
        kube,
        settings.peer_namespace,
        settings.peer_selector,
        settings.node_name,
        settings.peer_timeout_seconds,
    )
    return Peers(
        PeerDirectory(source),
        port=settings.peer_port,
        ca=PeerCA(settings.peer_ca_file),
        server_name=settings.peer_server_name,
        auth=TokenAuth(kube.configuration),
        timeout=settings.peer_timeout_seconds,
        fanout_timeout=settings.peer_fanout_timeout_seconds,
        concurrency=settings.peer_concurrency,
    )


def billing(settings: Settings) -> Billing:
    """What is billed and as what (the settings' validator checked the selector)."""
    return Billing(
        mode=settings.meter_mode,
        source=settings.meter_source,
        event_type=settings.meter_event_type,
        namespaces=settings.namespaces,
        selector=parse_selector(settings.meter_label_selector),
        opt_in_label=settings.meter_opt_in_label,
        per=settings.meter_events,
        metadata_wait_seconds=settings.meter_metadata_wait_seconds,
    )


def sink(settings: Settings) -> Sender:
    """Where events go: OpenMeter, a JSON-lines file (the default without a URL), stdout."""
    chosen = settings.sink
    if chosen == "stdout":
        return StdoutSink()
    if chosen == "file":
        path = settings.meter_file or str(Path(settings.meter_spool_dir) / "events.jsonl")
        return FileSink(path, settings.meter_file_max_bytes)
    assert settings.openmeter_url  # the settings' validator made sure
    secret = settings.openmeter_token
    return OpenMeterClient(
        settings.openmeter_url,
        token=token_source(
            secret.get_secret_value() if secret is not None else None,
            settings.openmeter_token_file,
        ),
        api=settings.meter_ingest_api,
        timeout_seconds=settings.openmeter_timeout_seconds,
        max_attempts=settings.meter_max_attempts,
    )


def meter(settings: Settings) -> Meter | None:
    """None when metering is off (no OpenMeter URL or token, METER_ENABLED unset)."""
    if not settings.metering:
        return None
    try:
        spool = Spool(settings.meter_spool_dir, settings.meter_spool_max_bytes)
    except SpoolError as e:
        raise StartupError(f"RUNTIME_INSIGHTS_METER_SPOOL_DIR: {e}") from None
    return Meter(
        spool,
        sink(settings),
        interval_seconds=settings.meter_interval_seconds,
        batch_size=settings.meter_batch_size,
        retry_seconds=min(settings.meter_interval_seconds, 30.0),
        billing=billing(settings),
        batch_period_seconds=settings.meter_batch_period_seconds,
        metadata_expected=settings.kube_enabled,
        park_after_seconds=settings.meter_park_after_seconds,
        in_flight=settings.meter_max_in_flight,
        debug=settings.meter_debug,
    )


def user_metrics(settings: Settings) -> list[MetricDef]:
    """The user's metric definitions, checked; StartupError names the bad one."""
    if settings.metric_definitions_file is None:
        return []
    try:
        return load_definitions(settings.metric_definitions_file)
    except DefinitionError as e:
        raise StartupError(
            f"RUNTIME_INSIGHTS_METRIC_DEFINITIONS_FILE {settings.metric_definitions_file}: {e}"
        ) from None


def redis_feed(settings: Settings, reflector: PodReflector | None) -> RedisFeed | None:
    """None when the feed is off (no Redis host); the password file is read once, here."""
    if settings.redis_host is None or reflector is None:
        return None
    assert settings.node_name  # the settings' validator made sure
    password = None
    if settings.redis_password_file:
        try:
            password = Path(settings.redis_password_file).read_text().strip()
        except OSError as e:
            raise StartupError(f"RUNTIME_INSIGHTS_REDIS_PASSWORD_FILE: {e}") from None
    return RedisFeed(
        reflector,
        settings.node_name,
        host=settings.redis_host,
        port=settings.redis_port,
        password=password,
        events_channel=settings.redis_events_channel,
        key_prefix=settings.redis_key_prefix,
        backlog=settings.redis_backlog,
        timeout_seconds=settings.redis_timeout_seconds,
        refresh_seconds=settings.redis_refresh_seconds,
    )


@dataclass
class Exporter:
    """Every part, built; ``lifecycle`` runs them, ``app`` and ``tls`` are served by
    ``runner`` (whose ``addresses`` say where, once started)."""

    app: web.Application
    tls: ServerContext | None
    lifecycle: Lifecycle
    runner: web.AppRunner


def build(settings: Settings, parts: Lifecycle) -> Exporter:
    """Every part from the settings, once, each put on ``parts``; StartupError names what
    to fix (the caller stops ``parts``, which closes whatever was built before)."""
    defined = user_metrics(settings)
    kube = kube_client(settings)
    if kube is not None:
        parts.add("API client", kube.aclose)
    client = ExtractorClient(settings.extractor_socket, settings.extractor_timeout_seconds)
    parts.add("extractor client", client.aclose)
    trusted = front_proxy(settings, kube)
    tls = server_tls(settings, trusted)
    if isinstance(trusted, ClusterRequestHeader):
        parts.add("front-proxy trust", trusted.stop, trusted.start)
    fan_out = peers(settings, kube)
    if fan_out is not None:
        parts.add("peers", fan_out.aclose)
    reflector = None
    if settings.kube_enabled and kube is not None:
        assert settings.node_name  # the settings' validator made sure
        reflector = PodReflector(
            kube,
            settings.node_name,
            watch_timeout_seconds=settings.watch_timeout_seconds,
            read_timeout_seconds=settings.api_read_timeout_seconds,
        )
    usage = meter(settings)
    feed = redis_feed(settings, reflector)
    state = State(client.fetch, settings.poll_interval_seconds)
    events: PodEventSource
    if reflector is not None:
        events = reflector
    else:  # no API server: the lifecycle feed follows the snapshots, with runtime names
        events = RuntimePods()
        state.observers.append(events.observe)
    if usage is not None:
        lookup = reflector.get_by_uid if reflector is not None else (lambda uid: None)
        state.observers.append(lambda snapshot: usage.observe(snapshot, lookup))
    middlewares: list[Middleware] = []
    if settings.auth_enabled and kube is not None:
        middlewares.append(auth_middleware(auth_policy(settings), auth_api(settings, kube)))
    middlewares.append(
        limits_middleware(
            settings.max_request_bytes,
            settings.request_timeout_seconds,
            route_max_bytes=insights.BODY_LIMITS,
        )
    )
    app = build_app(
        state,
        reflector,
        events=events,
        stale_after_seconds=settings.stale_after_seconds,
        middlewares=middlewares,
        peers=fan_out,
        meter=usage,
        gather_max_age_seconds=settings.gather_max_age_seconds,
        collectors=[client.collector(), *([feed.collector()] if feed is not None else [])],
        kube=kube,
        user_metrics=defined,
        api_timeout=settings.peer_timeout_seconds,
        max_event_streams=settings.max_event_streams,
        max_event_streams_per_client=settings.max_event_streams_per_client,
    )
    # handler_cancellation: a handler whose client has gone is cancelled at once, so an
    # event stream's slot is free again without waiting for its next heartbeat
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    limits = ConnectionLimits(
        header_timeout_seconds=settings.header_timeout_seconds,
        idle_timeout_seconds=settings.idle_timeout_seconds,
        max_connections_per_client=settings.max_connections_per_client,
    )

    async def listen() -> None:
        await runner.setup()
        site = GuardedSite(runner, settings.host, settings.port, limits=limits, ssl_context=tls)
        try:
            await site.start()
        except OSError as e:
            raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {e}") from None
        scheme = "https" if tls else "http"
        for address in runner.addresses:
            log.info("listening on %s://%s:%s", scheme, address[0], address[1])

    parts.add("HTTP server", runner.cleanup, listen)
    if feed is not None:  # subscribed before the reflector lists, so every pod is announced
        parts.add("Redis feed", feed.stop, feed.start)
    if reflector is not None:
        parts.add("pod reflector", reflector.stop, reflector.start)
    parts.add("snapshot polling", state.stop, state.start)
    if usage is not None:
        parts.add("meter", usage.stop, usage.start)
    return Exporter(app, tls, parts, runner)


def describe(settings: Settings) -> str:
    """What this exporter runs with, in one line for the start of its log."""
    if settings.kube_enabled:
        where = settings.kubeconfig or "in-cluster service account"
        api = f"pod metadata from the API server (node {settings.node_name}, {where})"
    else:
        api = "no API server (runtime names; RUNTIME_INSIGHTS_KUBE_ENABLED=false)"
    if not settings.metering:
        metering = "metering off (no OpenMeter URL or token, no RUNTIME_INSIGHTS_METER_SINK)"
    else:
        to = {
            "openmeter": settings.openmeter_url or "OpenMeter Cloud",
            "file": f"file {settings.meter_file or Path(settings.meter_spool_dir, 'events.jsonl')}",
            "stdout": "standard output",
        }[settings.sink]
        metering = f"metering on: every {settings.meter_interval_seconds:g}s to {to}"
    tls = "TLS on" if settings.tls_cert_file else "plain HTTP"
    redis = (
        f"Redis feed to {settings.redis_host}:{settings.redis_port}"
        if settings.redis_host
        else "Redis feed off"
    )
    return (
        f"extractor socket {settings.extractor_socket} "
        f"(poll every {settings.poll_interval_seconds:g}s); "
        f"{settings.host}:{settings.port}, {tls}; "
        f"auth {'on' if settings.auth_enabled else 'off'}; {api}; "
        f"peers {'on' if settings.peers_enabled else 'off'}; {metering}; {redis}"
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; StartupError if the server cannot come up."""
    parts = Lifecycle()
    try:
        build(settings, parts)
        # after the build: a configuration error stays the one line on stderr
        log.info("exporter starting: %s", describe(settings))
        await parts.start()
        await stop.wait()
        log.info("stopping")
    finally:
        await parts.stop()


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def run_exporter(args: argparse.Namespace) -> int:
    """Exit 0 after a clean stop; 2 with one line on stderr naming what to fix.
    (The command line sets up logging: runtime_insights/logs.py.)"""
    try:
        settings = load_settings(args.env_file, flag_overrides(args))
        asyncio.run(_main(settings))
    except StartupError as e:
        print(f"runtime-insights exporter: {e}", file=sys.stderr)
        return 2
    return 0
