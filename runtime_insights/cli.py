"""The `runtime-insights` command: one entry point, one subcommand per job.

Subcommands import their implementation lazily so that the privileged extractor never
loads the exporter's network stack, and `--help` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from runtime_insights import __version__


def seconds(text: str) -> float:
    """A positive number of seconds (argparse names the option when this fails)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and less than 86400: {text}")
    return value


def count(text: str) -> int:
    """A positive whole number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def add_fingerprint_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fingerprint-timeout",
        type=seconds,
        default=5.0,
        metavar="SECONDS",
        help="time budget of one container's fingerprint (default: 5)",
    )


def add_host_roots(p: argparse.ArgumentParser) -> None:
    """Where the host's /proc, cgroupfs and runtime state live (they move in a container)."""
    p.add_argument("--proc-root", default="/proc", help="host /proc (default: /proc)")
    p.add_argument(
        "--cgroup-root", default="/sys/fs/cgroup", help="host cgroupfs (default: /sys/fs/cgroup)"
    )
    p.add_argument(
        "--containerd-state",
        action="append",
        default=None,
        metavar="DIR",
        help="containerd task state root, repeatable "
        "(default: /run/containerd/io.containerd.runtime.v2.task)",
    )
    p.add_argument(
        "--crio-state",
        action="append",
        default=None,
        metavar="DIR",
        help="CRI-O container state root, repeatable (default: /run/containers/storage)",
    )
    p.add_argument(
        "--no-fingerprints", action="store_true", help="skip OS and language fingerprints"
    )
    add_fingerprint_timeout(p)


