"""HTTP load against a real `kb serve` on this machine: the server's life, client processes, figures.

:class:`Server` starts ``kb serve`` on a free loopback port with the environment
it is given (its own session, so it is stopped as a whole, on an exception or
Ctrl-C too, and it gets SIGTERM if the process that started it dies), times the
start to its first answered search, and reads its workers' resident memory.
:func:`run_load` sends GET requests from client processes, each with its own
http.client connection and pre-encoded paths, to one server or spread over
several (client i to the i-th port, around again), for a fixed time; every answer
but 200 is an error. Load never leaves the machine: :func:`check_target`
refuses any host but 127.0.0.1 and localhost.
"""

from __future__ import annotations

import ctypes
import http.client
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kb.errors import InputError, KbError

LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1"}
START_TIMEOUT = 600.0  # seconds for kb serve to answer its first search (a 100k-section library loads slowly)
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 60.0
PROBE_PATH = "/api/v1/search?q=customer+charged+twice&mode=hybrid&k=5"
_PR_SET_PDEATHSIG = 1


def check_target(host: str) -> str:
    """The loopback address to load for host.

    Raises:
        InputError: host is not 127.0.0.1 or localhost.
    """
    if host not in LOOPBACK:
        raise InputError(
            f"--target {host!r} is refused: kb bench only loads 127.0.0.1 or localhost, load never leaves the machine",
            {"field": "target"},
        )
    return LOOPBACK[host]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on host right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and p99 of values (nearest rank), rounded to 0.01; None when there are none."""
    ordered = sorted(values)

    def rank(q: int) -> float | None:
        return round(ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)], 2) if ordered else None

    return {"p50_ms": rank(50), "p95_ms": rank(95), "p99_ms": rank(99)}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _proc_status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def rss_mb(pid: int) -> float | None:
    """A process's resident memory (VmRSS) in MB, or None if it is gone."""
    try:
        return round(int(_proc_status(pid)["VmRSS"].split()[0]) / 1024, 1)
    except (OSError, KeyError, ValueError):
        return None


def memory_mb(pid: int) -> dict[str, float | None]:
    """A process's memory in MB: rss (VmRSS), anon and file (its anonymous and file-backed parts: RssAnon,
    RssFile), and pss (its proportional share, pages shared with other processes divided among them); None
    for what cannot be read (the process is gone)."""
    figures: dict[str, float | None] = dict.fromkeys(("rss", "anon", "file", "pss"))
    try:
        status = _proc_status(pid)
        for name, key in (("rss", "VmRSS"), ("anon", "RssAnon"), ("file", "RssFile")):
            figures[name] = round(int(status[key].split()[0]) / 1024, 1)
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        pss = next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:"))
        figures["pss"] = round(int(pss) / 1024, 1)
    except (OSError, KeyError, ValueError, StopIteration, IndexError):
        pass
    return figures


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return -1


