"""Python processes (CPython, PyPy): version without running ``python --version``.

X.Y comes from the interpreter's name (``python3.11``) or the mapped ``libpythonX.Y.so``;
the patch level from ``PY_VERSION`` in the binary (a NUL-ended ``3.11.2``, possibly the
tail of a merged string such as ``…/versions/3.12.1``), then ``patchlevel.h`` and
``pyvenv.cfg``. Output follows insights-runtime-extractor: kind ``Python``, version
``Python 3.11.2``. Python 2 is the one deliberate difference: that tool captures only the
stdout of ``python --version`` and Python 2 prints it on stderr, so it reports Python 2
without a version (an accident of executing, which its e2e test records as the way to
recognise Python 2); reading the binary gives the real ``Python 2.7.18``, and a consumer
still tells Python 2 from 3 by the version itself. PyPy is kind ``Python`` with
implementer ``PyPy`` (language version as the version, PyPy's own in ``extra``).
Frameworks are reported only when the command line or the entry script names them, with
the version of the installed distribution.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter

from fingerprints.base import ContainerRoot, Detection, FingerprintError, ProcessView, Reader
from fingerprints.reading.binscan import iter_matches, scan_strings, string_ranges
from fingerprints.reading.evidence import (
    absolute,
    clean_path,
    exe_name,
    library_reader,
    listdir,
    mapped,
    parse_properties,
    read_text,
)
from fingerprints.reading.rootfs import BudgetExceeded

KIND = "Python"

_EXE = re.compile(r"^(?:python|pypy)(\d(?:\.\d+)?)?[dmu]?$")
_LIBPYTHON = re.compile(r"/lib(python|pypy)(\d\.\d+)?[a-z]*(?:-c)?\.so(?:[.\d]*)$")
_STDLIB_DIR = re.compile(r"/lib/python(\d\.\d+)/")
_PYPY = re.compile(rb"\[PyPy (\d+\.\d+\.\d+)[^\x00]{0,40}\x00")
_PYPY_LANG = re.compile(rb"\x00(\d\.\d+\.\d+) \([^)\x00]{0,80}\)")
_PATCHLEVEL = re.compile(r'#define PY_VERSION\s+"([^"]+)"')
_MAX_HITS = 64
FRAMEWORKS = {
    "django": "Django",
    "flask": "Flask",
    "fastapi": "FastAPI",
    "gunicorn": "Gunicorn",
    "uvicorn": "Uvicorn",
}
_MODULE = re.compile(r"[A-Za-z_]\w*")
_SCRIPT_CAP = 64 << 10


_VERSION_PRECEDED_BY = b"\x00/-"
"""A standalone string, or the tail of a merged one (``…/versions/3.12.1``, ``…-3.12.1``)."""


def _version_pattern(major_minor: str | None) -> re.Pattern[bytes]:
    prefix = re.escape(major_minor.encode()) if major_minor else rb"[23]\.\d{1,2}"
    return re.compile(b"(" + prefix + rb"\.\d{1,3}(?:(?:a|b|rc)\d{1,2})?\+?)\x00")


def binary_version(read: Reader, major_minor: str | None) -> str | None:
    """PY_VERSION: the first standalone (NUL-preceded) version string for this X.Y, else
    the most frequent tail of a merged string (pyenv builds have no standalone copy)."""
    tails: Counter[str] = Counter()
    pattern = _version_pattern(major_minor)
    for offset, length in string_ranges(read):
        for match in iter_matches(read, pattern, offset, length, _VERSION_PRECEDED_BY):
            version = match.group(1).decode()
            if match.string[match.start() - 1] == 0:
                return version
            tails[version] += 1
            if sum(tails.values()) >= _MAX_HITS:
                break
    return tails.most_common(1)[0][0] if tails else None


def _pypy(read: Reader) -> tuple[str, str | None] | None:
    """(PyPy version, language version) when the binary is PyPy."""
    hit = scan_strings(read, _PYPY)
    if not hit:
        return None
    lang = scan_strings(read, _PYPY_LANG)
    return hit[0].group(1).decode(), lang[0].group(1).decode() if lang else None


def _major_minor(view: ProcessView, libpython: str | None) -> str | None:
    for source in (exe_name(view), posixpath.basename(libpython or "")):
        match = re.search(r"(?:python|pypy)(\d\.\d+)", source)
        if match:
            return match.group(1)
    for path in view.maps:
        match = _STDLIB_DIR.search(path)
        if match:
            return match.group(1)
    return None


def _file_version(view: ProcessView, major_minor: str | None) -> str | None:
    """patchlevel.h of the install, else the venv's pyvenv.cfg."""
    root = view.root
    prefix = posixpath.dirname(posixpath.dirname(clean_path(view.exe)))
    if major_minor:
        text = read_text(root, f"{prefix}/include/python{major_minor}/patchlevel.h")
        match = _PATCHLEVEL.search(text or "")
        if match:
            return match.group(1)
    for venv in _venvs(view):
        cfg = parse_properties(read_text(root, f"{venv}/pyvenv.cfg") or "")
        version = cfg.get("version") or cfg.get("version_info", "").rsplit(".", 2)[0]
        if version:
            return version
    return None


