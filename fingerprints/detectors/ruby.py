"""Ruby processes (CRuby): version from the ``ruby X.Y.ZpN (date revision …)`` banner.

The banner that ``ruby --version`` prints is a constant in ``libruby`` (or in a static
``ruby``); reading it needs no execution. Kind ``Ruby``, version ``3.1.2`` (RUBY_VERSION),
patch level in ``extra``. Rails / Puma / Sinatra come from the app's ``Gemfile.lock`` when
listed as direct dependencies (its DEPENDENCIES section).
"""

from __future__ import annotations

import re

from fingerprints.base import Detection, ProcessView
from fingerprints.reading.evidence import interpreter, read_text

KIND = "Ruby"

_EXE = re.compile(r"^ruby(\d+(?:\.\d+)*)?$")
_LIBRUBY = re.compile(r"/libruby(?:-\d+\.\d+)?\.so(?:[.\d]*)$")
_BANNER = re.compile(rb"ruby (\d+\.\d+\.\d+)(p\d+|preview\d*|rc\d*|dev)? \(\d{4}-\d\d-\d\d")
FRAMEWORKS = {"rails": "Ruby on Rails", "puma": "Puma", "sinatra": "Sinatra", "sidekiq": "Sidekiq"}
_GEM_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _spec(line: str) -> tuple[str, str] | None:
    """``    name (version)``: a locked gem, indented exactly four spaces."""
    if not line.startswith("    ") or line[4:5] == " " or not line.endswith(")"):
        return None
    name, sep, version = line[4:-1].partition(" (")
    if not sep or not version or ")" in version or not _GEM_NAME.fullmatch(name):
        return None
    return name, version


def gemfile_frameworks(lock: str) -> list[tuple[str, str | None]]:
    """Direct dependencies of a Gemfile.lock that are known frameworks, with locked
    versions. Read line by line, each line once: the lock file is the container's."""
    specs: dict[str, str] = {}
    direct: set[str] = set()
    in_deps = False
    for line in lock.split("\n"):
        if in_deps:
            if not line:
                in_deps = False
            elif line.startswith("  "):
                direct.add(line.strip().split(" ")[0].rstrip("!"))
            continue
        if line == "DEPENDENCIES":
            in_deps = True
            continue
        spec = _spec(line)
        if spec is not None:
            specs[spec[0]] = spec[1]
    return [(label, specs.get(gem)) for gem, label in FRAMEWORKS.items() if gem in direct]


def detect(view: ProcessView) -> Detection | None:
    """Kind ``Ruby`` with RUBY_VERSION."""
    seen = interpreter(view, KIND, _EXE, _LIBRUBY, _BANNER)
    if seen is None:
        return None
    found, banner = seen
    if banner is not None:
        found.kind_version = banner.group(1).decode()
        if banner.group(2):
            found.extra["rubyPatchlevel"] = banner.group(2).decode()
    lock = read_text(view.root, f"{view.cwd}/Gemfile.lock", max_bytes=1 << 20)
    if lock:
        found.runtimes = gemfile_frameworks(lock)
    return found
