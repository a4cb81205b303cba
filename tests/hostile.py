"""Harness for hostile-input tests: run one eyesim command in a forked child and measure what it cost.

The child is forked from the test process (eyesim and its kernels already imported), so a case costs
milliseconds; the kernel's own accounting gives its peak memory above the parent's at the fork. ``start_cli``
starts one without waiting (concurrent commands); ``fork_holding`` forks a child that holds a lock until killed.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import eyesim.cli.main  # noqa: F401 - imported once here, so a forked case measures only its own work

MAX_SECONDS = 5.0  # generous: the machine is shared and noisy; a bounded case takes well under 1 s
MAX_GROWTH_MB = 300.0


@dataclass(frozen=True)
class Outcome:
    """What one command did: exit code, stderr and stdout text, wall seconds, memory grown, files changed."""

    code: int
    stderr: str
    stdout: str
    seconds: float
    grown_mb: float
    changed: tuple[str, ...]

    def refused(self, *needles: str, seconds: float = MAX_SECONDS, grown_mb: float = MAX_GROWTH_MB) -> None:
        """Assert: exit 2, one stderr line ``eyesim: error: ...`` holding every needle, no traceback, in bounds."""
        lines = self.stderr.strip().splitlines()
        assert self.code == 2, f"exit {self.code}: {self.stderr}{self.stdout}"
        assert len(lines) == 1 and lines[0].startswith("eyesim: error: "), self.stderr
        assert "Traceback" not in self.stderr + self.stdout
        for needle in needles:
            assert needle in lines[0], lines[0]
        assert self.seconds < seconds, f"took {self.seconds:.1f} s: {lines[0]}"
        assert self.grown_mb < grown_mb, f"grew {self.grown_mb:.0f} MB: {lines[0]}"
        assert not self.changed, f"changed {self.changed}: {lines[0]}"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _snapshot(folder: Path | None) -> dict[str, str]:
    if folder is None:
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(args: list[str], watch: Path | None = None, timeout: float = 60.0) -> Outcome:
    """Run ``eyesim ARGS`` in a forked child; ``watch`` is a folder whose files must not change."""
    return start_cli(args, watch, timeout).outcome()


@dataclass(frozen=True)
class Started:
    """A command running in a forked child (``start_cli``); ``outcome`` waits for it."""

    pid: int
    out: IO[bytes]
    err: IO[bytes]
    start: float
    base_mb: float
    timeout: float
    watch: Path | None
    before: dict[str, str]

    def outcome(self) -> Outcome:
        """Wait for the child: what it did."""
        _, status, usage = os.wait4(self.pid, 0)
        seconds = time.perf_counter() - self.start
        stdout, stderr = (_read_and_close(f) for f in (self.out, self.err))
        code = os.waitstatus_to_exitcode(status)
        if code == -signal.SIGALRM:
            stderr += f"\n(killed after {self.timeout} s)"
        changed = tuple(k for k, v in _snapshot(self.watch).items() if self.before.get(k) != v)
        changed += tuple(k for k in self.before if not (self.watch / k).exists())  # type: ignore[operator]
        return Outcome(code, stderr, stdout, seconds, usage.ru_maxrss / 1024 - self.base_mb, changed)


def _read_and_close(file: IO[bytes]) -> str:
    file.seek(0)
    text = file.read().decode(errors="replace")
    file.close()
    return text


def start_cli(args: list[str], watch: Path | None = None, timeout: float = 60.0) -> Started:
    """Start ``eyesim ARGS`` in a forked child and return at once (several may run side by side)."""
    before = _snapshot(watch)
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - closed by Started.outcome
    base, start = _rss_mb(), time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: run the command, never return into pytest
        _child(args, out.fileno(), err.fileno(), timeout)
    return Started(pid, out, err, start, base, timeout, watch, before)


def fork_holding(hold, *args) -> int:
    """Fork a child that enters the context manager ``hold(*args)`` and sleeps in it until killed; its pid, once it
    holds it (a forked child starts in milliseconds, a fresh interpreter in seconds)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read)
            with hold(*args):
                os.write(write, b"held")
                time.sleep(120)
        finally:
            os._exit(70)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read(4) == b"held", "the child could not take the lock"
    return pid


# Forks and execs ARGV, then writes the child's exit status and peak memory (KiB) to the file PEAK. The child is
# forked from this small launcher: a process that execs keeps the peak of the memory it had before, so a child
# forked straight from the (large) test process would report the test process's peak.
_LAUNCHER = """import os, sys
peak, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
open(peak, "w").write(f"{status} {usage.ru_maxrss}")
"""


def run_fresh(argv: list[str], env: dict[str, str], cwd: Path, watch: Path | None = None) -> Outcome:
    """Run ``argv`` as a new process (for what is chosen at import, e.g. the cache folder); its memory is the
    whole process's peak, not growth over a parent."""
    before = _snapshot(watch)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as peak:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", _LAUNCHER, peak.name, *argv], env=env, cwd=cwd, stdout=out,
                       stderr=err, check=False)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        status, kib = (int(v) for v in Path(peak.name).read_text().split())
    changed = tuple(k for k, v in _snapshot(watch).items() if before.get(k) != v)
    changed += tuple(k for k in before if not (watch / k).exists())  # type: ignore[operator]
    return Outcome(os.waitstatus_to_exitcode(status), stderr, stdout, seconds, kib / 1024, changed)


def _child(args: list[str], out: int, err: int, timeout: float) -> None:
    code = 70
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child ends with os._exit
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        signal.alarm(int(timeout) + 1)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        from eyesim.cli.main import main

        try:
            main.main(args=args, prog_name="eyesim")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report it as the test's failure, never run pytest in the child
        import traceback

        traceback.print_exc()
        code = 71
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
