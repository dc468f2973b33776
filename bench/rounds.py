"""How many rounds a bench measures: its own number, or a few in smoke mode.

Why: CI runs every bench once (``python -m bench --smoke``) so that a bench broken by a
change fails CI the day it breaks, without paying for the rounds that make figures
trustworthy; ``make bench`` runs the full number.
"""

from __future__ import annotations

import os

SMOKE_ENV = "RI_BENCH_SMOKE"
SMOKE_ROUNDS = 2


def smoke() -> bool:
    return os.environ.get(SMOKE_ENV) == "1"


def rounds(full: int) -> int:
    """``full``, or at most SMOKE_ROUNDS in smoke mode."""
    return min(full, SMOKE_ROUNDS) if smoke() else full
