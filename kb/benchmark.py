"""`kb bench`: kb's speed measured on a library, every figure with the parameters of its run.

Per keyword engine: index builds in a scratch data folder; the library's bench data folder made ready (embedding
cache seeded from what is at hand, then an incremental build); search latency in process per mode; one real
`kb serve` (cold start, HTTP load through kb.loadtest, worker memory); publish to searchable in a scratch clone of
the content repository. Distinct queries (BANKING77 training messages) are never sent twice to one Searcher or
server, so they never hit a query cache; repeated queries cycle a few dozen. Every run is bounded in time.

Synthetic libraries (up to 100,000 sections) are embedded texts shortest first (:class:`LengthSorted`) by the
faster of torch and fp32 ONNX, as measured on RATE_SECTIONS synthetic sections when builds are measured (ONNX
when they are not). Both give the same vectors (least cosine >= 0.9999, recorded), so the index and every search
figure are a torch build's; only build times depend on the choice, and their rows name the encoder. The shipped
library is embedded by the builder's own torch encoder: its cold build is what `kb index --full` takes.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from kb import __version__
from kb.config import PROJECT_ROOT, load_settings
from kb.errors import ConfigError, IndexError_, InputError, KbError
from kb.loadtest import Server, percentiles, run_load

if TYPE_CHECKING:
    import numpy as np

# Search, indexing and workflow are imported when a run starts (_import_measures): `kb` starts without them, and
# so does every load client process (spawned, it imports the kb command's modules again).
MODES = ("hybrid", "keyword", "semantic")  # kb.results.MODES, in the order measured
MEASURES = ("inprocess", "http", "coldstart", "build", "publish", "memory")
DEFAULT_QUERIES = PROJECT_ROOT.parent / "shared" / "benchmarks" / "banking77" / "train.csv"
REPEATED = 32  # queries cycled by the repeated-query runs
WORKERS = 2
K = 5
MAX_PUBLISHES = 20
USERS = ("author", "approver")  # the roles of the two users who publish in the scratch clone
UNLIMITED = "1000000000/minute"  # the server's rate limits: never reached
CACHE_FILES = ("models", "embeddings.sqlite")
ENCODERS = ("torch", "onnx")  # what may embed a synthetic library, the faster measured doing it
SYNTHETIC_ENCODER = "onnx"  # used when builds are not measured (fp32 ONNX measured faster than torch here)
RATE_SECTIONS = 500  # synthetic sections each encoder embeds to measure its rate
RATE_ROUNDS = 5  # slices of them, each embedded by every encoder in turn
ONNX_THREADS = 2  # ONNX Runtime intra-op threads of a synthetic build (the bench has the machine)

Progress = Callable[[str, int, int], Callable[[int], None]]


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


def engine_problem(engine: str) -> str | None:
    """Why an engine cannot be benchmarked (its module or library is missing), or None."""
    from kb.indexing.keyword import keyword_backend

    try:
        keyword_backend(engine)
    except (ImportError, ValueError) as error:
        return f"the {engine} keyword engine is not available: {error}"
    return None


def load_queries(path: Path) -> list[str]:
    """The distinct texts of a CSV file's "text" column, in a fixed shuffled order (the file is sorted by intent).

    Raises:
        InputError: the file cannot be read or has no "text" column.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            texts = list(dict.fromkeys(row["text"].strip() for row in csv.DictReader(handle) if row["text"].strip()))
    except (OSError, KeyError, UnicodeDecodeError) as error:
        raise InputError(f"queries file {path}: {error}", {"field": "queries"}) from None
    random.Random("kb-bench").shuffle(texts)
    if len(texts) <= REPEATED:
        raise InputError(f"queries file {path}: {len(texts)} distinct texts, need more than {REPEATED}")
    return texts