def _venvs(view: ProcessView) -> list[str]:
    out = []
    if view.environ.get("VIRTUAL_ENV"):
        out.append(view.environ["VIRTUAL_ENV"])
    if view.argv and "/bin/" in view.argv[0]:
        out.append(posixpath.dirname(posixpath.dirname(absolute(view, view.argv[0]))))
    return out


def _site_dirs(view: ProcessView, major_minor: str | None) -> list[str]:
    """Where installed distributions may be: maps, venv, PYTHONPATH, usual prefixes."""
    dirs: dict[str, None] = {}
    for path in view.maps:
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in path:
                dirs.setdefault(path.split(marker)[0] + marker.rstrip("/"), None)
    for entry in view.environ.get("PYTHONPATH", "").split(":"):
        if entry:
            dirs.setdefault(absolute(view, entry), None)
    if major_minor:
        for venv in _venvs(view):
            dirs.setdefault(f"{venv}/lib/python{major_minor}/site-packages", None)
        dirs.setdefault(f"/usr/local/lib/python{major_minor}/site-packages", None)
    dirs.setdefault("/usr/lib/python3/dist-packages", None)
    return list(dirs)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _wanted(view: ProcessView) -> set[str]:
    """Framework modules the command line names or the entry script imports."""
    wanted: set[str] = set()
    args = view.argv[1:]
    for i, arg in enumerate(args):
        name = posixpath.basename(arg).split(":")[0].split(".")[0].lower()
        if name in FRAMEWORKS:
            wanted.add(name)
        if arg == "-m" and i + 1 < len(args) and args[i + 1].split(".")[0] in FRAMEWORKS:
            wanted.add(args[i + 1].split(".")[0])
        if posixpath.basename(arg) == "manage.py":
            wanted.add("django")
    for script in _entry_scripts(view):
        text = read_text(view.root, script, max_bytes=_SCRIPT_CAP) or ""
        wanted.update(m for m in imported_modules(text) if m in FRAMEWORKS)
    return wanted


def imported_modules(text: str) -> list[str]:
    """Top-level modules named by ``import x`` / ``from x import …`` lines, read line by
    line (each character once: the script is the container's)."""
    out = []
    for line in text.split("\n"):
        words = line.split(None, 2)
        if len(words) >= 2 and words[0] in ("import", "from"):
            match = _MODULE.match(words[1])
            if match:
                out.append(match.group())
    return out


def _entry_scripts(view: ProcessView) -> list[str]:
    """The script python runs and ``module:app`` targets (uvicorn/gunicorn) in the cwd."""
    scripts = []
    for arg in view.argv[1:]:
        if arg.endswith(".py"):
            scripts.append(absolute(view, arg))
        elif re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", arg):
            scripts.append(absolute(view, arg.split(":")[0].replace(".", "/") + ".py"))
    return scripts[:4]


def _dist_version(root: ContainerRoot, site_dirs: list[str], module: str) -> str | None:
    for site in site_dirs:
        for entry in listdir(root, site):
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            name = entry.rsplit(".", 1)[0]
            dist, _, version = name.partition("-")
            if _normalise(dist) == module:
                meta = read_text(root, f"{site}/{entry}/METADATA") or read_text(
                    root, f"{site}/{entry}/PKG-INFO"
                )
                match = re.search(r"^Version:\s*(\S+)", meta or "", re.MULTILINE)
                return match.group(1) if match else (version or None)
    return None


def frameworks(view: ProcessView, major_minor: str | None) -> list[tuple[str, str | None]]:
    """Named frameworks and servers, with installed versions when found."""
    wanted = _wanted(view)
    if not wanted:
        return []
    sites = _site_dirs(view, major_minor)
    return [
        (label, _dist_version(view.root, sites, module))
        for module, label in FRAMEWORKS.items()
        if module in wanted
    ]


def detect(view: ProcessView) -> Detection | None:
    """Kind ``Python`` with ``Python X.Y.Z`` as ``python --version`` prints it."""
    lib = mapped(view, _LIBPYTHON)
    if not _EXE.match(exe_name(view)) and lib is None:
        return None
    libpython = lib[0] if lib else None
    major_minor = _major_minor(view, libpython)
    read = library_reader(view, libpython) if libpython else view.read_exe
    found = Detection(kind=KIND)
    version: str | None = None
    try:
        pypy = _pypy(read) if "pypy" in posixpath.basename(libpython or view.exe) else None
        if pypy is not None:
            found.kind_implementer = "PyPy"
            found.extra["pypyVersion"] = pypy[0]
            version = pypy[1]
        else:
            version = binary_version(read, major_minor)
    except BudgetExceeded:
        raise
    except (FingerprintError, OSError) as exc:
        found.extra["pythonError"] = f"python binary: {exc}"
    version = version or _file_version(view, major_minor)
    if version:
        found.kind_version = f"Python {version}"
    found.runtimes = frameworks(view, major_minor)
    return found
