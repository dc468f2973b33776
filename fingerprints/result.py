"""What the engine found about one container, in insights-runtime-extractor's field names.

Those names (``os``, ``osVersion``, ``kind``, ``kindVersion``, ``kindImplementer``,
``runtimes``) are what that tool's consumers read, so they are kept as they are; detectors
may add more under names of their own (``extra``), never rename these. The extractor turns
a result into its snapshot contract's ``Fingerprint`` (``extractor/fingerprinting.py``):
this package stays independent of the extractor, so it can be tested and run on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class Component(NamedTuple):
    """A framework or server found inside a runtime (Spring Boot, Quarkus, Tomcat, …)."""

    name: str
    version: str | None = None


@dataclass(frozen=True)
class Result:
    """One container's OS and runtime; ``None`` means not found, ``error`` what failed."""

    os: str | None = None
    osVersion: str | None = None  # camelCase: insights-runtime-extractor's names
    kind: str | None = None
    kindVersion: str | None = None
    kindImplementer: str | None = None
    runtimes: tuple[Component, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)
    error: str | None = None

    def fields(self) -> dict[str, object]:
        """Every field with a value, extras included, as plain JSON-ready values: empty
        ones are left out, as insights-runtime-extractor leaves them out (``omitempty``),
        so that nothing downstream hashes or publishes an empty string."""
        out: dict[str, object] = {
            key: value
            for key in ("os", "osVersion", "kind", "kindVersion", "kindImplementer")
            if (value := getattr(self, key))
        }
        runtimes = [
            {"name": c.name, "version": c.version} if c.version else {"name": c.name}
            for c in self.runtimes
            if c.name
        ]
        if runtimes:
            out["runtimes"] = runtimes
        out.update((k, v) for k, v in self.extra.items() if v != "" and v is not None)
        if self.error:
            out["error"] = self.error
        return out
