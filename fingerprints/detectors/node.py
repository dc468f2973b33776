"""Node.js processes: version from the binary's own strings, never ``node --version``.

insights-runtime-extractor executes the container's ``node --version``; the same value
(``v22.6.0``) is compiled into the runtime as the inspector's ``node.js/vX.Y.Z`` string
and the release download URL, in the ``node`` executable or, for distribution builds, in
the mapped ``libnode.so``. ``include/node/node_version.h`` next to the install is the
fallback. Express / Next.js & co are reported only when the application's own
``package.json`` depends on them, with the version actually installed in node_modules.
"""

from __future__ import annotations

import posixpath
import re

from fingerprints.base import ContainerRoot, Detection, FingerprintError, ProcessView, Reader
from fingerprints.reading.binscan import first_string
from fingerprints.reading.evidence import (
    absolute,
    clean_path,
    exe_name,
    library_reader,
    mapped,
    parse_json,
    read_text,
)
from fingerprints.reading.rootfs import BudgetExceeded

KIND = "Node.js"

_EXE_NAMES = frozenset({"node", "nodejs"})
_LIBNODE = re.compile(r"/libnode\.so\.(\d+)$")
_VERSIONS = (
    re.compile(rb"node\.js/v(\d{1,3}\.\d{1,4}\.\d{1,4})\x00"),
    re.compile(rb"/download/release/v(\d{1,3}\.\d{1,4}\.\d{1,4})/node-v"),
)
"""The inspector's ``node.js/vX.Y.Z``, then the release URL; one literal-led pattern each,
because an alternation makes Python's re scan ~10x slower."""
_HEADER_DEFINE = re.compile(r"#define NODE_(MAJOR|MINOR|PATCH)_VERSION (\d+)")
_OPTS_WITH_VALUE = frozenset(
    {"-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions",
     "--inspect-port", "--title", "--env-file", "--max-old-space-size"}
)  # fmt: skip
FRAMEWORKS = {
    "express": "Express",
    "next": "Next.js",
    "@nestjs/core": "NestJS",
    "fastify": "Fastify",
    "koa": "Koa",
}
_PACKAGE_JSON_CAP = 1 << 20
_MAX_PARENTS = 8


def _binary_version(read: Reader) -> str | None:
    for pattern in _VERSIONS:
        hit = first_string(read, pattern)
        if hit is not None:
            return "v" + hit.group(1).decode()
    return None


def _header_version(root: ContainerRoot, exe: str) -> str | None:
    prefix = posixpath.dirname(posixpath.dirname(exe))
    text = read_text(root, f"{prefix}/include/node/node_version.h", max_bytes=256 << 10)
    if text is None:
        return None
    parts = dict(_HEADER_DEFINE.findall(text))
    if {"MAJOR", "MINOR", "PATCH"} <= parts.keys():
        return f"v{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCH']}"
    return None


def main_script(argv: list[str]) -> str | None:
    """The script node runs (first non-option argument), None for ``-e``/REPL."""
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-e", "--eval", "-p", "--print", "-i", "--interactive"):
            return None
        if arg == "--":
            return next(args, None)
        if arg in _OPTS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _read_json(root: ContainerRoot, path: str) -> dict[str, object] | None:
    text = read_text(root, path, max_bytes=_PACKAGE_JSON_CAP)
    if text is None:
        return None
    data = parse_json(text)
    return data if isinstance(data, dict) else None


def _app_dirs(view: ProcessView) -> list[str]:
    """Directories to search upwards from: the main script's, then the cwd."""
    starts: list[str] = []
    script = main_script(view.argv)
    if script:
        starts.append(posixpath.dirname(absolute(view, script)))
    if view.cwd:
        starts.append(view.cwd)
    return starts


def _app_package(view: ProcessView) -> tuple[str, dict[str, object]] | None:
    """(app dir, package.json) nearest above the script (or cwd)."""
    for start in _app_dirs(view):
        directory = start
        for _ in range(_MAX_PARENTS):
            data = _read_json(view.root, f"{directory}/package.json")
            if data is not None:
                return directory, data
            if directory in ("/", ""):
                break
            directory = posixpath.dirname(directory)
    return None


def frameworks(view: ProcessView) -> list[tuple[str, str | None]]:
    """Frameworks the app depends on, with their installed versions."""
    found = _app_package(view)
    if found is None:
        return []
    app_dir, package = found
    declared: set[str] = set()
    for section in ("dependencies", "devDependencies"):
        deps = package.get(section)
        if isinstance(deps, dict):
            declared.update(str(name) for name in deps)
    out: list[tuple[str, str | None]] = []
    for package_name, label in FRAMEWORKS.items():
        if package_name not in declared:
            continue
        installed = _read_json(view.root, f"{app_dir}/node_modules/{package_name}/package.json")
        version = installed.get("version") if installed else None
        out.append((label, version if isinstance(version, str) and version else None))
    return out


def detect(view: ProcessView) -> Detection | None:
    """Kind ``Node.js`` with ``vX.Y.Z`` as ``node --version`` prints it."""
    libnode = mapped(view, _LIBNODE)
    if exe_name(view) not in _EXE_NAMES and libnode is None:
        return None
    found = Detection(kind=KIND)
    try:
        if libnode is not None:
            found.kind_version = _binary_version(library_reader(view, libnode[0]))
            found.extra["nodeModuleVersion"] = int(libnode[1].group(1))
        else:
            found.kind_version = _binary_version(view.read_exe)
    except BudgetExceeded:
        raise
    except (FingerprintError, OSError) as exc:
        found.extra["nodeError"] = f"node binary: {exc}"
    if found.kind_version is None:
        found.kind_version = _header_version(view.root, clean_path(view.exe))
    found.runtimes = frameworks(view)
    return found
