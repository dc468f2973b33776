"""The collectors' environment variables, in their own formats, as our settings."""

from __future__ import annotations

import pytest

from exporter.meter.compat import CLOUD_URL, CompatError, go_duration, map_environment


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("2.5s", 2.5),
        ("1.5m", 90.0),
        ("0", 0.0),
        ("100us", 1e-4),
        ("1h2m3s4ms", 3723.004),
        (".5s", 0.5),
    ],
)
def test_go_durations_as_go_parses_them(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["15", "-5s", "s", "1x", "", "5 s", "1s-", "1m30"])
def test_what_go_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Go duration"):
        go_duration(text)


def test_a_collector_environment_maps_onto_our_settings() -> None:
    mapped = map_environment(
        {
            "OPENMETER_URL": "https://om.example.com",
            "OPENMETER_TOKEN": "om_x",
            "SCRAPE_NAMESPACE": "shop, batch",
            "SCRAPE_INTERVAL": "1m30s",
            "BATCH_SIZE": "20",
            "BATCH_PERIOD": "2s",
            "DEBUG": "true",
        }
    )
    assert mapped.values == {
        "RUNTIME_INSIGHTS_OPENMETER_URL": "https://om.example.com",
        "RUNTIME_INSIGHTS_OPENMETER_TOKEN": "om_x",
        "RUNTIME_INSIGHTS_METER_NAMESPACES": "shop,batch",
        "RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS": "90",
        "RUNTIME_INSIGHTS_METER_BATCH_SIZE": "20",
        "RUNTIME_INSIGHTS_METER_BATCH_PERIOD_SECONDS": "2",
        "RUNTIME_INSIGHTS_METER_DEBUG": "true",
    }
    line = mapped.describe()
    assert line is not None and "SCRAPE_INTERVAL → RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS" in line


def test_a_watcher_environment_with_only_a_token_goes_to_openmeter_cloud() -> None:
    mapped = map_environment(
        {
            "OPENMETER_TOKEN": "om_x",
            "NAMESPACE": "default",
            "MONITOR_RATE_SECONDS": "5",
            "SOURCE": "my-cluster",
            "LABEL_SELECTOR": "k8s.openmeter.cloud/monitor",
        }
    )
    assert mapped.values["RUNTIME_INSIGHTS_OPENMETER_URL"] == CLOUD_URL
    assert mapped.values["RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS"] == "5"
    assert mapped.values["RUNTIME_INSIGHTS_METER_NAMESPACES"] == "default"
    assert mapped.values["RUNTIME_INSIGHTS_METER_SOURCE"] == "my-cluster"
    assert mapped.values["RUNTIME_INSIGHTS_METER_LABEL_SELECTOR"] == "k8s.openmeter.cloud/monitor"


def test_our_prefixed_names_win_and_the_log_says_so() -> None:
    mapped = map_environment(
        {
            "SCRAPE_INTERVAL": "bogus",
            "RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS": "30",
            "OPENMETER_URL": "https://a",
            "RUNTIME_INSIGHTS_OPENMETER_URL": "https://b",
        }
    )
    assert mapped.values == {}
    line = mapped.describe()
    assert line is not None and "SCRAPE_INTERVAL" in line and "OPENMETER_URL" in line
    assert map_environment({"PATH": "/bin"}).describe() is None


def test_no_token_no_default_url() -> None:
    assert "RUNTIME_INSIGHTS_OPENMETER_URL" not in map_environment({"NAMESPACE": "x"}).values
    # the manifests always mount an optional token file: that alone turns nothing on
    assert map_environment({"RUNTIME_INSIGHTS_OPENMETER_TOKEN_FILE": "/run/token"}).values == {}
    prefixed = map_environment({"RUNTIME_INSIGHTS_OPENMETER_TOKEN": "om_x"})
    assert prefixed.values == {"RUNTIME_INSIGHTS_OPENMETER_URL": CLOUD_URL}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SCRAPE_INTERVAL": "15"}, "SCRAPE_INTERVAL"),
        ({"SCRAPE_INTERVAL": "500ms"}, "SCRAPE_INTERVAL"),
        ({"MONITOR_RATE_SECONDS": "5s"}, "MONITOR_RATE_SECONDS"),
        ({"MONITOR_RATE_SECONDS": "0"}, "MONITOR_RATE_SECONDS"),
        ({"BATCH_SIZE": "many"}, "BATCH_SIZE"),
        ({"BATCH_SIZE": "5000"}, "BATCH_SIZE"),
        ({"BATCH_PERIOD": "1"}, "BATCH_PERIOD"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"SOURCE": " "}, "SOURCE"),
        ({"SCRAPE_INTERVAL": "10s", "MONITOR_RATE_SECONDS": "5"}, "MONITOR_RATE_SECONDS"),
        ({"SCRAPE_NAMESPACE": "a", "NAMESPACE": "b"}, "NAMESPACE"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(CompatError, match=named):
        map_environment(env)


def test_batch_size_zero_means_no_count_limit_as_in_the_collector() -> None:
    assert map_environment({"BATCH_SIZE": "0"}).values["RUNTIME_INSIGHTS_METER_BATCH_SIZE"] == "100"