class Server:
    """One `kb serve` process (gunicorn master and workers) on a free loopback port."""

    def __init__(self, env: dict[str, str], workers: int, log_path: Path, host: str = "127.0.0.1"):
        self.env, self.workers, self.log_path, self.host = env, workers, log_path, host
        self.port = 0
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> float:
        """Start the server; return the milliseconds from process start to its first answered search.

        Raises:
            KbError: the server exited, or did not answer a search within START_TIMEOUT.
        """
        self.port = free_port(self.host)
        command = [sys.executable, "-c", "from kb.cli import main; main()", "serve"]
        command += ["--host", self.host, "--port", str(self.port), "--workers", str(self.workers)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        while time.perf_counter() - started < START_TIMEOUT:
            if self.process.poll() is not None:
                raise KbError(f"kb serve exited with status {self.process.returncode}: {self.log_tail()}")
            try:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
                connection.request("GET", PROBE_PATH)
                if connection.getresponse().status == 200:
                    return (time.perf_counter() - started) * 1000
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        raise KbError(f"kb serve did not answer a search within {START_TIMEOUT:.0f} s: {self.log_tail()}")

    def log_tail(self, chars: int = 600) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    def worker_pids(self) -> list[int]:
        """The gunicorn workers' process ids."""
        if self.process is None:
            return []
        try:
            return [
                int(p) for p in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            ]
        except OSError:
            return []

    def wait_settled(self, quiet: float = 1.0, timeout: float = 120.0) -> None:
        """Wait until every worker is up and has used no CPU for `quiet` seconds (loaded), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        last, still_since = None, time.monotonic()
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            ticks = [_cpu_ticks(pid) for pid in pids]
            if len(pids) < self.workers or ticks != last:
                last, still_since = ticks, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return
            time.sleep(0.1)

    def memory(self) -> dict:
        """{"master_rss_mb", "workers_rss_mb": [...], "workers_anon_mb", "workers_file_mb", "workers_pss_mb"}:
        resident memory from /proc (see memory_mb), one entry per worker."""
        workers = [memory_mb(pid) for pid in self.worker_pids()]
        figures = {"master_rss_mb": rss_mb(self.process.pid) if self.process else None}
        for name in ("rss", "anon", "file", "pss"):
            figures[f"workers_{name}_mb"] = [worker[name] for worker in workers]
        return figures

    def stop(self) -> None:
        """Stop the master and its workers (SIGTERM, then SIGKILL after STOP_TIMEOUT); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()


@dataclass
class LoadResult:
    """What one load run measured."""

    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # non-200 answers; 0 is a connection failure
    exhausted: bool = False  # a client ran out of paths before the time was up
    client_cpu_s: float = 0.0  # CPU the client processes used while sending: the load generator's own cost

    def figures(self) -> dict:
        """Counts, errors, requests per second and latency percentiles, as plain data."""
        requests = len(self.latencies_ms)
        return {
            "requests": requests,
            "errors": self.errors,
            "error_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "elapsed_s": round(self.seconds, 3),
            "requests_per_s": round(requests / self.seconds, 1) if self.seconds else None,
            **percentiles(self.latencies_ms),
            "client_cpu_ms_per_request": round(self.client_cpu_s * 1000 / requests, 3) if requests else None,
            "paths_ran_out": self.exhausted,
        }


def _client(host: str, port: int, paths: list[str], cycle: bool, duration: float, start, pipe) -> None:
    """One client process: GET paths in turn (around again if cycle) until duration has passed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the clients
    connection = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
    latencies, statuses, errors, index = array("d"), {}, 0, 0
    pipe.send("ready")
    start.wait()
    begun, cpu = time.perf_counter(), time.process_time()
    deadline = begun + duration
    exhausted = False
    while True:
        if index == len(paths):
            if not cycle or not paths:
                exhausted = True
                break
            index = 0
        sent = time.perf_counter()
        if sent >= deadline:
            break
        try:
            connection.request("GET", paths[index])
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
            connection.close()
        latencies.append((time.perf_counter() - sent) * 1000)
        index += 1
        if status != 200:
            errors += 1
            statuses[status] = statuses.get(status, 0) + 1
    elapsed, cpu = time.perf_counter() - begun, time.process_time() - cpu
    pipe.send((latencies.tobytes(), errors, statuses, elapsed, cpu, exhausted))


def run_load(
    host: str,
    ports: Sequence[int],
    paths: Sequence[Sequence[str]],
    duration: float,
    cycle: bool = False,
    tick: Callable[[], None] | None = None,
) -> LoadResult:
    """GET from len(paths) client processes, client i sending paths[i] in turn to ports[i % len(ports)], for
    duration seconds.

    Args:
        host: the servers' host (loopback only: see check_target).
        ports: the servers' ports, one or more (each client sends to one of them, in turn).
        paths: one list of pre-encoded paths per client.
        duration: seconds each client sends requests for, counted from a common start.
        cycle: send a client's paths around again when they run out (else it stops early).
        tick: called about every 0.2 s while the run goes on (a progress bar).
    """
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of torch or ONNX forked
    start = context.Event()
    pipes, processes = [], []
    if not ports:
        raise ValueError("run_load needs at least one port")
    try:
        for i, own in enumerate(paths):
            parent, child = context.Pipe(duplex=False)
            port = ports[i % len(ports)]
            process = context.Process(target=_client, args=(host, port, list(own), cycle, duration, start, child))
            process.daemon = True
            process.start()
            child.close()
            pipes.append(parent)
            processes.append(process)
        for pipe in pipes:
            try:
                ready = pipe.poll(120) and pipe.recv() == "ready"
            except EOFError:
                ready = False
            if not ready:
                raise KbError("a load client process did not start")
        start.set()
        result = LoadResult(clients=len(paths), seconds=0.0)
        for pipe in pipes:
            while not pipe.poll(0.2):
                if tick:
                    tick()
            try:
                raw, errors, statuses, seconds, cpu, exhausted = pipe.recv()
            except EOFError:
                raise KbError("a load client process died during the run") from None
            latencies = array("d")
            latencies.frombytes(raw)
            result.latencies_ms.extend(latencies)
            result.errors += errors
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count
            result.seconds = max(result.seconds, seconds)
            result.client_cpu_s += cpu
            result.exhausted |= exhausted
        return result
    except BaseException:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join(timeout=STOP_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
