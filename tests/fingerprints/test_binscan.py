"""Chunked string scans: every match once, across chunk borders, never past the cap."""

from __future__ import annotations

import re

from fingerprints.reading import binscan
from fingerprints.reading.elf import bytes_reader

PATTERN = re.compile(rb"node\.js/v(\d+\.\d+\.\d+)\x00")


def test_match_straddling_a_chunk_border_is_found_once() -> None:
    needle = b"node.js/v20.20.2\x00"
    for shift in range(-len(needle), 2):
        data = bytearray(3 * binscan.CHUNK)
        at = binscan.CHUNK + shift
        data[at : at + len(needle)] = needle
        hits = list(binscan.iter_matches(bytes_reader(bytes(data)), PATTERN))
        assert [h.group(1) for h in hits] == [b"20.20.2"], shift


def test_repeated_matches_are_each_reported_once() -> None:
    data = (b"\x00" * 1000 + b"node.js/v1.2.3\x00") * 3000
    hits = list(binscan.iter_matches(bytes_reader(data), PATTERN))
    assert len(hits) == data.count(b"node.js/v1.2.3\x00")


def test_scan_stops_at_the_cap() -> None:
    data = bytes(binscan.SCAN_CAP + binscan.CHUNK) + b"node.js/v9.9.9\x00"
    read_calls: list[int] = []
    read = bytes_reader(data)

    def counting(offset: int, n: int) -> bytes:
        read_calls.append(offset + n)
        return read(offset, n)

    assert list(binscan.iter_matches(counting, PATTERN, 0, len(data))) == []
    assert max(read_calls) <= binscan.SCAN_CAP


def test_non_elf_files_are_scanned_from_the_start() -> None:
    assert binscan.string_ranges(bytes_reader(b"#!/bin/sh\n")) == [(0, binscan.SCAN_CAP)]


def test_elf_scan_uses_rodata_of_a_real_binary() -> None:
    with open("/bin/ls", "rb") as f:
        data = f.read()
    ranges = binscan.string_ranges(bytes_reader(data))
    assert ranges and all(0 < off < len(data) and off + size <= len(data) for off, size in ranges)