class LengthSorted:
    """An encoder that embeds texts shortest first and returns their vectors in the order given.

    A batch is padded to its longest text; texts of like length in one batch pad little, which halves the time
    of a synthetic library's embedding here. Padding changes no vector (the attention mask and mean pooling leave
    padded tokens out): the vectors are the inner encoder's to float rounding.
    """

    def __init__(self, inner, label: str):
        """
        Args:
            inner: an encoder (.encode(texts, progress) -> unit float32 vectors).
            label: what the report calls it.
        """
        self.inner, self.label = inner, label
        self.kind = getattr(inner, "kind", "encoder")

    def encode(self, texts, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed texts into unit vectors (row i for texts[i]), calling progress(n) as batches finish."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = self.inner.encode([texts[i] for i in order], progress)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


def make_encoder(kind: str, data_dir: Path, model: str) -> LengthSorted:
    """A synthetic build's encoder: "torch" (the builder's, loaded once per process) or "onnx" (fp32, ONNX_THREADS
    threads, from data_dir's export, made first if missing), embedding texts shortest first.

    Raises:
        ValueError: an unknown kind.
        IndexError_: the ONNX export had to be made and differs from torch.
    """
    from kb.indexing import embeddings, query_encoder

    if kind == "torch":
        return LengthSorted(embeddings.torch_encoder(model), "torch, length-sorted batches")
    if kind == "onnx":
        folder = query_encoder.ensure_onnx(data_dir, model)
        encoder = embeddings.OnnxEncoder(folder, threads=ONNX_THREADS)
        return LengthSorted(encoder, f"onnx fp32, {ONNX_THREADS} threads, length-sorted batches")
    raise ValueError(f"unknown encoder {kind!r}: choose from {', '.join(ENCODERS)}")


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


class _Pool:
    """Distinct queries handed out once each."""

    def __init__(self, texts: list[str]):
        self.texts, self.used = texts, 0

    def share(self, runs_left: int) -> list[str]:
        """An equal share of what is left for one of runs_left runs."""
        count = (len(self.texts) - self.used) // max(1, runs_left)
        self.used += count
        return self.texts[self.used - count : self.used]


def _search_path(text: str, mode: str) -> str:
    return f"/api/v1/search?q={quote_plus(text)}&mode={mode}&k={K}"


class Bench:
    """One `kb bench` run: call run() for the report."""

    def __init__(self, settings: dict, options: BenchOptions, progress: Progress | None = None, say=None):
        self.settings, self.options, self.progress = settings, options, progress
        self.say = say or (lambda message: None)
        self.results: list[dict] = []
        self.sections: int | None = None
        self.documents: int | None = None
        self.encoder_kind = SYNTHETIC_ENCODER  # a synthetic library's encoder, until the rates say otherwise
        self.encoder: LengthSorted | None = None
        self.embedded_by: dict[str, int] = {}  # encoder label -> sections it embedded in this run's builds

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run every selected measure for every engine; return the report.

        Raises:
            ConfigError: an engine cannot be benchmarked.
            KbError: a server failed, a build failed, the queries file is unreadable.
        """
        _import_measures()
        for engine in self.options.engines:
            problem = engine_problem(engine)
            if problem:
                raise ConfigError(problem)
        only = set(self.options.only)
        texts = load_queries(self.options.queries) if only & {"inprocess", "http"} else []
        self.distinct, self.repeated = texts[:-REPEATED], texts[-REPEATED:]
        self.folder, self.content = self._library()
        if self.options.synthetic and "build" in only:
            self._rates()
        for engine in self.options.engines:
            if "build" in only:
                self._builds(engine)
            data = self._ready(engine)
            if "inprocess" in only:
                self._inprocess(engine, data)
            if only & {"coldstart", "http", "memory"}:
                self._server(engine, data, only)
            if "publish" in only:
                self._publish(engine, data)
        return self.report()

    def report(self) -> dict:
        """The report: the parameters of the whole run, then every result with its own."""
        options = self.options
        library = f"synthetic {options.synthetic}" if options.synthetic else "shipped"
        parameters = dict(kb=__version__, library=library, content=str(self.content), documents=self.documents)
        parameters.update(sections=self.sections, engines=list(options.engines), workers=WORKERS)
        parameters.update(clients=list(options.clients), duration_s=options.duration, measures=list(options.only))
        parameters.update(target=options.host, queries=str(options.queries), k=K, cpus=os.cpu_count())
        parameters.update(self._index_parameters())
        parameters["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return {"parameters": parameters, "results": self.results}

    def _index_parameters(self) -> dict:
        """How the measured index got and stores its vectors: the encoders that embedded sections in this run's
        builds (with counts), the HNSW threshold read now, and the vector index's kind."""
        from kb.indexing.vector import HNSW_THRESHOLD

        shown = ", ".join(f"{label} ({count:,} texts)" for label, count in self.embedded_by.items())
        kind = None if self.sections is None else ("hnsw" if self.sections >= HNSW_THRESHOLD else "exact")
        return {
            "build_encoder": shown or "none: every vector came from the embedding cache",
            "hnsw_threshold": HNSW_THRESHOLD,
            "vectors": kind,
        }

    def _record(self, measure: str, name: str, engine: str, clients=None, workers=None, **figures) -> None:
        """One result, with the parameters of its run (duration: the bound of a time-bounded run)."""
        bounded = measure in ("inprocess", "http", "publish")
        row = {"measure": measure, "name": name, "engine": engine, "sections": self.sections, "workers": workers}
        row.update(clients=clients, duration_s=self.options.duration if bounded else None, **figures)
        self.results.append(row)

    def _timer(self, label: str, seconds: float) -> Callable[..., None]:
        """A progress bar over time: update() as time passes, update(final=True) at the end."""
        if not self.progress:
            return lambda final=False: None
        total, started, shown = max(1, round(seconds * 10)), time.perf_counter(), [0]
        tick = self.progress(label, total, 0)

        def update(final: bool = False) -> None:
            due = total if final else min(total, int((time.perf_counter() - started) * 10))
            if due > shown[0]:
                tick(due - shown[0])
                shown[0] = due

        return update

    # -- libraries and data folders --------------------------------------------------------------
    def _library(self) -> tuple[Path, Path]:
        """(the library's scratch folder, its content folder): the shipped library, or a synthetic one."""
        from kb.synthetic import generate

        source = self.settings["CONTENT_DIR"]
        if not self.options.synthetic:
            return self.options.scratch / "shipped", source
        folder = self.options.scratch / f"synthetic-{self.options.synthetic}"
        library = generate(self.options.synthetic, source, folder / "repo", progress=self.progress)
        self.say(f"synthetic library {'written' if library.generated else 'reused'}: {library.content}")
        return folder, library.content

    def _settings(self, engine: str, content: Path, data: Path) -> dict:
        return load_settings({"CONTENT_DIR": content, "DATA_DIR": data, "KEYWORD_ENGINE": engine})

    def _synthetic_encoder(self) -> LengthSorted | None:
        """What embeds new sections of the library: None (the builder's torch) for the shipped one, else the
        synthetic encoder (made on first use)."""
        if not self.options.synthetic:
            return None
        if self.encoder is None:
            self.encoder = make_encoder(self.encoder_kind, self.settings["DATA_DIR"], self.settings["EMBEDDING_MODEL"])
        return self.encoder

    def _build(self, engine: str, content: Path, data: Path, full: bool):
        from kb.indexing.builder import build_index

        model, encoder = self.settings["EMBEDDING_MODEL"], self._synthetic_encoder()
        if encoder is not None:
            self._copy_export(data)
        report = build_index(content, data, model, full=full, progress=self.progress, engine=engine, encoder=encoder)
        if report.embedded:
            label = encoder.label if encoder else "torch"
            self.embedded_by[label] = self.embedded_by.get(label, 0) + report.embedded
        if report.skipped:
            self.say(f"warning: {len(report.skipped)} document(s) skipped, e.g. {report.skipped[0]}")
        return report

    def _copy_export(self, target: Path) -> None:
        """Give a data folder the instance's ONNX export (a synthetic build's encoder runs it; the builder would
        otherwise load torch to export the model again)."""
        from kb.indexing import embeddings

        model = self.settings["EMBEDDING_MODEL"]
        source, folder = embeddings.onnx_folder(self.settings["DATA_DIR"], model), embeddings.onnx_folder(target, model)
        if (source / "meta.json").is_file() and not (folder / "meta.json").exists():
            shutil.copytree(source, folder, dirs_exist_ok=True)

    def _seed(self, target: Path) -> None:
        """Copy the exported model and the embedding cache into target from a folder that has them."""
        if (target / "embeddings.sqlite").exists():
            return
        candidates = sorted(self.folder.glob("data-*")) + sorted(self.folder.glob("build-*"))
        for source in [*candidates, self.settings["DATA_DIR"]]:
            if source != target and (source / "embeddings.sqlite").exists():
                target.mkdir(parents=True, exist_ok=True)
                for name in CACHE_FILES:
                    if (source / name).is_dir():
                        shutil.copytree(source / name, target / name, dirs_exist_ok=True)
                    elif (source / name).exists():
                        shutil.copy2(source / name, target / name)
                self.say(f"embedding cache and model copied from {source}")
                return

    def _ready(self, engine: str) -> Path:
        """The library's bench data folder for engine, indexed and up to date."""
        data = self.folder / f"data-{engine}"
        self._seed(data)
        started = time.perf_counter()
        report = self._build(engine, self.content, data, full=False)
        self.sections, self.documents = report.sections, report.documents
        self.say(f"{engine} index ready in {data}: {report.sections} sections ({time.perf_counter() - started:.1f} s)")
        return data

    # -- the measures ----------------------------------------------------------------------------
    def _rates(self) -> None:
        """Embed RATE_SECTIONS synthetic sections with each of ENCODERS; synthetic builds use the faster.

        Each encoder is loaded and warmed on one batch first (its load time is recorded apart). The sections go
        in RATE_ROUNDS slices, each embedded by every encoder in turn, so that a change in the machine's load
        falls on all of them alike. The rows after the first record the least cosine of their vectors to the
        first encoder's (torch).
        """
        import numpy as np

        from kb.synthetic import sample_texts

        texts = sample_texts(min(RATE_SECTIONS, self.options.synthetic), self.settings["CONTENT_DIR"])
        made, loaded = {}, {}
        for kind in ENCODERS:
            started = time.perf_counter()
            made[kind] = make_encoder(kind, self.settings["DATA_DIR"], self.settings["EMBEDDING_MODEL"])
            made[kind].encode(texts[:32])
            loaded[kind] = time.perf_counter() - started
        seconds, vectors = dict.fromkeys(ENCODERS, 0.0), {kind: [] for kind in ENCODERS}
        label, total = f"embedding rates, {' and '.join(ENCODERS)}", len(texts) * len(ENCODERS)
        tick = self.progress(label, total, 0) if self.progress else None
        size = -(-len(texts) // RATE_ROUNDS)
        for start in range(0, len(texts), size):
            for kind in ENCODERS:
                started = time.perf_counter()
                vectors[kind].append(made[kind].encode(texts[start : start + size], tick))
                seconds[kind] += time.perf_counter() - started
        rates = {kind: len(texts) / seconds[kind] for kind in ENCODERS}
        first = np.vstack(vectors[ENCODERS[0]])
        for kind in ENCODERS:
            figures = {
                "encoder": made[kind].label,
                "seconds": round(seconds[kind], 3),
                "load_s": round(loaded[kind], 3),
            }
            figures.update(sections_per_s=round(rates[kind], 1), sections=len(texts), rounds=RATE_ROUNDS)
            if kind != ENCODERS[0]:
                cosine = (np.vstack(vectors[kind]) * first).sum(axis=1).min()
                figures[f"min_cosine_to_{ENCODERS[0]}"] = round(float(cosine), 6)
            self._record("build", f"embedding rate, {len(texts)} synthetic sections", None, **figures)
        self.encoder_kind = max(rates, key=rates.get)
        self.encoder = made[self.encoder_kind]
        shown = ", ".join(f"{kind} {rate:.1f}/s" for kind, rate in rates.items())
        self.say(f"synthetic builds embed with {self.encoder_kind} ({shown})")

    def _builds(self, engine: str) -> None:
        folder = self.folder / f"build-{engine}"
        shutil.rmtree(folder, ignore_errors=True)
        encoder = self._synthetic_encoder()
        label = encoder.label if encoder else "torch"
        if encoder:
            self._copy_export(folder)  # the model export is the encoder's, not part of a synthetic build's time
        try:
            for name, full in (
                ("cold full build (empty embedding cache)", True),
                ("warm full build (embedding cache warm)", True),
                ("no-change incremental build", False),
            ):
                if encoder:
                    name = f"{name}, {encoder.kind} encoder"
                self.say(f"{engine}: {name}")
                started = time.perf_counter()
                report = self._build(engine, self.content, folder, full)
                self.sections = report.sections
                seconds = round(time.perf_counter() - started, 3)
                figures = {"seconds": seconds, "documents": report.documents, "embedded": report.embedded}
                if report.embedded:
                    figures["embedded_per_s"] = round(report.embedded / seconds, 1)
                self._record("build", name, engine, encoder=label, **figures)
            self._seed(self.folder / f"data-{engine}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _inprocess(self, engine: str, data: Path) -> None:
        from kb.search import Searcher

        started = time.perf_counter()
        searcher = Searcher(self._settings(engine, self.content, data))
        searcher.warm_up()
        name = "Searcher.warm_up: verify and open the generation, load the query encoder"
        self._record("inprocess", name, engine, clients=1, ms=round((time.perf_counter() - started) * 1000, 1))
        pool, duration = _Pool(self.distinct), self.options.duration
        for done, mode in enumerate(MODES):
            queries, times, errors, first_error = pool.share(len(MODES) - done), [], 0, None
            update = self._timer(f"in process, {mode}", duration)
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
            self._record("inprocess", f"Searcher.search {mode}, distinct", engine, clients=1, **figures)

    def _server(self, engine: str, data: Path, only: set[str]) -> None:
        env = {**os.environ, "KB_CONTENT_DIR": str(self.content), "KB_DATA_DIR": str(data)}
        env.update(KB_KEYWORD_ENGINE=engine, KB_RATE_LIMIT_SEARCH=UNLIMITED, KB_RATE_LIMIT_READ=UNLIMITED)
        env.update(KB_WATCH_INTERVAL="0", KB_LOG_LEVEL="WARNING", KB_WORKERS=str(WORKERS))
        self.say(f"{engine}: starting kb serve --workers {WORKERS}")
        with Server(env, WORKERS, self.folder / f"serve-{engine}.log", self.options.host) as server:
            first = server.start()
            if "coldstart" in only:
                name = "kb serve start to first answered search"
                self._record("coldstart", name, engine, workers=WORKERS, ms=round(first, 1))
            server.wait_settled()
            if "http" in only:
                self._load(engine, server)
            if "memory" in only:
                self._record("memory", "VmRSS after the HTTP runs", engine, workers=WORKERS, **server.memory())

    def _load(self, engine: str, server: Server) -> None:
        clients = self.options.clients
        others = 2 if 2 in clients else min(clients)
        runs = [(kind, "hybrid", c) for c in clients for kind in ("distinct", "repeated", "healthz")]
        runs += [("distinct", mode, others) for mode in MODES if mode != "hybrid"]
        pool, distinct_left = _Pool(self.distinct), sum(kind == "distinct" for kind, _, _ in runs)
        p50: dict[tuple[str, int], float | None] = {}
        for kind, mode, count in runs:
            if kind == "healthz":
                paths, name = [["/healthz"]] * count, "GET /healthz"
            elif kind == "repeated":
                cycled = [_search_path(t, mode) for t in self.repeated]
                paths, name = [cycled[i:] + cycled[:i] for i in range(count)], f"GET search {mode}, repeated"
            else:
                share = [_search_path(t, mode) for t in pool.share(distinct_left)]
                distinct_left -= 1
                paths, name = [share[i::count] for i in range(count)], f"GET search {mode}, distinct"
            update = self._timer(f"{name}, {count} client(s)", self.options.duration)
            result = run_load(server.host, server.port, paths, self.options.duration, kind != "distinct", update)
            update(final=True)
            figures = result.figures()
            if kind != "distinct":
                figures.pop("paths_ran_out")
            p50[(kind if mode == "hybrid" else mode, count)] = figures["p50_ms"]
            self._record("http", name, engine, count, WORKERS, **figures)
        for count in clients:
            base, distinct, repeated = (p50.get((kind, count)) for kind in ("healthz", "distinct", "repeated"))
            ratios = {"ratio": distinct, "ratio_repeated": repeated}
            ratios = {k: round(v / base, 2) if base and v else None for k, v in ratios.items()}
            self._record("http", "search hybrid p50 / healthz p50", engine, count, WORKERS, **ratios)

    def _publish(self, engine: str, data: Path) -> None:
        from kb.repository import run_git
        from kb.store import DB_NAME

        top = run_git(self.content, "rev-parse", "--show-toplevel", check=False)
        if not top:
            self.say(f"publish skipped: {self.content} is not in a git repository")
            return
        work = self.folder / f"publish-{engine}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            work.mkdir(parents=True)
            run_git(work, "clone", "-q", "--local", top.strip(), str(work / "repo"))
            content = work / "repo" / self.content.resolve().relative_to(Path(top.strip()).resolve())
            shutil.copytree(data, work / "data", ignore=shutil.ignore_patterns(f"{DB_NAME}*", ".build.lock"))
            settings = self._settings(engine, content, work / "data")
            self._build(engine, content, work / "data", full=False)
            self._publish_runs(engine, settings)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _publish_runs(self, engine: str, settings: dict) -> None:
        from kb import accounts, store
        from kb.search import Searcher
        from kb.workflow import Workflow

        db = store.connect(settings["DATA_DIR"])
        try:
            author, approver = (accounts.add_user(db, f"bench-{r}", r, f"bench-{r}-password") for r in USERS)
        finally:
            db.close()
        reader, writer = Searcher(settings), Searcher(settings)
        reader.warm_up()
        writer.warm_up()  # a server's encoder is loaded before its first publish
        workflow = Workflow(settings, encoder=lambda: writer.encoder)
        documents = reader.generation.documents
        sop_id = min(i for i, r in documents.items() if r["status"] == "published")
        path = settings["CONTENT_DIR"] / documents[sop_id]["path"]
        rng, approve, searchable = random.Random("kb-bench-publish"), [], []
        update = self._timer(f"publish {sop_id} until searchable", self.options.duration)
        deadline = time.perf_counter() + self.options.duration
        while not approve or (time.perf_counter() < deadline and len(approve) < MAX_PUBLISHES):
            word = "benchword" + "".join(rng.choice(string.ascii_lowercase) for _ in range(10))
            lines = path.read_text(encoding="utf-8").split("\n")
            at = next(i for i, line in enumerate(lines) if line.startswith("## ")) + 1
            text = "\n".join(lines[:at] + ["", f"Bench run {len(approve)}: {word} marks this revision."] + lines[at:])
            draft, _ = workflow.create(author, sop_id, text, workflow.current_revision(sop_id), f"Bench {word}")
            workflow.submit(author, draft.id)
            started = time.perf_counter()
            revision = workflow.approve(approver, draft.id)
            approve.append((time.perf_counter() - started) * 1000)
            while not any(h.revision == revision for h in reader.search(word, 1, "keyword").hits):
                if time.perf_counter() - started > 300:
                    raise IndexError_(f"the published revision {revision} was not searchable after 300 s")
                time.sleep(0.005)
            searchable.append((time.perf_counter() - started) * 1000)
            update()
        update(final=True)
        name = "publish until a separate warm Searcher finds it"
        found = {f"searchable_{k}": v for k, v in percentiles(searchable).items()}
        approved = {f"approve_{k}": v for k, v in percentiles(approve).items()}
        self._record("publish", name, engine, requests=len(approve), errors=0, **approved, **found)
