"""A fresh clone, alone in an empty directory, passes: nothing a test needs lives beside
the repository, no test skips for a missing file, and the suite holds while other
kubelet-shaped pods come and go on the machine.

The clone is of the committed HEAD (what CI and a newcomer get). Its suite runs with the
clone first on the path (PYTHONPATH), except tests/integration and the containerd tests
(the suite's own run covers those, and they have no files of their own to miss) and this
test; as root, a churn of other pods (tests/support/churn.py) runs all along.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from pathlib import Path

from tests.conftest import MISSING_FILE
from tests.support.churn import Churn
from tests.support.paths import REPO_ROOT

CLONE_TIMEOUT = 900


def test_a_fresh_clone_passes_alone_and_under_churn(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    clone = empty / "runtime-insights"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    assert os.listdir(empty) == ["runtime-insights"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNTIME_INSIGHTS_", "PYTEST"))}
    env["PYTHONPATH"] = str(clone)
    where = subprocess.run(
        [sys.executable, "-c", "import exporter; print(exporter.__file__)"],
        cwd=clone, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(clone)), where.stdout
    junit = tmp_path / "clone.xml"
    with ExitStack() as stack:
        churn = stack.enter_context(Churn()) if os.geteuid() == 0 else None
        run = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-q", "-rfEs", "--tb=short"),
                # the suite's own cache: downloads a test keeps there are not fetched again
                f"--override-ini=cache_dir={REPO_ROOT / '.pytest_cache'}",
                *("-m", "not containerd", "--ignore=tests/integration"),
                *("--ignore=tests/test_clone.py", f"--junitxml={junit}"),
            ],
            cwd=clone, env=env, capture_output=True, text=True, timeout=CLONE_TIMEOUT,
        )  # fmt: skip
        assert churn is None or churn.alive, "the churn stopped early"
    (tmp_path / "clone-run.log").write_text(run.stdout + run.stderr)
    failures, _, summary = run.stdout.partition("FAILURES ===")[2].rpartition("short test summary")
    assert run.returncode == 0, (
        f"exit {run.returncode} (output in {tmp_path / 'clone-run.log'}): {summary[-3000:]}\n"
        f"{failures[:6000]}{run.stderr[-2000:]}"
    )
    suite = ET.parse(junit).getroot()
    cases = suite.iter("testcase")
    skipped = {
        f"{c.get('classname')}.{c.get('name')}": (s.get("message") or "")
        for c in cases
        for s in c.findall("skipped")
    }
    missing = {name: why for name, why in skipped.items() if MISSING_FILE.search(why)}
    assert not missing, f"skipped for a missing file in a bare clone: {missing}"
    ran = sum(1 for _ in suite.iter("testcase"))
    assert ran > 1000 and len(skipped) < ran // 20, (ran, skipped)
    if churn is not None:
        assert churn.made > 20 and churn.removed == churn.made, (churn.made, churn.removed)
