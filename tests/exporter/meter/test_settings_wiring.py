"""Metering as users configure it: the collectors' variables, sinks anyone can see, the
start log, and bad values stopping the start with the variable named."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from exporter import wiring
from exporter.kube.podmeta import PodMeta
from exporter.meter.client import OpenMeterClient
from exporter.meter.pipeline import Meter
from exporter.meter.sinks import FileSink, StdoutSink
from exporter.wiring import StartupError, load_settings
from tests.support.meter_snapshots import C, P, snap
from tests.support.openmeter import FakeOpenMeter

UID = "3f0e6c1a-0000-4000-8000-000000000001"
TOKEN = "om_test"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith(("RUNTIME_INSIGHTS_", "OPENMETER_")) or key in (
            "SCRAPE_NAMESPACE",
            "SCRAPE_INTERVAL",
            "NAMESPACE",
            "MONITOR_RATE_SECONDS",
            "BATCH_SIZE",
            "BATCH_PERIOD",
            "SOURCE",
            "DEBUG",
            "LABEL_SELECTOR",
        ):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RUNTIME_INSIGHTS_KUBE_ENABLED", "false")
    monkeypatch.setenv("RUNTIME_INSIGHTS_METER_SPOOL_DIR", str(tmp_path / "spool"))
    (tmp_path / "spool").mkdir()
    yield


@pytest.fixture
async def om() -> AsyncIterator[FakeOpenMeter]:
    async with FakeOpenMeter(token=TOKEN) as server:
        yield server


def built(monkeypatch: pytest.MonkeyPatch, **env: str) -> Meter | None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return wiring.meter(load_settings(None))


def feed(m: Meter) -> None:
    lookup: dict[str, PodMeta] = {}
    for i in range(7):
        m.observe(snap(100.0 + 10 * i, P(UID, 1_000 + i * 777, [C("a", 10 + i)])), lookup.get)


async def test_metering_is_off_without_a_url_a_token_or_a_wish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert built(monkeypatch) is None
    assert built(monkeypatch, RUNTIME_INSIGHTS_OPENMETER_TOKEN_FILE="/run/token") is None


async def test_a_watcher_style_environment_with_only_a_token_meters_to_openmeter_cloud(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    m = built(monkeypatch, OPENMETER_TOKEN=TOKEN, NAMESPACE="shop", MONITOR_RATE_SECONDS="5")
    assert m is not None
    assert isinstance(m.sender, OpenMeterClient)
    assert m.sender.endpoint == "https://openmeter.cloud/api/v1/events"
    assert m.interval_seconds == 5 and m.billing.namespaces == {"shop"}
    line = next(r.message for r in caplog.records if "collector variables" in r.message)
    assert "NAMESPACE → RUNTIME_INSIGHTS_METER_NAMESPACES" in line
    assert "MONITOR_RATE_SECONDS" in line and "openmeter.cloud" in line
    await m.stop()


async def test_a_collector_style_environment_delivers_with_its_names_and_formats(
    monkeypatch: pytest.MonkeyPatch, om: FakeOpenMeter
) -> None:
    m = built(
        monkeypatch,
        OPENMETER_URL=om.url,
        OPENMETER_TOKEN=TOKEN,
        SCRAPE_INTERVAL="1m",
        BATCH_SIZE="20",
        BATCH_PERIOD="1s",
        SOURCE="cluster-7",
        DEBUG="true",
    )
    assert m is not None
    assert (m.interval_seconds, m.batch_size, m.batch_period_seconds) == (60, 20, 1)
    assert m.debug and m.billing.source == "cluster-7"
    feed(m)
    assert await m.deliver_once()
    (event,) = om.events.values()
    assert event["source"] == "cluster-7"
    await m.stop()


async def test_our_prefixed_names_win_over_the_collectors(monkeypatch: pytest.MonkeyPatch) -> None:
    m = built(
        monkeypatch,
        OPENMETER_URL="https://a.example.com",
        RUNTIME_INSIGHTS_OPENMETER_URL="https://b.example.com",
        SCRAPE_INTERVAL="not a duration",
        RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS="30",
    )
    assert m is not None and isinstance(m.sender, OpenMeterClient)
    assert m.sender.endpoint.startswith("https://b.example.com") and m.interval_seconds == 30
    await m.stop()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SCRAPE_INTERVAL": "15"}, "SCRAPE_INTERVAL"),
        ({"MONITOR_RATE_SECONDS": "five"}, "MONITOR_RATE_SECONDS"),
        (
            {"LABEL_SELECTOR": "a in (b"},
            "LABEL_SELECTOR (read as RUNTIME_INSIGHTS_METER_LABEL_SELECTOR)",
        ),
        ({"RUNTIME_INSIGHTS_METER_LABEL_SELECTOR": "==x"}, "RUNTIME_INSIGHTS_METER_LABEL_SELECTOR"),
        (
            {"RUNTIME_INSIGHTS_METER_NAMESPACES": "shop,Bad_Name"},
            "RUNTIME_INSIGHTS_METER_NAMESPACES",
        ),
        (
            {"RUNTIME_INSIGHTS_METER_OPT_IN_LABEL": "no spaces"},
            "RUNTIME_INSIGHTS_METER_OPT_IN_LABEL",
        ),
        ({"RUNTIME_INSIGHTS_METER_MODE": "heartbeat"}, "RUNTIME_INSIGHTS_METER_MODE"),
        ({"RUNTIME_INSIGHTS_METER_SINK": "openmeter"}, "RUNTIME_INSIGHTS_METER_SINK"),
        ({"OPENMETER_URL": "openmeter.cloud"}, "OPENMETER_URL"),
    ],
)
def test_bad_values_stop_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(StartupError) as caught:
        load_settings(None)
    assert named in str(caught.value)


async def test_without_a_url_events_go_to_a_json_lines_file_anyone_can_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    m = built(monkeypatch, RUNTIME_INSIGHTS_METER_ENABLED="true")
    assert m is not None and isinstance(m.sender, FileSink)
    feed(m)
    assert await m.deliver_once()
    lines = (tmp_path / "spool" / "events.jsonl").read_bytes().splitlines()
    (event,) = [orjson.loads(line) for line in lines]
    assert event["data"]["pod_uid"] == UID and event["data"]["cpu_ns"] == 6 * 777
    assert "file" in m.describe() and "events.jsonl" in m.describe()
    await m.stop()


async def test_stdout_and_debug_show_every_event(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    m = built(monkeypatch, RUNTIME_INSIGHTS_METER_SINK="stdout", DEBUG="1")
    assert m is not None and isinstance(m.sender, StdoutSink)
    feed(m)
    assert any("meter: event {" in r.message for r in caplog.records)
    assert await m.deliver_once()
    (line,) = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["data"]["pod_uid"] == UID
    await m.stop()


async def test_the_v3_ingest_path_is_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeOpenMeter() as om:
        m = built(monkeypatch, OPENMETER_URL=om.url, RUNTIME_INSIGHTS_METER_INGEST_API="v3")
        assert m is not None and isinstance(m.sender, OpenMeterClient)
        assert m.sender.endpoint == om.url + "/api/v3/openmeter/events"
        feed(m)
        assert await m.deliver_once()
        assert [s for s, _, _ in om.requests] == [202] and len(om.events) == 1
        await m.stop()


async def test_the_file_sink_rotates_instead_of_filling_the_disk(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "events.jsonl", max_bytes=4096)
    event = {"id": "x" * 1000}
    for _ in range(10):
        await sink.send([event])
    assert (tmp_path / "events.jsonl").stat().st_size <= 4096
    assert (tmp_path / "events.jsonl.1").exists()
