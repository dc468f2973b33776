"""``runtime-insights exporter``: settings, background loops, the HTTP server, shutdown.

Everything that can be wrong before serving (a bad setting, no credentials for the API
server, an unreadable certificate, a busy port) ends the process with exit code 2 and
one line naming the cause, so a crash-looping pod shows the fix in its last log line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import ValidationError
from pydantic_settings import SettingsError

from exporter.cluster.peers import PeerConfigError, Peers
from exporter.feeds import sse as events
from exporter.http.app import build_app
from exporter.http.limits import limits_middleware
from exporter.kube.config import KubeConfigError, load_api_client
from exporter.kube.reflector import PodReflector
from exporter.meter.pipeline import Meter
from exporter.meter.spool import SpoolError
from exporter.node.source import ExtractorClient
from exporter.node.state import State
from exporter.security.auth import AuthApi, auth_middleware
from exporter.security.tls import TLSConfigError, ssl_context
from exporter.settings import Settings

log = logging.getLogger("runtime_insights.exporter")
ENV_PREFIX = "RUNTIME_INSIGHTS_"


class StartupError(Exception):
    """The exporter cannot start; the message says what to fix."""


def describe_validation_error(err: ValidationError) -> str:
    """One line naming every offending setting by its environment variable."""
    parts: list[str] = []
    for e in err.errors():
        msg = str(e["msg"]).removeprefix("Value error, ")
        if not e["loc"]:
            parts.append(msg)
            continue
        name = str(e["loc"][0]).upper()
        env = name if name.startswith(ENV_PREFIX) else ENV_PREFIX + name
        if e["type"] == "extra_forbidden":
            msg = "unknown setting"
        parts.append(f"{env}: {msg}")
    return "invalid settings: " + "; ".join(parts)


def load_settings(env_file: str | None) -> Settings:
    if env_file is not None and not Path(env_file).is_file():
        raise StartupError(f"--env-file {env_file}: no such file")
    try:
        return Settings(_env_file=env_file) if env_file else Settings()
    except ValidationError as e:
        raise StartupError(describe_validation_error(e)) from None
    except SettingsError as e:
        # raised before validation when a list setting is not JSON
        field = re.search(r'field "(\w+)"', str(e))
        name = ENV_PREFIX + field.group(1).upper() if field else "a setting"
        raise StartupError(
            f'invalid settings: {name}: not valid JSON (lists are written as ["a", "b"])'
        ) from None


def _reflector(settings: Settings) -> PodReflector | None:
    if not settings.kube_enabled:
        return None
    if not settings.node_name:
        raise StartupError(
            "RUNTIME_INSIGHTS_NODE_NAME is required when RUNTIME_INSIGHTS_KUBE_ENABLED is true "
            "(set it from the downward API, spec.nodeName)"
        )
    try:
        api_client = load_api_client(settings.kubeconfig)
    except KubeConfigError as e:
        raise StartupError(
            f"{e}; set RUNTIME_INSIGHTS_KUBECONFIG or disable with "
            "RUNTIME_INSIGHTS_KUBE_ENABLED=false"
        ) from None
    return PodReflector(
        api_client,
        settings.node_name,
        watch_timeout_seconds=settings.watch_timeout_seconds,
        read_timeout_seconds=settings.api_read_timeout_seconds,
    )


def _peers(settings: Settings) -> Peers | None:
    if not settings.peers_enabled:
        return None
    try:
        return Peers.from_settings(settings)
    except PeerConfigError as e:
        raise StartupError(str(e)) from None


def _meter(settings: Settings) -> Meter | None:
    try:
        return Meter.from_settings(settings)
    except SpoolError as e:
        raise StartupError(f"RUNTIME_INSIGHTS_METER_SPOOL_DIR: {e}") from None


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; StartupError if the server cannot come up."""
    reflector = _reflector(settings)
    try:
        tls = ssl_context(settings)
    except TLSConfigError as e:
        raise StartupError(str(e)) from None
    peers = _peers(settings)
    meter = _meter(settings)
    auth_api = AuthApi.from_settings(settings) if settings.auth_enabled else None
    middlewares: list[Middleware] = []
    if auth_api is not None:
        middlewares.append(auth_middleware(settings, auth_api))
    middlewares.append(limits_middleware(settings))
    client = ExtractorClient(settings.extractor_socket, settings.extractor_timeout_seconds)
    state = State(client.fetch, settings.poll_interval_seconds)
    if meter is not None:
        lookup = reflector.get_by_uid if reflector is not None else (lambda uid: None)
        state.observers.append(lambda snapshot: meter.observe(snapshot, lookup))
    app = build_app(state, reflector, settings, middlewares=middlewares, peers=peers, meter=meter)
    if reflector is not None:
        events.add_routes(app, reflector)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=tls)
        try:
            await site.start()
        except OSError as e:
            raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {e}") from None
        scheme = "https" if tls else "http"
        for address in runner.addresses:
            log.info("listening on %s://%s:%s", scheme, address[0], address[1])
        if reflector is not None:
            await reflector.start()
        state.start()
        if meter is not None:
            meter.start()
        await stop.wait()
        log.info("stopping")
    finally:
        await state.stop()
        if meter is not None:
            await meter.stop()
        if reflector is not None:
            await reflector.stop()
        await runner.cleanup()
        await client.aclose()
        if peers is not None:
            await peers.aclose()
        if auth_api is not None:
            await auth_api.aclose()


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def run_exporter(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    try:
        settings = load_settings(args.env_file)
        asyncio.run(_main(settings))
    except StartupError as e:
        print(f"runtime-insights exporter: {e}", file=sys.stderr)
        return 2
    return 0
