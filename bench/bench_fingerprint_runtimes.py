"""Language fingerprints of real runtime processes vs. executing their version commands.

insights-runtime-extractor learns a runtime's version by executing it (``java -version``,
``node --version``, ``python3 --version`` …) for every container; our detectors read the
same facts from files. One container per installed runtime (Java = Debian's Tomcat on
OpenJDK, Python, Node.js, Ruby, Perl, PHP, Erlang, Go = containerd's ``ctr``, Rust = rg,
GraalVM = pkl when cached by the tests), each a real process fingerprinted through /proc.
Measured in the same run:
- baseline: executing each runtime's own version command once (what IRE does, without
  even counting its namespace entry and helper processes);
- cold: a fresh Fingerprinter per round (nothing cached; the OS page cache is warm, as it
  is for the baseline);
- warm: a long-lived Fingerprinter, every container already fingerprinted (a pass).
Goals: cold ≥ 10× faster than the version commands, warm < 1 ms per container.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.harness import catalina_base
from bench.rounds import rounds
from fingerprints import Result
from fingerprints.engine import Fingerprinter

ROUNDS = 9
WARM_ROUNDS = 50
START_TIMEOUT = 60.0
TOMCAT_HOME = Path("/usr/share/tomcat10")
PKL_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "runtime-insights-tests"
)


@dataclass
class Runtime:
    """One runtime container: how to start it, when it is ready, and its version command."""

    name: str
    argv: list[str]
    version_cmd: list[str] | None
    """None for compiled binaries: IRE reads those from the file too (Go buildinfo,
    GraalVM strings), so there is no exec to compare with."""
    ready: Callable[[int], bool]


def _maps_has(needle: str) -> Callable[[int], bool]:
    def ready(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/maps") as f:
                return needle in f.read()
        except OSError:
            return False

    return ready


def _sleeping_in(exe_suffix: str) -> Callable[[int], bool]:
    def ready(pid: int) -> bool:
        try:
            if not os.readlink(f"/proc/{pid}/exe").endswith(exe_suffix):
                return False
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rpartition(")")[2].split()[0] == "S"
        except OSError:
            return False

    return ready


def runtimes(workdir: Path) -> list[Runtime]:
    """Every runtime installed here (scripts/system-packages.txt), as a container to start."""
    found: list[Runtime] = []
    java = shutil.which("java")
    if java and (TOMCAT_HOME / "bin/bootstrap.jar").is_file():
        base = catalina_base(workdir / "catalina")
        classpath = f"{TOMCAT_HOME}/bin/bootstrap.jar:{TOMCAT_HOME}/bin/tomcat-juli.jar"
        argv = [
            java, "-classpath", classpath,
            f"-Dcatalina.home={TOMCAT_HOME}", f"-Dcatalina.base={base}",
            f"-Djava.io.tmpdir={base}/temp", "org.apache.catalina.startup.Bootstrap", "start",
        ]  # fmt: skip
        found.append(Runtime("Java", argv, [java, "-version"], _maps_has("/libjvm.so")))
    simple = [
        ("Python", "/usr/bin/python3", ["-c", "import time; time.sleep(600)"], ["--version"]),
        ("Node.js", "node", ["-e", "setTimeout(() => {}, 600000)"], ["--version"]),
        ("Ruby", "ruby", ["-e", "sleep 600"], ["--version"]),
        ("Perl", "perl", ["-e", "sleep 600"], ["--version"]),
        ("PHP", "php", ["-r", "sleep(600);"], ["--version"]),
    ]
    for name, tool, args, version_args in simple:
        path = shutil.which(tool)
        if path:
            real = os.path.basename(os.path.realpath(path))
            found.append(Runtime(name, [path, *args], [path, *version_args], _sleeping_in(real)))
    erl = shutil.which("erl")
    if erl:
        found.append(
            Runtime(
                "Erlang",
                [erl, "-noshell", "-eval", "timer:sleep(600000)"],
                [
                    erl,
                    "-noshell",
                    "-eval",
                    "io:put_chars(erlang:system_info(otp_release)), halt().",
                ],
                _sleeping_in("beam.smp"),
            )
        )
    ctr = shutil.which("ctr")
    if ctr:
        sock = f"/nonexistent/ri-bench-{uuid.uuid4().hex}.sock"
        argv = [ctr, "--address", sock, "--connect-timeout", "600s", "version"]
        found.append(Runtime("Golang", argv, None, _sleeping_in("/ctr")))
    rg = shutil.which("rg")
    if rg:
        found.append(Runtime("Rust", [rg, "needle"], None, _sleeping_in("/rg")))
    for pkl in sorted(PKL_CACHE.glob("*pkl-linux-x64*/package/bin/pkl")):
        found.append(Runtime("GraalVM", [str(pkl), "server"], None, _sleeping_in("/pkl")))
    return found


@contextmanager
def started(rt: Runtime) -> Iterator[int]:
    proc = subprocess.Popen(
        rt.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not rt.ready(proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{rt.name} did not start")
            time.sleep(0.02)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median(fn: Callable[[], object], rounds: int) -> float:
    return statistics.median(_timed(fn) for _ in range(rounds))


def _version(fp: Result) -> str | None:
    """What identifies the version: kindVersion, or for a native image (whose
    insights-runtime-extractor fields carry no version) the VM it was built with."""
    vm = fp.extra.get("graalvmVM")
    return fp.kindVersion or (vm if isinstance(vm, str) else None)


def _cold(name: str, pid: int) -> None:
    """One container fingerprinted by a fresh engine: nothing cached."""
    Fingerprinter().fingerprint(name, [pid])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ri-bench-fp-") as tmp, ExitStack() as stack:
        rts = runtimes(Path(tmp))
        pids = {rt.name: stack.enter_context(started(rt)) for rt in rts}
        warm_engine = Fingerprinter()

        def warm_pass() -> None:
            for name, pid in pids.items():
                warm_engine.fingerprint(name, [pid])

        found = {name: warm_engine.fingerprint(name, [pid]) for name, pid in pids.items()}
        computed = warm_engine.computed
        # exec and cold interleaved per round: machine load hits both sides alike
        exec_t: dict[str, list[float]] = {rt.name: [] for rt in rts if rt.version_cmd}
        cold_t: dict[str, list[float]] = {rt.name: [] for rt in rts}
        ratios = []
        for _ in range(rounds(ROUNDS)):
            round_exec = round_cold = 0.0
            for rt in rts:
                cold_t[rt.name].append(_timed(partial(_cold, rt.name, pids[rt.name])))
                if rt.version_cmd is not None:
                    cmd = partial(subprocess.run, rt.version_cmd, capture_output=True, check=False)
                    exec_t[rt.name].append(_timed(cmd))
                    round_exec += exec_t[rt.name][-1]
                    round_cold += cold_t[rt.name][-1]
            ratios.append(round_exec / round_cold)
        print(f"{'container':10} {'kind':9} {'version':22} {'exec ms':>9} {'cold ms':>8}")
        for rt in rts:
            fp = found[rt.name]
            t_exec = statistics.median(exec_t[rt.name]) if rt.name in exec_t else None
            exec_ms = f"{t_exec * 1e3:9.1f}" if t_exec is not None else f"{'-':>9}"
            print(
                f"{rt.name:10} {fp.kind or '-':9} {(_version(fp) or '-')[:22]:22} "
                f"{exec_ms} {statistics.median(cold_t[rt.name]) * 1e3:8.2f}"
            )
        per_warm = _median(warm_pass, rounds(WARM_ROUNDS)) / len(rts)
        recomputed = warm_engine.computed - computed
        speedup = statistics.median(ratios)
        print(f"containers: {len(rts)}")
        print(f"version commands / cold fingerprints: {speedup:8.1f}x (goal >= 10x, interpreters)")
        mean_cold = sum(statistics.median(t) for t in cold_t.values()) / len(rts)
        print(f"cold / warm:                          {mean_cold / per_warm:8.1f}x")
        print(f"warm: {per_warm * 1e6:.1f} µs per container (goal < 1000 µs)")
        print(f"warm passes recomputed: {recomputed} fingerprints")
        wrong = [name for name, fp in found.items() if fp.kind != name or not _version(fp)]
        if wrong:
            print(f"not identified with a version: {wrong}")
        return 0 if speedup >= 10 and per_warm < 1e-3 and not wrong and recomputed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
