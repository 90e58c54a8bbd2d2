"""Processes under test: spawning the bot or the floor, waiting for health, sampling memory, a scratch Postgres."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_one(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (``serve`` forks a work process)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # the process may have exited meanwhile
                todo.extend(int(child) for child in task.read_text().split())
    return found


def pss_of(pid: int) -> float:
    """Proportional set size of one process, in MiB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size summed over the process and its children, in MiB: each page counted once, split
    between the processes sharing it. This is what the tree really holds in memory (close to what a container's
    memory cgroup is charged), where the RSS sum counts the pages a fork shares twice."""
    return sum(pss_of(p) for p in process_tree(pid))


def cpu_s(pid: int) -> float:
    """CPU time (user + system) the process has used so far, in seconds; its children not included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size from /proc, in MiB, summed over the process and its children (0 when gone).

    The sum counts pages the forked work process still shares with its parent twice, so it overstates."""
    return sum(_rss_one(p) for p in process_tree(pid))


@dataclass
class Server:
    """A server subprocess on 127.0.0.1:port, its log file, and how long it took to become healthy."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    healthy_after_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, started: float, timeout_s: float = 30.0) -> float:
        deadline = started + timeout_s
        with httpx.Client(timeout=1.0) as http:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        self.healthy_after_s = time.perf_counter() - started
                        return self.healthy_after_s
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
        raise RuntimeError(f"{self.name} not healthy within {timeout_s} s; see {self.log_path}")

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``: the bot drains its paced posts on SIGTERM, which the bench
        has no need to wait for."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Server:
    """Start ``argv`` with ``env`` plus HOST/PORT, and wait until GET /healthz answers 200."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    with log_path.open("wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=full_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, proc, port, log_path)
    try:
        server.wait_healthy(started)
    except BaseException:
        server.stop()
        raise
    return server


def bot_argv() -> list[str]:
    script = Path(sys.executable).parent / "release-bot"
    return [str(script), "serve"] if script.exists() else [sys.executable, "-m", "bot", "serve"]


def floor_argv(server: str | None = None) -> list[str]:
    """The floor (bench/floors.py) on ``server``, by default the fastest the candidates measured."""
    from bench.floors import FASTEST

    return [sys.executable, "-m", "bench.floors", "--server", server or FASTEST]


@dataclass
class RssSampler:
    """Samples the memory of a process and its children in a thread: the highest RSS sum (every ``interval_s``)
    and the highest PSS sum (every ``pss_every``-th time).

    PSS is sampled less often because reading it walks the page tables of every process sampled (2.3 ms of
    kernel time for the bot's two, holding each one's memory-map lock meanwhile): at the RSS rate the sampler
    itself would load the bot more than the floor it is compared with. Memory moves by the second, not faster."""

    pid: int
    interval_s: float = 0.1
    pss_every: int = 5
    peak_mb: float = 0.0
    peak_pss_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()
        return self

    def _sample(self, pss: bool = True) -> None:
        self.peak_mb = max(self.peak_mb, rss_mb(self.pid))
        if pss:
            self.peak_pss_mb = max(self.peak_pss_mb, pss_mb(self.pid))

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self._sample(pss=n % self.pss_every == 0)
            n += 1
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self._sample()


class ScratchPostgres:
    """A throwaway database ``bench_<pid>`` on the local server, dropped on exit."""

    def __init__(self) -> None:
        self.name = f"bench_{os.getpid()}"
        base = PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
        self.url = f"postgresql+psycopg://{base}/{self.name}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def __enter__(self) -> ScratchPostgres:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}"')
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
