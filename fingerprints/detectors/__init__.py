"""One detector per runtime (and one for the OS), each a pure function of a ``ProcessView``.

``registry.DETECTORS`` is the order the engine runs them in; each module says what it
reads and which insights-runtime-extractor value it reproduces.
"""

from fingerprints.detectors.os_release import OsInfo, detect_os
from fingerprints.detectors.registry import DETECTORS

__all__ = ["DETECTORS", "OsInfo", "detect_os"]
