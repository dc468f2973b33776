"""Names of block devices, for the ``major:minor`` numbers the cgroup I/O files give.

The kernel names each device in ``/sys/dev/block/<major>:<minor>/uevent`` (``DEVNAME``);
sysfs is the same kernel's wherever it is mounted, so the extractor's own ``/sys`` will
do. Devices rarely come and go, so each number is looked up once (an unknown one again
after a while, in case it appeared).
"""

from __future__ import annotations

import time

from extractor.contract import Snapshot, Usage
from hostfs import read_small

SYS_DEV_BLOCK = "/sys/dev/block"
RETRY_SECONDS = 60.0


class BlockDevices:
    """``"major:minor"`` → kernel name, cached."""

    def __init__(self, root: str = SYS_DEV_BLOCK) -> None:
        self.root = root
        self._names: dict[str, str] = {}
        self._unknown: dict[str, float] = {}

    def name(self, number: str) -> str | None:
        known = self._names.get(number)
        if known is not None:
            return known
        if time.monotonic() - self._unknown.get(number, -RETRY_SECONDS) < RETRY_SECONDS:
            return None
        try:
            uevent = read_small(f"{self.root}/{number}/uevent", 1 << 14).decode("utf-8", "replace")
        except OSError:
            uevent = ""
        for line in uevent.splitlines():
            if line.startswith("DEVNAME="):
                self._names[number] = line[8:]
                return line[8:]
        self._unknown[number] = time.monotonic()
        return None

    def names(self, snapshot: Snapshot) -> dict[str, str]:
        """The names of every device the snapshot's block I/O mentions."""
        numbers: set[str] = set()
        for usage in _usages(snapshot):
            if usage.block_io:
                numbers.update(f"{d.major}:{d.minor}" for d in usage.block_io)
        out: dict[str, str] = {}
        for number in sorted(numbers):
            found = self.name(number)
            if found is not None:
                out[number] = found
        return out


def _usages(snapshot: Snapshot) -> list[Usage]:
    found = [c.usage for c in snapshot.containers if c.usage is not None]
    found.extend(p.usage for p in snapshot.pods if p.usage is not None)
    found.extend(p.usage for p in snapshot.exited_pods if p.usage is not None)
    return found
