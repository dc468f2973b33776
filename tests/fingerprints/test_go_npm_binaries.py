"""Real Go binaries for other architectures, from esbuild's npm platform packages.

esbuild 0.14.8 was built with Go 1.17 (pre-1.18 *pointer* format) for 386 (32-bit),
amd64, arm64 and s390x (big-endian): one toolchain for every platform of a release, so
all four must agree, and the version must equal the ``runtime.buildVersion`` text found
independently in the file. Module path and main module must match the package's
``repository``. esbuild >= 0.27 ships without build info (pclntab fallback).
Tarballs are fetched with ``npm pack`` once into pytest's cache directory.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from fingerprints.detectors.golang import read_go_info
from fingerprints.reading.elf import ElfFile, bytes_reader

OLD = ["esbuild-linux-64", "esbuild-linux-32", "esbuild-linux-arm64", "esbuild-linux-s390x"]
OLD_VERSION = "0.14.8"
NEW = ("@esbuild/linux-x64", "0.27.0")
GO_STRING = re.compile(rb"(?<![0-9A-Za-z._/-])(go1\.\d+(?:\.\d+)?)(?![0-9A-Za-z.])")


def fetch(cache_dir: Path, package: str, version: str) -> tuple[bytes, dict[str, object]]:
    """(bin/esbuild bytes, package.json) of one npm package version."""
    dest = cache_dir / f"{package.replace('/', '_')}-{version}"
    if not (dest / "package" / "bin" / "esbuild").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed")
        tmp = cache_dir / "download"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            out = subprocess.run(
                [npm, "pack", "--silent", "--pack-destination", str(tmp), f"{package}@{version}"],
                capture_output=True,
                text=True,
                timeout=180,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm registry did not answer")
        if out.returncode != 0:
            pytest.skip(f"npm registry not reachable: {out.stderr.strip()[:200]}")
        with tarfile.open(tmp / out.stdout.strip().splitlines()[-1]) as tar:
            tar.extractall(dest, filter="data")
    binary = (dest / "package" / "bin" / "esbuild").read_bytes()
    meta = json.loads((dest / "package" / "package.json").read_text())
    return binary, meta


@pytest.fixture(scope="module")
def cache_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("esbuild-npm"))


def _repository(meta: dict[str, object]) -> str:
    repo = meta["repository"]
    url = repo["url"] if isinstance(repo, dict) else repo
    assert isinstance(url, str)
    return re.sub(r"^(git\+)?https?://", "", url).removesuffix(".git")


def test_pointer_format_on_four_architectures(cache_dir: Path) -> None:
    seen = {}
    for package in OLD:
        binary, meta = fetch(cache_dir, package, OLD_VERSION)
        elf = ElfFile(bytes_reader(binary))
        info = read_go_info(bytes_reader(binary))
        assert info is not None and info.format == "pointer", package
        in_file = {m.group(1).decode() for m in GO_STRING.finditer(binary)}
        assert info.version in in_file, package
        repo = _repository(meta)
        assert info.main_module == repo and info.path == f"{repo}/cmd/esbuild"
        seen[package] = (elf.is64, elf.big_endian, info.version)
    assert {v for _, _, v in seen.values()} == {seen[OLD[0]][2]}, seen
    assert seen["esbuild-linux-32"][:2] == (False, False)
    assert seen["esbuild-linux-s390x"][:2] == (True, True)


def test_binary_without_buildinfo_falls_back_to_pclntab(cache_dir: Path) -> None:
    binary, _ = fetch(cache_dir, *NEW)
    assert b"\xff Go buildinf:" not in binary
    info = read_go_info(bytes_reader(binary))
    assert info is not None
    assert (info.format, info.confidence) == ("pclntab", "heuristic")
    assert info.settings["pclntab"] == ">=go1.20"
    m = re.fullmatch(r"go1\.(\d+)\.\d+", info.version or "")
    assert m is not None and int(m.group(1)) >= 20
