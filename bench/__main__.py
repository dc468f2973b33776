"""``python -m bench [--smoke] [NAME ...]``: run every ``bench/bench_*.py`` module's
``main()`` in turn (or the named ones).

Every module runs even when an earlier one crashed; the run then exits 1 and names each
failure with its cause. With ``--smoke`` each bench measures only a few rounds
(bench/rounds.py), and a missed goal is reported but does not fail the run: a few
rounds on a shared machine prove that the bench works, not its figures.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
import traceback

import bench
from bench.rounds import SMOKE_ENV


def _run(name: str, smoke: bool) -> str | None:
    """None when the bench passed; else why it failed."""
    try:
        module = importlib.import_module(f"bench.{name}")
        result = module.main()
    except SystemExit as e:
        if e.code in (None, 0):
            return None
        return f"exited: {e.code}"
    except Exception as e:
        traceback.print_exc()
        return f"{type(e).__name__}: {e}"
    if result:
        if smoke:
            print(f"{name}: goal missed in a smoke run (a few rounds): not counted as a failure")
            return None
        return "missed its goal"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="a few rounds per bench")
    parser.add_argument("names", nargs="*", help="bench modules to run (default: all)")
    args = parser.parse_args(argv)
    if args.smoke:
        os.environ[SMOKE_ENV] = "1"
    names = args.names or sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    failed: dict[str, str] = {}
    for name in names:
        print(f"== {name}", flush=True)
        start = time.monotonic()
        why = _run(name, args.smoke)
        print(f"== {name}: {'ok' if why is None else 'FAILED'} in {time.monotonic() - start:.0f} s")
        if why is not None:
            failed[name] = why
        sys.stdout.flush()
    for name, why in failed.items():
        print(f"bench failed: {name}: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