class _ExporterHelp(argparse.Action):
    """``exporter --help``: the options, then every setting with its variable, default
    and meaning, generated from the Settings model (loaded only when asked for)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help", "")))

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from exporter.settings_doc import help_text

        parser.print_help()
        print()
        print(help_text(), end="")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runtime-insights",
        description="Per-container runtime insights and usage metering for Kubernetes nodes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("extract", help="one pass over this machine, printed")
    add_host_roots(p)
    p.add_argument("--format", choices=("json", "table"), default="json")

    p = sub.add_parser("fingerprint", help="fingerprint the container of one process")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--proc-root", default="/proc", help="host /proc (default: /proc)")
    add_fingerprint_timeout(p)

    p = sub.add_parser("extractor", help="the privileged node agent")
    ext = p.add_subparsers(dest="extractor_command", required=True, metavar="ACTION")
    serve = ext.add_parser("serve", help="serve snapshots over HTTP on a unix socket")
    add_host_roots(serve)
    serve.add_argument("--socket", required=True, help="unix socket path to listen on")
    serve.add_argument(
        "--fingerprint-pass-seconds",
        type=seconds,
        default=2.0,
        metavar="SECONDS",
        help="worker time for new fingerprints after each pass begins (default: 2)",
    )
    serve.add_argument(
        "--header-timeout",
        type=seconds,
        default=5.0,
        metavar="SECONDS",
        help="a request's headers must arrive within this (default: 5)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="an idle keep-alive connection is closed after this (default: 60)",
    )
    serve.add_argument(
        "--max-connections",
        type=count,
        default=64,
        metavar="N",
        help="connections open at once; more are refused with 503 (default: 64)",
    )
    serve.add_argument(
        "--state-dir",
        help="where the exit watcher keeps its tombstones across restarts "
        "(default: the socket's directory; 'none' keeps them in memory only)",
    )
    serve.add_argument(
        "--details-every",
        type=count,
        default=None,
        metavar="PASSES",
        help="re-read each cgroup's peak, pids, limits, throttling, OOM kills, block I/O, "
        "pressure and its pod's network every PASSES passes (default: 6)",
    )
    serve.add_argument(
        "--open-files",
        type=count,
        default=None,
        metavar="N",
        help="raise the soft open-files limit to N (default: to the hard limit); the "
        "descriptors kept open between passes are sized for the node within it",
    )

    p = sub.add_parser(
        "exporter",
        help="the unprivileged, network-facing exporter",
        description="The exporter: reads the extractor's socket, serves the JSON API, "
        "Prometheus metrics and the custom metrics API, and sends usage events. "
        "It is configured by environment variables, listed below.",
        add_help=False,
    )
    p.add_argument("-h", "--help", action=_ExporterHelp, help="show this help and every setting")
    p.add_argument(
        "--env-file", default=None, help="read settings from this file as well as the environment"
    )
    # as flux-metrics-api is started; each flag overrides its RUNTIME_INSIGHTS_ variable
    p.add_argument("--host", default=None, help="address to listen on (RUNTIME_INSIGHTS_HOST)")
    p.add_argument("--port", default=None, help="port to listen on (RUNTIME_INSIGHTS_PORT)")
    p.add_argument(
        "--tls-cert-file", default=None, help="serving certificate (RUNTIME_INSIGHTS_TLS_CERT_FILE)"
    )
    p.add_argument(
        "--tls-key-file", default=None, help="its private key (RUNTIME_INSIGHTS_TLS_KEY_FILE)"
    )
    p.add_argument(
        "--metric-definitions",
        default=None,
        metavar="FILE",
        help="metrics you define (RUNTIME_INSIGHTS_METRIC_DEFINITIONS_FILE)",
    )

    p = sub.add_parser(
        "node",
        help="extractor and exporter together on this machine, without Kubernetes",
        description="Starts the extractor and the exporter (loopback, no authentication, no "
        "API server, usage events to a local file), prints where to curl, stops both on "
        "Ctrl-C. What make run runs.",
    )
    add_host_roots(p)
    from runtime_insights.node import add_arguments

    add_arguments(p)

    p = sub.add_parser(
        "prepare-spool", help="hand the meter's spool directory to the exporter (init container)"
    )
    p.add_argument("directory", help="the spool directory (the DaemonSet's hostPath)")
    p.add_argument("--owner", required=True, help="UID:GID the exporter runs as")

    p = sub.add_parser("collect", help="merge every node's exporter into one document")
    p.add_argument("--namespace", default="runtime-insights")
    p.add_argument("--selector", default="app.kubernetes.io/name=runtime-insights")
    p.add_argument(
        "--port", default="8443", help="exporter container port, number or name (default: 8443)"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per node")
    p.add_argument("--kubeconfig", default=None)
    p.add_argument(
        "--via",
        choices=("port-forward", "proxy"),
        default="port-forward",
        help="reach exporters through pods/portforward (default; works with their "
        "authentication on) or the pod proxy (only with authentication off)",
    )
    p.add_argument("--insecure-http", action="store_true", help="use http to reach exporters")
    p.add_argument(
        "--ca-file", default=None, help="CA bundle the exporters' certificate must chain to"
    )
    p.add_argument(
        "--tls-server-name",
        default=None,
        help="name the exporters' certificate must carry "
        "(default: runtime-insights.<namespace>.svc)",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="print the runtime inventory: runtimes with their containers, pods, owners "
        "and CPU share, and what to act on (end of life, unidentified, mixed versions)",
    )
    p.add_argument(
        "--format",
        choices=("json", "insights", "table", "csv"),
        default=None,
        help="json (default): the merged document; insights: what insights-runtime-"
        "extractor's scripts/extract.sh prints; with --report: table (default), json, csv",
    )
    return parser


LONG_RUNNING = frozenset({"extractor", "exporter", "node"})
"""Commands that log (the others print their result)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in LONG_RUNNING:
        from runtime_insights import logs

        logs.configure()
    if args.command == "extract":
        from extractor.commands.extract import run_extract

        return run_extract(args)
    if args.command == "fingerprint":
        from extractor.commands.fingerprint import run_fingerprint

        return run_fingerprint(args)
    if args.command == "extractor":
        from extractor.commands.serve import run_serve

        return run_serve(args)
    if args.command == "exporter":
        from exporter.wiring import run_exporter

        return run_exporter(args)
    if args.command == "node":
        from runtime_insights.node import run_node

        return run_node(args)
    if args.command == "prepare-spool":
        return _prepare_spool(args.directory, args.owner)
    if args.command == "collect":
        from exporter.cluster.collect import run_collect

        return run_collect(args)
    raise AssertionError(args.command)


def _prepare_spool(directory: str, owner: str) -> int:
    """Exit 0 once handed over; 2 with one line naming the option or the directory."""
    import sys

    from exporter.meter.handover import HandoverError, hand_over, parse_owner

    try:
        uid, gid = parse_owner(owner)
        hand_over(directory, uid, gid)
    except (ValueError, HandoverError) as e:
        print(f"runtime-insights prepare-spool: {e}", file=sys.stderr)
        return 2
    return 0
