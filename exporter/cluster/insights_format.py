"""`collect --format insights`: what insights-runtime-extractor's scripts/extract.sh writes.

That script runs ``curl -s …/gather_runtime_info?hash=false`` in every extractor pod,
appends ``echo $(…)`` of each answer to ``data-<pod>.json`` and writes
``jq -s '[.[]]' data-*.json``: one JSON array of the nodes' answers, unmerged, in the
order the shell's glob lists the files (by pod name), pretty-printed by jq. Scripts built
on its output keep working on this one (docs/insights-runtime-extractor.md):

- a node whose curl failed printed nothing, so jq saw no value: it is left out (here it
  is also reported on stderr, and the exit code says so);
- the unquoted ``$(…)`` splits the answer into words and ``echo`` joins them with one
  space, so a run of spaces inside a string becomes one (answers hold no other raw
  whitespace: Go escapes it); its pathname expansion would need a file named like a
  whole JSON word, and is not reproduced;
- jq indents by two spaces, keeps keys in their order, writes non-ASCII as is and
  escapes control characters and DEL as ``\\u00XX``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_SPACES = re.compile(" {2,}")


def _echoed(value: Any) -> Any:
    """The value after ``echo $(…)``: runs of spaces in every string squeezed to one."""
    if isinstance(value, str):
        return _SPACES.sub(" ", value)
    if isinstance(value, dict):
        return {_SPACES.sub(" ", k): _echoed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_echoed(v) for v in value]
    return value


def jq_pretty(value: Any) -> str:
    """jq's default output of one value, with its trailing newline."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return text.replace("\x7f", "\\u007f") + "\n"


def render(answers: Iterable[tuple[str, dict[str, Any] | None]]) -> str:
    """The array extract.sh writes from (pod name, answer or None when it failed) pairs."""
    ordered = sorted(((pod, doc) for pod, doc in answers if doc is not None), key=lambda a: a[0])
    return jq_pretty([_echoed(doc) for _, doc in ordered])
