"""`kb bench`: kb's speed measured on a library, every figure with the parameters of its run.

Per keyword engine: index builds in a scratch data folder and the library's bench data folder made ready
(kb.bench_builds); search latency in process per mode (here); one real `kb serve` for cold start, HTTP load and
worker memory (kb.bench_http); publish to searchable in a scratch clone of the content repository
(kb.bench_publish). With ports given, only the HTTP load runs, against servers already running on them: no
library, no build, no server of the bench's own. Distinct queries (kb.bench_queries) are never sent twice to one
Searcher or server, so they never hit a query cache. Every run is bounded in time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from kb import __version__
from kb.bench_builds import Builds
from kb.bench_http import WORKERS, HttpLoad, measure_server
from kb.bench_publish import measure_publish
from kb.bench_queries import DEFAULT_QUERIES, MODES, REPEATED, K, QueryPool, load_queries
from kb.bench_record import Progress, Record
from kb.errors import ConfigError, KbError
from kb.loadtest import percentiles

# Search, indexing and workflow are imported when a run starts (_import_measures): `kb` starts without them, and
# so does every load client process (spawned, it imports the kb command's modules again).
MEASURES = ("inprocess", "http", "coldstart", "build", "publish", "memory")
SERVED = frozenset({"inprocess", "http", "coldstart", "publish", "memory"})  # measures over the ready index
RUNNING = "running servers"  # the library and workers of a run against --ports: not the bench's to know


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how (the command's options)."""

    engines: tuple[str, ...]
    scratch: Path
    duration: float = 10.0
    clients: tuple[int, ...] = (1, 2, 16)
    only: tuple[str, ...] = MEASURES
    synthetic: int | None = None
    queries: Path = DEFAULT_QUERIES
    host: str = "127.0.0.1"
    ports: tuple[int, ...] = ()  # servers already running: load them (http only) instead of starting one


def engine_problem(engine: str) -> str | None:
    """Why an engine cannot be benchmarked (its module or library is missing), or None."""
    from kb.indexing.keyword import keyword_backend

    try:
        keyword_backend(engine)
    except (ImportError, ValueError) as error:
        return f"the {engine} keyword engine is not available: {error}"
    return None


def _import_measures() -> None:
    """Import every module a run uses, at its start: a run lasts up to an hour, and a module first imported
    halfway through it would be read from files edited since, mixing two versions of kb in one process."""
    import kb.accounts
    import kb.indexing.builder
    import kb.repository
    import kb.search
    import kb.store
    import kb.synthetic
    import kb.workflow  # noqa: F401


