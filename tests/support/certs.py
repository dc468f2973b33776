"""Test certificates made with the real `openssl` command line (Debian package `openssl`).

Why the CLI: it is the tool operators use to mint such certificates, it is already on
every CI image we install, and it keeps a crypto library out of the test dependencies.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, common_name: str) -> CertPair:
    """A self-signed CA certificate and its key."""
    pair = CertPair(directory / f"{common_name}.crt", directory / f"{common_name}.key")
    _run(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "2",
        "-subj", f"/CN={common_name}",
    )  # fmt: skip
    return pair


def make_cert(
    directory: Path, ca: CertPair, common_name: str, *, client: bool = False, stem: str = ""
) -> CertPair:
    """A leaf certificate signed by `ca`: a server cert for 127.0.0.1, or a client cert."""
    stem = stem or common_name
    pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    csr = directory / f"{stem}.csr"
    ext = directory / f"{stem}.ext"
    usage = "clientAuth" if client else "serverAuth"
    ext.write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
    _run(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(pair.key), "-out", str(csr), "-subj", f"/CN={common_name}",
    )  # fmt: skip
    _run(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "2", "-out", str(pair.cert),
        "-extfile", str(ext),
    )  # fmt: skip
    return pair
