"""The exit watcher's tombstones on disk, so an extractor restart does not lose them.

Why: a pod that ends just before the extractor restarts (a crash, an OOM kill, a node
agent update of the container) has its final counters only in the watcher's memory, and
the kubelet removes its cgroup within seconds. The extractor's root filesystem is
read-only; the one place it may write is the directory of its socket (an emptyDir in
the DaemonSet, which lives as long as the pod: it survives a restart of the extractor
container, not the pod's replacement). Tombstones are written there, atomically, a
moment after they change, and read back at start when the file is of the same boot
(boot-clock times mean nothing across a reboot, and every cgroup is new after one).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from extractor.contract import ExitedContainer, Pod

log = logging.getLogger(__name__)

FILE_NAME = "exited.json"
FORMAT = 1


class StoredPod(BaseModel):
    """One pod tombstone as the watcher keeps it."""

    model_config = ConfigDict(extra="forbid")

    pod: Pod
    rel: str
    removed: bool = False
    hidden: bool = False


class StoredContainer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    container: ExitedContainer
    rel: str


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int
    boot_id: str | None
    pods: list[StoredPod]
    containers: list[StoredContainer]


@dataclass
class Stored:
    pods: list[StoredPod]
    containers: list[StoredContainer]


class TombstoneFile:
    """``load`` once at start, ``save`` whenever the tombstones changed."""

    def __init__(self, path: str, boot_id: str | None) -> None:
        self.path = path
        self.boot_id = boot_id
        self.last_error: str | None = None

    def load(self) -> Stored:
        """What the last extractor of this boot left; nothing when there is no such file
        or it cannot be read (said in the log: it was only a safety net)."""
        try:
            with open(self.path, "rb") as f:
                data = _File.model_validate_json(f.read())
        except FileNotFoundError:
            return Stored([], [])
        except (OSError, ValidationError, ValueError) as e:
            log.warning("tombstones in %s not read: %s", self.path, e)
            return Stored([], [])
        if data.format != FORMAT or data.boot_id != self.boot_id or self.boot_id is None:
            return Stored([], [])
        return Stored(data.pods, data.containers)

    def save(self, stored: Stored) -> None:
        """Write atomically; a failure is kept in ``last_error`` (and logged once)."""
        body = orjson.dumps(
            {
                "format": FORMAT,
                "boot_id": self.boot_id,
                "pods": [p.model_dump(mode="json", exclude_defaults=True) for p in stored.pods],
                "containers": [
                    c.model_dump(mode="json", exclude_defaults=True) for c in stored.containers
                ],
            }
        )
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            message = f"cannot keep tombstones in {self.path}: {e.strerror or e}"
            if message != self.last_error:
                log.warning("%s", message)
            self.last_error = message
            return
        self.last_error = None
