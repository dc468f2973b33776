"""Which kind of filesystem an open file descriptor is on, from the kernel's ``fstatfs``.

A path says nothing about what it reaches: a container can mount procfs, sysfs or
debugfs anywhere (a hostPath ``/host/proc``) and point an innocent-looking symlink into
it, so the only trustworthy answer is the superblock's magic number of the descriptor
actually opened. Python's ``os`` has no ``fstatfs`` (``os.fstatvfs`` is POSIX
``statvfs``, which has no filesystem type), hence libc's through ctypes.

The magic numbers are the kernel's (``include/uapi/linux/magic.h``). devtmpfs is not
among them: it reports tmpfs's magic, so it cannot be told apart by type; what it holds
are device nodes, which readers refuse by file type before anything else.
"""

from __future__ import annotations

import ctypes
import os
import platform

PSEUDO_FILESYSTEMS: dict[int, str] = {
    0x9FA0: "proc",
    0x62656572: "sysfs",
    0x64626720: "debugfs",
    0x73636673: "securityfs",
    0x27E0EB: "cgroup",
    0x63677270: "cgroup2",
    0x74726163: "tracefs",
    0xCAFE4A11: "bpf",
    0x1CD1: "devpts",
    0x6165676C: "pstore",
    0xDE5E81E4: "efivarfs",
    0x62656570: "configfs",
    0x65735543: "fusectl",
    0xF97CFF8C: "selinuxfs",
    0x43415D53: "smackfs",
    0x42494E4D: "binfmt_misc",
    0x6E736673: "nsfs",
    0x50494446: "pidfs",
    0x7655821: "resctrl",
    0x19800202: "mqueue",
    0x454D444D: "secretmem",
    0x09041934: "anon_inode",
    0x50495045: "pipefs",
    0x534F434B: "sockfs",
    0xABBA1974: "xenfs",
    0x9FA2: "usbdevfs",
}
"""Kernel interfaces, not files of an image: reading them reads the kernel's or another
process's state (``/proc/self/environ``, ``/sys/firmware/…``, PCI config space)."""


class _StatFs(ctypes.Structure):
    """The head of ``struct statfs``: ``f_type`` is its first member, a native word
    (``__fsword_t``) on every Linux ABI except s390x, where it is 32 bits."""

    _fields_ = [
        ("f_type", ctypes.c_uint if platform.machine() == "s390x" else ctypes.c_long),
        ("_rest", ctypes.c_byte * 248),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_fstatfs = _libc.fstatfs
_fstatfs.argtypes = [ctypes.c_int, ctypes.POINTER(_StatFs)]
_fstatfs.restype = ctypes.c_int


def filesystem_type(fd: int) -> int:
    """The magic number of the filesystem ``fd`` is on (O_PATH descriptors too);
    OSError as ``fstatfs`` reports it."""
    buf = _StatFs()
    if _fstatfs(fd, ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(buf.f_type) & 0xFFFFFFFF


def pseudo_filesystem(fd: int) -> str | None:
    """The name of the kernel pseudo-filesystem ``fd`` is on, None for a real one.

    A descriptor whose filesystem cannot be asked counts as pseudo (``"unknown"``): the
    caller refuses it rather than guess."""
    try:
        kind = filesystem_type(fd)
    except OSError:
        return "unknown"
    return PSEUDO_FILESYSTEMS.get(kind)
