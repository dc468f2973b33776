"""Bad exporter configuration stops the process with exit 2 and one line naming the setting."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.settings_doc import settings_docs
from exporter.wiring import run_exporter
from tests.support.paths import REPO_ROOT

SETTINGS_ENV = [k for k in os.environ if k.startswith("RUNTIME_INSIGHTS_")]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in SETTINGS_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/h5a-kubeconfig")


def _run(env_file: str | None = None) -> int:
    return run_exporter(argparse.Namespace(env_file=env_file))


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"RUNTIME_INSIGHTS_PORT": "99999"}, ["RUNTIME_INSIGHTS_PORT"]),
        (
            {"RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS": "0"},
            ["RUNTIME_INSIGHTS_POLL_INTERVAL_SECONDS"],
        ),
        (
            {"RUNTIME_INSIGHTS_PORT": "x", "RUNTIME_INSIGHTS_KUBE_ENABLED": "maybe"},
            ["RUNTIME_INSIGHTS_PORT", "RUNTIME_INSIGHTS_KUBE_ENABLED"],
        ),
        ({"RUNTIME_INSIGHTS_TLS_CERT_FILE": "/x.crt"}, ["RUNTIME_INSIGHTS_TLS_KEY_FILE"]),
        (
            {"RUNTIME_INSIGHTS_REQUESTHEADER_ALLOWED_NAMES": "front-proxy"},
            ["RUNTIME_INSIGHTS_REQUESTHEADER_ALLOWED_NAMES"],
        ),
        (  # telemd-kubernetes-adapter's own names are named as the user wrote them
            {"telemd_kubernetes_adapter_redis_port": "x", "RUNTIME_INSIGHTS_KUBE_ENABLED": "0"},
            ["telemd_kubernetes_adapter_redis_port"],
        ),
        (
            {"RUNTIME_INSIGHTS_REDIS_HOST": "redis", "RUNTIME_INSIGHTS_KUBE_ENABLED": "false"},
            ["RUNTIME_INSIGHTS_REDIS_HOST", "RUNTIME_INSIGHTS_KUBE_ENABLED=true"],
        ),
    ],
)
def test_invalid_values_name_the_setting(
    env: dict[str, str],
    names: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert _run() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for name in names:
        assert name in err


def test_env_file_unknown_key_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "exporter.env"
    env.write_text("RUNTIME_INSIGHTS_PORTT=8080\n")
    assert _run(str(env)) == 2
    assert "RUNTIME_INSIGHTS_PORTT: unknown setting" in capsys.readouterr().err
    assert _run(str(tmp_path / "absent.env")) == 2
    assert "absent.env: no such file" in capsys.readouterr().err


def test_kube_enabled_needs_node_name_and_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run() == 2
    assert "RUNTIME_INSIGHTS_NODE_NAME is required" in capsys.readouterr().err
    monkeypatch.setenv("RUNTIME_INSIGHTS_NODE_NAME", "node-a")
    monkeypatch.setenv("RUNTIME_INSIGHTS_KUBECONFIG", "/nonexistent/h5a.kubeconfig")
    assert _run() == 2
    err = capsys.readouterr().err
    assert "/nonexistent/h5a.kubeconfig" in err and "RUNTIME_INSIGHTS_KUBE_ENABLED=false" in err


def test_cli_exit_code_and_single_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_INSIGHTS_")}
    env["RUNTIME_INSIGHTS_PORT"] = "-1"
    proc = subprocess.run(
        [sys.executable, "-m", "runtime_insights", "exporter"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("runtime-insights exporter: invalid settings: ")
    assert "RUNTIME_INSIGHTS_PORT" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("RUNTIME_INSIGHTS_PORTT", "RUNTIME_INSIGHTS_PORT"),
        ("RUNTIME_INSIGHTS_KUBE_ENABLE", "RUNTIME_INSIGHTS_KUBE_ENABLED"),
        ("runtime_insights_meter_interval", "RUNTIME_INSIGHTS_METER_INTERVAL_SECONDS"),
    ],
)
def test_an_unknown_variable_stops_the_exporter_naming_the_closest_setting(
    typo: str, meant: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(typo, "1")
    monkeypatch.setenv("RUNTIME_INSIGHTS_KUBE_ENABLED", "false")
    assert _run() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{typo}: unknown setting; did you mean {meant}?" in err


def test_an_unknown_variable_with_no_close_setting_is_still_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RUNTIME_INSIGHTS_ZZQX", "1")
    assert _run() == 2
    err = capsys.readouterr().err
    assert "RUNTIME_INSIGHTS_ZZQX: unknown setting" in err and "did you mean" not in err


def test_auth_without_credentials_is_one_line_naming_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RUNTIME_INSIGHTS_AUTH_ENABLED", "true")
    monkeypatch.setenv("RUNTIME_INSIGHTS_KUBE_ENABLED", "false")
    assert _run() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "RUNTIME_INSIGHTS_AUTH_ENABLED=false" in err and "RUNTIME_INSIGHTS_KUBECONFIG" in err


def test_help_lists_every_setting_with_its_variable_default_and_meaning() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runtime_insights", "exporter", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=True,
    )
    lines = proc.stdout.splitlines()
    for doc in settings_docs():
        (at,) = [i for i, line in enumerate(lines) if line.split()[:1] == [doc.variables[0]]]
        assert f"(default: {doc.default})" in lines[at]
        assert doc.meaning and lines[at + 1].strip() == doc.meaning
    assert {d.default for d in settings_docs() if d.field == "port"} == {"8443"}


def test_the_openmeter_sink_needs_a_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RUNTIME_INSIGHTS_KUBE_ENABLED", "false")
    monkeypatch.setenv("RUNTIME_INSIGHTS_METER_SINK", "openmeter")
    assert _run() == 2
    err = capsys.readouterr().err
    assert "RUNTIME_INSIGHTS_METER_SINK=openmeter needs RUNTIME_INSIGHTS_OPENMETER_URL" in err


def test_the_file_sink_writes_where_it_is_told_or_beside_the_spool(tmp_path: Path) -> None:
    from exporter.meter.sinks import FileSink
    from exporter.settings import Settings
    from exporter.wiring import meter

    assert meter(Settings(kube_enabled=False)) is None  # no URL, no sink: off
    spool = tmp_path / "spool"
    default = meter(Settings(kube_enabled=False, meter_sink="file", meter_spool_dir=str(spool)))
    assert default is not None and isinstance(default.sender, FileSink)
    assert default.sender.path == spool / "events.jsonl"
    told = tmp_path / "events.jsonl"
    chosen = meter(
        Settings(
            kube_enabled=False,
            meter_sink="file",
            meter_file=str(told),
            meter_spool_dir=str(tmp_path / "other-spool"),  # one exporter per spool
        )
    )
    assert chosen is not None and isinstance(chosen.sender, FileSink)
    assert chosen.sender.path == told
