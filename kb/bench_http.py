"""`kb bench` over HTTP: a real `kb serve` started for the run (cold start, load, worker memory), or servers
already running on loopback ports (load only: two replicas against one under the same load).

The load runs are the same either way: per client count, distinct hybrid searches, repeated ones (a few dozen
cycled: cache hits) and /healthz (the base of the ratio rows), then the other modes at 2 clients (or the fewest
given). Client i of a run sends to ports[i % len(ports)], so the servers share the clients evenly. Distinct
queries are never sent twice to one server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from kb.bench_queries import MODES, QueryPool, search_path
from kb.bench_record import Record
from kb.loadtest import Server, run_load

WORKERS = 2  # the workers of the server the bench starts
UNLIMITED = "1000000000/minute"  # that server's rate limits: never reached


class HttpLoad:
    """The HTTP load runs of one bench run, over its queries."""

    def __init__(self, record: Record, clients: Sequence[int], distinct: list[str], repeated: list[str]):
        """
        Args:
            record: where the rows go (its duration bounds each run).
            clients: the client counts to run.
            distinct: queries sent once each (shared out among the runs: none reaches a server twice).
            repeated: queries cycled by the repeated-query runs.
        """
        self.record, self.clients = record, tuple(clients)
        self.distinct, self.repeated = distinct, repeated

    def run(self, host: str, ports: Sequence[int], engine: str | None, workers: int | None) -> None:
        """Every load run against the servers on host's ports; a row per run, then the p50 ratio rows.

        engine and workers are the servers' as far as the bench knows them (None: running servers, not known).
        """
        clients, duration = self.clients, self.record.duration
        others = 2 if 2 in clients else min(clients)
        runs = [(kind, "hybrid", c) for c in clients for kind in ("distinct", "repeated", "healthz")]
        runs += [("distinct", mode, others) for mode in MODES if mode != "hybrid"]
        pool, distinct_left = QueryPool(self.distinct), sum(kind == "distinct" for kind, _, _ in runs)
        p50: dict[tuple[str, int], float | None] = {}
        for kind, mode, count in runs:
            if kind == "healthz":
                paths, name = [["/healthz"]] * count, "GET /healthz"
            elif kind == "repeated":
                cycled = [search_path(t, mode) for t in self.repeated]
                paths, name = [cycled[i:] + cycled[:i] for i in range(count)], f"GET search {mode}, repeated"
            else:
                share = [search_path(t, mode) for t in pool.share(distinct_left)]
                distinct_left -= 1
                paths, name = [share[i::count] for i in range(count)], f"GET search {mode}, distinct"
            update = self.record.timer(f"{name}, {count} client(s)", duration)
            result = run_load(host, ports, paths, duration, kind != "distinct", update)
            update(final=True)
            figures = result.figures()
            if kind != "distinct":
                figures.pop("paths_ran_out")
            p50[(kind if mode == "hybrid" else mode, count)] = figures["p50_ms"]
            self.record.add("http", name, engine, count, workers, **figures)
        for count in clients:
            base, distinct, repeated = (p50.get((kind, count)) for kind in ("healthz", "distinct", "repeated"))
            ratios = {"ratio": distinct, "ratio_repeated": repeated}
            ratios = {k: round(v / base, 2) if base and v else None for k, v in ratios.items()}
            self.record.add("http", "search hybrid p50 / healthz p50", engine, count, workers, **ratios)


def measure_server(
    load: HttpLoad,
    engine: str,
    content: Path,
    data: Path,
    log_path: Path,
    host: str,
    only: set[str],
    say: Callable[[str], None],
) -> None:
    """Start `kb serve --workers WORKERS` over content and data (rate limits off, no watcher), then measure what
    only selects of: cold start, the load runs, worker memory after them. The server is always stopped.

    Raises:
        KbError: the server did not start, or a load client failed.
    """
    env = {**os.environ, "KB_CONTENT_DIR": str(content), "KB_DATA_DIR": str(data)}
    env.update(KB_KEYWORD_ENGINE=engine, KB_RATE_LIMIT_SEARCH=UNLIMITED, KB_RATE_LIMIT_READ=UNLIMITED)
    env.update(KB_WATCH_INTERVAL="0", KB_LOG_LEVEL="WARNING", KB_WORKERS=str(WORKERS))
    say(f"{engine}: starting kb serve --workers {WORKERS}")
    record = load.record
    with Server(env, WORKERS, log_path, host) as server:
        first = server.start()
        if "coldstart" in only:
            record.add(
                "coldstart", "kb serve start to first answered search", engine, workers=WORKERS, ms=round(first, 1)
            )
        server.wait_settled()
        if "http" in only:
            load.run(server.host, [server.port], engine, WORKERS)
        if "memory" in only:
            record.add("memory", "VmRSS after the HTTP runs", engine, workers=WORKERS, **server.memory())
