"""PHP processes (CLI, FPM, CGI, Apache mod_php): version from the binary.

PHP's version is compiled into the ``X-Powered-By: PHP/8.2.36`` header constant (the
only standalone copy, the rest is tail-merged into it). Kind ``PHP``, version ``8.2.36``.
php-fpm rewrites its command line, so only the executable and maps are trusted. Laravel,
Symfony and WordPress versions come from the app dir (cwd) when installed there.
"""

from __future__ import annotations

import re

from fingerprints.base import ContainerRoot, Detection, ProcessView
from fingerprints.reading.evidence import (
    interpreter,
    parse_json,
    read_text,
)

KIND = "PHP"

_EXE = re.compile(r"^php(?:-fpm|-cgi)?(\d+(?:\.\d+)*)?$")
_LIBPHP = re.compile(r"/libphp[\d.]*\.so$")
_VERSION = re.compile(rb"X-Powered-By: PHP/(\d+\.\d+\.\d+[^\x00]{0,40})\x00")
_WORDPRESS = re.compile(r"\$wp_version\s*=\s*'([^']+)'")
COMPOSER_FRAMEWORKS = {"laravel/framework": "Laravel", "symfony/http-kernel": "Symfony"}


def composer_frameworks(installed: str) -> list[tuple[str, str | None]]:
    """Known frameworks in ``vendor/composer/installed.json`` (v1 list or v2 object)."""
    data = parse_json(installed)
    packages = data.get("packages", []) if isinstance(data, dict) else data
    out: list[tuple[str, str | None]] = []
    for package in packages if isinstance(packages, list) else []:
        if not isinstance(package, dict):
            continue
        label = COMPOSER_FRAMEWORKS.get(str(package.get("name")))
        version = package.get("version")
        if label:
            out.append((label, str(version).removeprefix("v") or None if version else None))
    return out


def _apps(root: ContainerRoot, cwd: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    installed = read_text(root, f"{cwd}/vendor/composer/installed.json", max_bytes=4 << 20)
    if installed:
        out.extend(composer_frameworks(installed))
    wp = _WORDPRESS.search(read_text(root, f"{cwd}/wp-includes/version.php") or "")
    if wp:
        out.append(("WordPress", wp.group(1)))
    return out


def detect(view: ProcessView) -> Detection | None:
    """Kind ``PHP`` with PHP_VERSION."""
    seen = interpreter(view, KIND, _EXE, _LIBPHP, _VERSION)
    if seen is None:
        return None
    found, hit = seen
    if hit is not None:
        found.kind_version = hit.group(1).decode("ascii", "replace")
    found.runtimes = _apps(view.root, view.cwd)
    return found
