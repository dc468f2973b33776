"""The bounded jar reader: manifests as the JDK writes them, and hostile jars."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from fingerprints.base import RootError
from fingerprints.reading.jar import Jar, JarError, parse_manifest, read_manifest
from fingerprints.reading.rootfs import Budget, ConfinedRoot


def _jar(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_manifest_continuation_lines_are_joined() -> None:
    # JAR spec: lines are at most 72 bytes, a continuation starts with one space.
    text = (
        "Manifest-Version: 1.0\r\n"
        "Class-Path: lib/boot/io.quarkus.quarkus-bootstrap-runner-3.15.1.jar li\r\n"
        " b/main/io.quarkus.quarkus-core-3.15.1.jar\r\n"
        "Main-Class: io.quarkus.bootstrap.runner.QuarkusEntryPoint\r\n"
        "\r\n"
        "Name: ignored/section\r\n"
        "Main-Class: not.Main\r\n"
    )
    manifest = parse_manifest(text)
    assert manifest["Class-Path"] == (
        "lib/boot/io.quarkus.quarkus-bootstrap-runner-3.15.1.jar "
        "lib/main/io.quarkus.quarkus-core-3.15.1.jar"
    )
    assert manifest["Main-Class"] == "io.quarkus.bootstrap.runner.QuarkusEntryPoint"


def test_real_debian_tomcat_bootstrap_manifest() -> None:
    jar = Path("/usr/share/tomcat10/bin/bootstrap.jar")
    if not jar.is_file():
        pytest.skip("tomcat10-common not installed (scripts/system-packages.txt)")
    with zipfile.ZipFile(jar) as zf:
        expected = zf.read("META-INF/MANIFEST.MF").decode()
    manifest = read_manifest(ConfinedRoot("/"), str(jar))
    for line in expected.splitlines():
        key, sep, value = line.partition(": ")
        if sep and not line.startswith(" ") and len(line) < 70:
            assert manifest[key] == value.strip()
    assert manifest["Main-Class"] == "org.apache.catalina.startup.Bootstrap"


def test_zip_bomb_member_is_read_only_up_to_the_cap(tmp_path: Path) -> None:
    _jar(tmp_path / "bomb.jar", {"META-INF/MANIFEST.MF": b"A: " + b"x" * (50 << 20)})
    jar = Jar(ConfinedRoot(str(tmp_path)), "/bomb.jar")
    assert len(jar.read("META-INF/MANIFEST.MF", cap=1000)) == 1000


@pytest.mark.parametrize(
    "content",
    [b"", b"not a zip at all", b"PK\x05\x06" + b"\xff" * 18, b"PK\x03\x04" + b"\x00" * 100],
)
def test_garbage_is_a_jar_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.jar").write_bytes(content)
    with pytest.raises(JarError):
        Jar(ConfinedRoot(str(tmp_path)), "/bad.jar")


def test_truncated_jar_is_a_jar_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Main-Class: a.B\n" * 100)
    (tmp_path / "cut.jar").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(JarError):
        read_manifest(ConfinedRoot(str(tmp_path)), "/cut.jar")


def test_huge_central_directory_stops_at_the_read_budget(tmp_path: Path) -> None:
    _jar(tmp_path / "many.jar", {f"f{i:06d}.class": b"" for i in range(20000)})
    with pytest.raises(JarError, match="budget"):
        Jar(ConfinedRoot(str(tmp_path)), "/many.jar", budget=256 << 10)


def test_container_budget_applies_to_jar_reads(tmp_path: Path) -> None:
    _jar(tmp_path / "app.jar", {"META-INF/MANIFEST.MF": b"Main-Class: a.B\n"})
    root = ConfinedRoot(str(tmp_path), Budget(max_bytes_total=16))
    with pytest.raises((JarError, RootError)):
        read_manifest(root, "/app.jar")


def test_symlinked_jar_stays_inside_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "host.jar"
    _jar(outside, {"META-INF/MANIFEST.MF": b"Main-Class: host.Secret\n"})
    root_dir = tmp_path / "root"
    root_dir.mkdir()
    (root_dir / "app.jar").symlink_to(outside)  # absolute: must re-anchor in the root
    with pytest.raises((JarError, RootError)):
        read_manifest(ConfinedRoot(str(root_dir)), "/app.jar")
