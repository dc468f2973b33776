"""The environment OpenMeter's users already set, read as our settings.

Users of the Kubernetes collector set ``OPENMETER_URL``, ``OPENMETER_TOKEN``,
``SCRAPE_NAMESPACE``, ``SCRAPE_INTERVAL`` (a Go duration), ``BATCH_SIZE``,
``BATCH_PERIOD`` (a Go duration) and ``DEBUG``; users of the Pod Runtime Watcher
``OPENMETER_URL``, ``OPENMETER_TOKEN``, ``NAMESPACE``, ``MONITOR_RATE_SECONDS``,
``LABEL_SELECTOR`` and ``SOURCE``. Each is mapped onto one ``RUNTIME_INSIGHTS_…`` setting
in that setting's format; the prefixed name, when set too, wins. Like both tools, a token
without a URL means OpenMeter Cloud (a token *file* does not: the manifests always mount
an optional one). A value in a format the tool itself would refuse,
or two of these names disagreeing, stops the start with a message naming the variable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

PREFIX = "RUNTIME_INSIGHTS_"
CLOUD_URL = "https://openmeter.cloud"

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "no", "off", ""})


class CompatError(ValueError):
    """A collector variable has a value its own tool would not accept."""


def go_duration(text: str) -> float:
    """Seconds of a Go ``time.ParseDuration`` string (``15s``, ``1m30s``, ``500ms``, ``0``)."""
    value = text.strip()
    if value == "0":
        return 0.0
    if not value or value.startswith("-"):
        raise ValueError(f"{text!r} is not a Go duration (e.g. 15s, 1m30s, 500ms)")
    total, at = 0.0, 0
    for m in _PART.finditer(value):
        if m.start() != at:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        at = m.end()
    if at != len(value):
        raise ValueError(f"{text!r} is not a Go duration (e.g. 15s, 1m30s, 500ms)")
    return total


def _seconds_at_least_one(text: str) -> str:
    seconds = go_duration(text)
    if seconds < 1.0:
        raise ValueError(f"{text!r} is shorter than the collector's minimum of 1s")
    return f"{seconds:g}"


def _positive_seconds(text: str) -> str:
    try:
        seconds = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number of seconds") from None
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return str(seconds)


def _batch_size(text: str) -> str:
    try:
        size = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if size < 0:
        raise ValueError(f"{text!r} is negative")
    if size > 1000:
        raise ValueError(f"{text!r} is more than 1000 events per request")
    return str(size) if size else "100"  # 0 disables batching by count: our default


def _duration(text: str) -> str:
    return f"{go_duration(text):g}"


def _namespaces(text: str) -> str:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return ",".join(names)


def _boolean(text: str) -> str:
    value = text.strip().lower()
    if value in _TRUE:
        return "true"
    if value in _FALSE:
        return "false"
    raise ValueError(f"{text!r} is not true or false")


def _as_is(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty")
    return text.strip()


@dataclass(frozen=True)
class _Rule:
    ours: str
    names: tuple[str, ...]
    convert: Callable[[str], str]


RULES = (
    _Rule("OPENMETER_URL", ("OPENMETER_URL",), _as_is),
    _Rule("OPENMETER_TOKEN", ("OPENMETER_TOKEN",), _as_is),
    _Rule("METER_NAMESPACES", ("SCRAPE_NAMESPACE", "NAMESPACE"), _namespaces),
    _Rule("METER_INTERVAL_SECONDS", ("SCRAPE_INTERVAL",), _seconds_at_least_one),
    _Rule("METER_INTERVAL_SECONDS", ("MONITOR_RATE_SECONDS",), _positive_seconds),
    _Rule("METER_BATCH_SIZE", ("BATCH_SIZE",), _batch_size),
    _Rule("METER_BATCH_PERIOD_SECONDS", ("BATCH_PERIOD",), _duration),
    _Rule("METER_LABEL_SELECTOR", ("LABEL_SELECTOR",), _as_is),
    _Rule("METER_SOURCE", ("SOURCE",), _as_is),
    _Rule("METER_DEBUG", ("DEBUG",), _boolean),
)


@dataclass
class Mapped:
    """Our settings from the collectors' variables, and what was read or overridden."""

    values: dict[str, str] = field(default_factory=dict)
    """``RUNTIME_INSIGHTS_…`` name → value in its format."""
    read: list[str] = field(default_factory=list)
    """``NAME → RUNTIME_INSIGHTS_…`` for every variable used."""
    overridden: list[str] = field(default_factory=list)
    """Variables ignored because the prefixed setting is set too."""
    origin: dict[str, str] = field(default_factory=dict)
    """``RUNTIME_INSIGHTS_…`` name → the variable its value came from."""

    def describe(self) -> str | None:
        """The start log line, or None when no such variable was set."""
        parts = []
        if self.read:
            parts.append("read " + ", ".join(self.read))
        if self.overridden:
            parts.append(
                "ignored (the RUNTIME_INSIGHTS_ name is set) " + ", ".join(self.overridden)
            )
        return "OpenMeter collector variables: " + "; ".join(parts) if parts else None


def map_environment(env: Mapping[str, str]) -> Mapped:
    """The settings ``env``'s collector variables stand for; CompatError names a bad one."""
    out = Mapped()
    origin = out.origin
    for rule in RULES:
        ours = PREFIX + rule.ours
        for name in rule.names:
            if name not in env:
                continue
            if ours in env:
                out.overridden.append(name)
                continue
            try:
                value = rule.convert(env[name])
            except ValueError as e:
                raise CompatError(f"{name}: {e}") from None
            if ours in out.values and out.values[ours] != value:
                raise CompatError(
                    f"{name}={env[name]!r} and {origin[ours]}={env[origin[ours]]!r} disagree; "
                    f"set one, or {ours}"
                )
            out.values[ours] = value
            origin[ours] = name
            out.read.append(f"{name} → {ours}")
    token = PREFIX + "OPENMETER_TOKEN"
    url = PREFIX + "OPENMETER_URL"
    if (token in env or token in out.values) and url not in env and url not in out.values:
        out.values[url] = CLOUD_URL
        out.read.append(f"a token without a URL → {url}={CLOUD_URL}")
    return out