class Bench:
    """One `kb bench` run: call run() for the report."""

    def __init__(self, settings: dict, options: BenchOptions, progress: Progress | None = None, say=None):
        self.settings, self.options = settings, options
        self.say = say or (lambda message: None)
        self.record = Record(options.duration, progress)
        self.builds = Builds(settings, options.scratch, options.synthetic, self.record, self.say)

    def run(self) -> dict:
        """Run every selected measure for every engine (or the HTTP load against options.ports); return the report.

        Raises:
            ConfigError: an engine cannot be benchmarked.
            KbError: a server failed, a build failed, the queries file is unreadable.
        """
        options, only = self.options, set(self.options.only)
        if options.ports:
            texts = load_queries(options.queries)
            load = HttpLoad(self.record, options.clients, texts[:-REPEATED], texts[-REPEATED:])
            self.say(f"loading the servers running on {options.host} ports {', '.join(map(str, options.ports))}")
            load.run(options.host, options.ports, None, None)
            return self.report()
        _import_measures()
        for engine in options.engines:
            problem = engine_problem(engine)
            if problem:
                raise ConfigError(problem)
        texts = load_queries(options.queries) if only & {"inprocess", "http"} else []
        self.distinct = texts[:-REPEATED]
        load = HttpLoad(self.record, options.clients, self.distinct, texts[-REPEATED:])
        builds = self.builds
        builds.library()
        if options.synthetic and "build" in only:
            builds.rates()
        for engine in options.engines:
            if "build" in only:
                builds.builds(engine)
            if not only & SERVED:
                continue  # builds alone: no index to serve is made
            data = builds.ready(engine)
            if "inprocess" in only:
                self._inprocess(engine, data)
            if only & {"coldstart", "http", "memory"}:
                log = builds.folder / f"serve-{engine}.log"
                measure_server(load, engine, builds.content, data, log, options.host, only, self.say)
            if "publish" in only:
                measure_publish(builds, engine, data)
        return self.report()

    def report(self) -> dict:
        """The report: the parameters of the whole run, then every result with its own."""
        options, builds = self.options, self.builds
        if options.ports:
            parameters = dict(kb=__version__, library=RUNNING, content=None, documents=None, sections=None)
            parameters.update(engines=None, workers=None, ports=list(options.ports))
        else:
            library = f"synthetic {options.synthetic}" if options.synthetic else "shipped"
            parameters = dict(kb=__version__, library=library, content=str(builds.content))
            parameters.update(documents=builds.documents, sections=self.record.sections)
            parameters.update(engines=list(options.engines), workers=WORKERS)
        parameters.update(clients=list(options.clients), duration_s=options.duration, measures=list(options.only))
        parameters.update(target=options.host, queries=str(options.queries), k=K, cpus=os.cpu_count())
        if not options.ports:
            parameters.update(self._index_parameters())
        parameters["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return {"parameters": parameters, "results": self.record.rows}

    def _index_parameters(self) -> dict:
        """How the measured index got and stores its vectors: the encoders that embedded sections in this run's
        builds (with counts), the HNSW threshold read now, and the vector index's kind."""
        from kb.indexing.vector import HNSW_THRESHOLD

        sections = self.record.sections
        shown = ", ".join(f"{label} ({count:,} texts)" for label, count in self.builds.embedded_by.items())
        kind = None if sections is None else ("hnsw" if sections >= HNSW_THRESHOLD else "exact")
        return {
            "build_encoder": shown or "none: every vector came from the embedding cache",
            "hnsw_threshold": HNSW_THRESHOLD,
            "vectors": kind,
        }

    def _inprocess(self, engine: str, data: Path) -> None:
        """Searcher.warm_up, then each mode's distinct queries searched in this process for the duration."""
        from kb.search import Searcher

        started = time.perf_counter()
        searcher = Searcher(self.builds.settings_for(engine, self.builds.content, data))
        searcher.warm_up()
        name = "Searcher.warm_up: verify and open the generation, load the query encoder"
        self.record.add("inprocess", name, engine, clients=1, ms=round((time.perf_counter() - started) * 1000, 1))
        pool, duration = QueryPool(self.distinct), self.options.duration
        for done, mode in enumerate(MODES):
            queries, times, errors, first_error = pool.share(len(MODES) - done), [], 0, None
            update = self.record.timer(f"in process, {mode}", duration)
            begun = time.perf_counter()
            for query in queries:
                started = time.perf_counter()
                if started - begun >= duration:
                    break
                try:
                    searcher.search(query, K, mode)
                except KbError as error:
                    errors += 1
                    first_error = first_error or f"{type(error).__name__}: {error.message}"[:300]
                times.append((time.perf_counter() - started) * 1000)
                update()
            update(final=True)
            elapsed = time.perf_counter() - begun
            figures = {"requests": len(times), "errors": errors, "elapsed_s": round(elapsed, 3)}
            figures.update(requests_per_s=round(len(times) / elapsed, 1), **percentiles(times))
            figures["paths_ran_out"] = len(times) == len(queries)
            if first_error:
                figures["first_error"] = first_error
            self.record.add("inprocess", f"Searcher.search {mode}, distinct", engine, clients=1, **figures)
