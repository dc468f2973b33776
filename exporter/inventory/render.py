"""The inventory for a person (a terminal table) and for a spreadsheet (CSV); JSON is the
document itself (exporter/inventory/build.py)."""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = ("RUNTIME", "FRAMEWORKS", "OS", "CTRS", "PODS", "NS", "CPU-S", "SHARE", "FLAGS")
CSV_COLUMNS = (
    "os", "osVersion", "kind", "kindVersion", "kindImplementer", "frameworks", "identified",
    "containers", "pods", "namespaces", "owners", "cpuSeconds", "cpuShare", "cpuCores",
    "endOfLife",
)  # fmt: skip


def _frameworks(row: dict[str, Any]) -> str:
    return ", ".join(f"{f['name']} {f['version'] or ''}".strip() for f in row["frameworks"])


def _flags(row: dict[str, Any]) -> str:
    flags = [f"EOL {e['component']} ({e['eol']})" for e in row["endOfLife"]]
    if not row["identified"]:
        flags.append("UNIDENTIFIED")
    return "; ".join(flags)


def _seconds(value: float) -> str:
    return f"{value:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"


def table(inventory: dict[str, Any]) -> str:
    """Columns padded to their widest cell, the flags spelled out below."""
    nodes, totals, window = inventory["nodes"], inventory["totals"], inventory["window"]
    failed = ", ".join(f["node"] for f in nodes["failed"])
    lines = [
        f"{len(nodes['ok'])} nodes answered"
        + (f", {len(nodes['failed'])} did not ({failed}): not counted" if failed else "")
        + f"; {totals['containers']} containers in {totals['pods']} pods, "
        f"{totals['namespaces']} namespaces; {_seconds(totals['cpuSeconds'])} CPU seconds "
        f"from {window['from'] or '?'} to {window['to'] or '?'} ({_duration(window['seconds'])})",
        "",
    ]
    cells = [COLUMNS] + [
        (
            row["label"],
            _frameworks(row) or "-",
            f"{row['os'] or ''} {row['osVersion'] or ''}".strip() or "-",
            str(row["containers"]),
            str(row["pods"]),
            str(len(row["namespaces"])),
            _seconds(row["cpuSeconds"]),
            f"{row['cpuShare'] * 100:.1f}%",
            _flags(row),
        )
        for row in inventory["runtimes"]
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    numeric = {3, 4, 5, 6, 7}
    for r in cells:
        padded = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    flags = inventory["flags"]
    if flags["endOfLife"] or flags["unidentified"] or flags["mixedVersions"]:
        lines += ["", "Flags:"]
    for eol in flags["endOfLife"]:
        lines.append(
            f"  end of life: {eol['component']} since {eol['eol']} ({eol['source']}): "
            f"{eol['containers']} containers, {_seconds(eol['cpuSeconds'])} CPU seconds"
        )
    for u in flags["unidentified"]:
        why = f": {u['error']}" if u["error"] else ""
        lines.append(
            f"  runtime not identified: {u['namespace']}/{u['pod']}/{u['container']} on "
            f"{u['node']} ({u['image'] or 'image unknown'}){why}"
        )
    for m in flags["mixedVersions"]:
        versions = "; ".join(
            f"{v['label']}{' + ' + v['frameworks'] if v['frameworks'] else ''} in "
            f"{', '.join(v['pods'])}"
            for v in m["versions"]
        )
        lines.append(
            f"  mixed versions: {m['namespace']} {m['owner']['kind']}/{m['owner']['name']} "
            f"container {m['container']}: {versions}"
        )
    return "\n".join(lines) + "\n"


def to_csv(inventory: dict[str, Any]) -> str:
    """One line per runtime; lists joined with "; "."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in inventory["runtimes"]:
        writer.writerow(
            [
                row["os"] or "", row["osVersion"] or "", row["kind"] or "",
                row["kindVersion"] or "", row["kindImplementer"] or "", _frameworks(row),
                "true" if row["identified"] else "false", row["containers"], row["pods"],
                "; ".join(row["namespaces"]),
                "; ".join(f"{o['namespace']}/{o['kind']}/{o['name']}" for o in row["owners"]),
                repr(row["cpuSeconds"]), repr(row["cpuShare"]), repr(row["cpuCores"]),
                "; ".join(f"{e['component']} ({e['eol']})" for e in row["endOfLife"]),
            ]
        )  # fmt: skip
    return out.getvalue()
