"""Handing the spool directory to the exporter's user, for the init container.

The kubelet creates a hostPath directory as root; the exporter runs as 65532 and must own
its spool. The image has no shell, so this is a subcommand (`runtime-insights
prepare-spool`) rather than `chmod && chown`, and it needs nothing beyond CAP_CHOWN
(the owner may chmod its own directory without CAP_FOWNER, which is why chmod comes first
while root still owns it). The directory is opened without following symlinks and
changed through that descriptor, so a link planted in its place changes nothing.
"""

from __future__ import annotations

import os
import stat

SPOOL_MODE = 0o700


class HandoverError(Exception):
    """The directory cannot be handed over; the message names it and why."""


def parse_owner(text: str) -> tuple[int, int]:
    """``UID:GID`` as numbers (names would need /etc/passwd entries in the image)."""
    uid, sep, gid = text.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise ValueError(f"--owner {text!r}: expected UID:GID, e.g. 65532:65532")
    return int(uid), int(gid)


def hand_over(path: str, uid: int, gid: int) -> None:
    """Make ``path`` (a directory, not a symlink) mode 0700 and owned by ``uid:gid``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise HandoverError(f"{path}: {e.strerror} (expected a directory)") from None
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise HandoverError(f"{path}: not a directory")
        os.fchmod(fd, SPOOL_MODE)
        os.fchown(fd, uid, gid)
    except OSError as e:
        raise HandoverError(
            f"{path}: cannot hand over to {uid}:{gid}: {e.strerror} (needs CAP_CHOWN)"
        ) from None
    finally:
        os.close(fd)
