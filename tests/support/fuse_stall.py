"""A FUSE filesystem whose files can be opened but never read: a read waits forever.

What a hostile container can mount inside itself (it only needs /dev/fuse) to make any
reader of its files block in the kernel: no timeout in a parser helps, only abandoning
the reader does. Run as ``python3 fuse_stall.py MOUNTPOINT [NAME…]`` (root, stdlib only,
so it runs inside a test's private mount namespace before the container's chroot): each
NAME is a regular file of 4 KiB at the root of the mount; lookups, attributes and opens
are answered, reads of those files never are. It speaks the kernel's FUSE protocol
directly on /dev/fuse (include/uapi/linux/fuse.h, protocol 7.26) and exits when the
mount goes away.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys

LOOKUP, FORGET, GETATTR, OPEN, READ, STATFS, RELEASE = 1, 2, 3, 14, 15, 17, 18
GETXATTR, LISTXATTR, FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR = 22, 23, 25, 26, 27, 28, 29
ACCESS, INTERRUPT, DESTROY, BATCH_FORGET = 34, 36, 38, 42
NO_REPLY = {FORGET, INTERRUPT, BATCH_FORGET}
MS_NOSUID, MS_NODEV = 2, 4
IN_HEADER = struct.Struct("<IIQQIIII")
OUT_HEADER = struct.Struct("<IiQ")
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
FILE_SIZE = 4096


def attr(node: int) -> bytes:
    mode = 0o40555 if node == 1 else 0o100444
    size = 0 if node == 1 else FILE_SIZE
    return ATTR.pack(node, size, 8, 0, 0, 0, 0, 0, 0, mode, 1, 0, 0, 0, 4096, 0)


def main(mountpoint: str, names: list[str]) -> int:
    nodes = {name.encode(): i + 2 for i, name in enumerate(names or ["os-release"])}
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"ri-stall", mountpoint.encode(), b"fuse", MS_NOSUID | MS_NODEV, options):
        print(f"mount: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1

    def reply(unique: int, payload: bytes = b"", error: int = 0) -> None:
        os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(payload), -error, unique) + payload)

    while True:
        try:
            request = os.read(fd, (1 << 20) + 4096)
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.EBADF):  # unmounted
                return 0
            if e.errno == errno.EINTR:
                continue
            raise
        length, opcode, unique, node, *_ = IN_HEADER.unpack_from(request)
        body = request[IN_HEADER.size : length]
        if opcode in NO_REPLY or opcode == READ:
            continue  # a read is never answered: the reader waits until it is killed
        if opcode == INIT:
            readahead = struct.unpack_from("<III", body)[2]
            reply(unique, struct.pack("<IIIIHHIIHHII6I", 7, 26, readahead, 0, 1, 1, 4096, 1,
                                      1, 0, 0, 0, *([0] * 6)))  # fmt: skip
        elif opcode == LOOKUP:
            child = nodes.get(body.rstrip(b"\0")) if node == 1 else None
            if child is None:
                reply(unique, error=errno.ENOENT)
            else:
                reply(unique, struct.pack("<QQQQII", child, 0, 60, 60, 0, 0) + attr(child))
        elif opcode == GETATTR:
            reply(unique, struct.pack("<QII", 60, 0, 0) + attr(node))
        elif opcode == STATFS:
            reply(unique, struct.pack("<QQQQQIIII6I", 1, 0, 0, 8, 0, 4096, 255, 4096, 0,
                                      *([0] * 6)))  # fmt: skip
        elif opcode in (OPEN, OPENDIR):
            reply(unique, struct.pack("<QII", 1, 0, 0))
        elif opcode in (READDIR, FLUSH, RELEASE, RELEASEDIR, ACCESS):
            reply(unique)
        elif opcode == DESTROY:
            return 0
        else:
            reply(unique, error=errno.ENOSYS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
