"""The detectors the engine runs on every chosen process, in priority order.

The first detection that names a kind wins the kind fields; runtimes and extra fields of
every detection are merged. Each detector module appends its entry point here.
"""

from __future__ import annotations

from fingerprints.base import Detector
from fingerprints.detectors import (
    dotnet,
    erlang,
    graalvm,
    java,
    node,
    perl,
    php,
    python,
    ruby,
    rust,
)
from fingerprints.detectors.golang import detect_go

DETECTORS: list[Detector] = [
    detect_go,
    java.detect,
    graalvm.detect,
    node.detect,
    python.detect,
    dotnet.detect,
    ruby.detect,
    php.detect,
    perl.detect,
    erlang.detect,
    rust.detect,
]
