"""`kb bench`: the benchmark command. kb.benchmark runs the measures; this module reads options and prints."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import click

from kb.benchmark import DEFAULT_QUERIES, MEASURES, Bench, BenchOptions
from kb.errors import InputError
from kb.files import atomic_write
from kb.loadtest import check_target

MAX_CLIENTS = 256
MAX_PORTS = 16
PROGRESS_EVERY_S = 30.0  # how often a progress line is written when stderr is not a terminal
BOTH = ("whoosh", "tantivy")
_COLUMNS = (
    "measure",
    "engine",
    "clients",
    "name",
    "requests",
    "errors",
    "requests_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
)
_SHOWN_ELSEWHERE = {*_COLUMNS, "sections", "workers", "duration_s", "error_statuses"}


def _clients(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        counts = tuple(dict.fromkeys(int(part) for part in value.split(",") if part.strip()))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of whole numbers such as 1,2,16") from None
    if not counts or not all(1 <= c <= MAX_CLIENTS for c in counts):
        raise click.BadParameter(f"give client counts from 1 to {MAX_CLIENTS}, such as 1,2,16")
    return counts


def _ports(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    parts = [part.strip() for part in value.split(",")]
    try:
        ports = [int(part) for part in parts]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of port numbers such as 8001,8002") from None
    if not 1 <= len(ports) <= MAX_PORTS:
        raise click.BadParameter(f"give 1 to {MAX_PORTS} ports, such as 8001,8002")
    wrong = [str(port) for port in ports if not 1 <= port <= 65535]
    if wrong:
        raise click.BadParameter(f"{', '.join(wrong)}: a port is a number from 1 to 65535")
    twice = sorted({port for port in ports if ports.count(port) > 1})
    if twice:
        raise click.BadParameter(f"{', '.join(map(str, twice))} given twice: each port is one running server")
    return tuple(ports)


def _only(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = {part.strip() for part in value.split(",") if part.strip()}
    unknown = sorted(chosen - set(MEASURES))
    if unknown or not chosen:
        raise click.BadParameter(f"{', '.join(unknown) or value!r}: choose from {','.join(MEASURES)}")
    return tuple(m for m in MEASURES if m in chosen)


def _target(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_target(value)
    except InputError as error:
        raise click.BadParameter(error.message) from None


def _running_only(ctx: click.Context, only: tuple[str, ...], synthetic, engine) -> tuple[str, ...]:
    """The measures of a run against --ports: http alone (refused when --only, --synthetic or --engine ask more)."""
    explicit = ctx.get_parameter_source("only") not in (None, click.core.ParameterSource.DEFAULT)
    if explicit and set(only) != {"http"}:
        others = ",".join(m for m in only if m != "http")
        raise click.UsageError(
            f"--ports loads servers that are already running: only the http measure runs, but --only also names "
            f"{others} (use --only http, or leave --only out)"
        )
    for name, value in (("--synthetic", synthetic), ("--engine", engine)):
        if value is not None:
            raise click.UsageError(
                f"--ports loads servers that are already running: {name} cannot choose what they serve"
            )
    return ("http",)


def progress_bar(label: str, total: int, already: int):
    """A progress bar on stderr (lines every PROGRESS_EVERY_S seconds when it is not a terminal: a log); the
    returned callback takes increments and closes the bar at the total."""
    if not sys.stderr.isatty():
        return progress_lines(label, total, already, lambda line: click.echo(line, err=True))
    bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
    bar.__enter__()
    state = {"done": already}

    def tick(n: int) -> None:
        bar.update(n)
        state["done"] += n
        if state["done"] >= total:
            bar.__exit__(None, None, None)

    return tick


def progress_lines(label: str, total: int, already: int, write, every: float = PROGRESS_EVERY_S):
    """Progress as lines for a log: one at the start, one at most every `every` seconds (done, rate, time left),
    one at the total. Returns the callback taking increments."""
    started, state = time.monotonic(), {"done": already, "shown": time.monotonic()}
    write(f"{label}: {already:,}/{total:,}")

    def tick(n: int) -> None:
        state["done"] += n
        now, done = time.monotonic(), state["done"]
        if done < total and now - state["shown"] < every:
            return
        state["shown"] = now
        elapsed = max(now - started, 1e-9)
        rate = (done - already) / elapsed
        left = f", about {(total - done) / rate:,.0f} s left" if done < total and rate > 0 else ""
        write(f"{label}: {done:,}/{total:,} ({done / max(total, 1):.0%}) in {elapsed:,.0f} s, {rate:,.1f}/s{left}")

    return tick


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if value < 1000 else f"{value:.0f}"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value)
    return str(value)


def format_report(report: dict) -> str:
    """The report as text: the run's parameters, then one line per result (its other figures at the end)."""
    p = report["parameters"]
    run = (
        f"clients {','.join(map(str, p['clients']))}, {p['duration_s']:g} s per run, k={p['k']}, {p['cpus']} CPUs, "
        f"{p['created']}"
    )
    if p.get("ports"):
        lines = [f"kb bench {p['kb']}: {p['library']} on {p['target']} ports {_cell(p['ports'])}, {run}"]
    else:
        lines = [
            f"kb bench {p['kb']}: {p['library']} library ({p['documents']} documents, {p['sections']} sections), "
            f"engines {', '.join(p['engines'])}, {p['workers']} workers, {run}",
            f"vectors {_cell(p.get('vectors'))} (HNSW from {_cell(p.get('hnsw_threshold'))} sections), "
            f"built with {_cell(p.get('build_encoder'))}",
        ]
    lines += [
        f"{'measure':<10}{'engine':<8}{'clients':>7}  {'name':<64}{'n':>7}{'errors':>7}{'req/s':>8}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  other",
    ]
    for row in report["results"]:
        extra = " ".join(f"{k}={_cell(v)}" for k, v in row.items() if k not in _SHOWN_ELSEWHERE and v is not None)
        if row.get("error_statuses"):
            extra += f" error_statuses={row['error_statuses']}"
        lines.append(
            f"{row['measure']:<10}{_cell(row['engine']):<8}{_cell(row['clients']):>7}  {row['name']:<64}"
            f"{_cell(row.get('requests')):>7}{_cell(row.get('errors')):>7}{_cell(row.get('requests_per_s')):>8}"
            + "".join(f"{_cell(row.get(k)):>9}" for k in ("p50_ms", "p95_ms", "p99_ms"))
            + f"  {extra}".rstrip()
        )
    return "\n".join(lines)


def _stop(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds, so the server and the client processes are stopped


@click.command("bench")
@click.option(
    "--synthetic", type=click.IntRange(1), metavar="N", help="A synthetic library of N sections (up to 100,000)."
)
@click.option(
    "--engine",
    type=click.Choice(["tantivy", "whoosh", "both"]),
    default=None,
    help="Keyword engine (default KB_KEYWORD_ENGINE); both measures whoosh, then tantivy.",
)
@click.option("--duration", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True, help="Seconds per run.")
@click.option("--clients", default="1,2,16", show_default=True, callback=_clients, help="Concurrent HTTP clients.")
@click.option("--only", default=",".join(MEASURES), show_default=True, callback=_only, help="Measures to run.")
@click.option("--target", default="127.0.0.1", show_default=True, callback=_target, help="127.0.0.1 or localhost.")
@click.option(
    "--ports",
    callback=_ports,
    metavar="P1,P2",
    help="Load kb servers already running on these loopback ports (client i sends to the i-th, around again): "
    "the http measure only, no build, no server of the bench's own.",
)
@click.option("--scratch", type=click.Path(file_okay=False, path_type=Path), help="Work folder [KB_DATA_DIR/bench].")
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help=f"CSV with a text column [{DEFAULT_QUERIES}].",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report here."
)
@click.pass_context
def bench_command(ctx, synthetic, engine, duration, clients, only, target, ports, scratch, queries, json_path) -> None:
    """Measure kb's speed and print a report: search in process, HTTP against a real `kb serve`, cold start,
    index builds, publish to searchable and worker memory.

    Libraries: the shipped one (KB_CONTENT_DIR), or --synthetic N sections (generated once into the scratch
    folder, a git repository, reused when it holds that N). Every run is bounded in time; the server runs
    on loopback with rate limits off and is always stopped. Distinct queries are BANKING77 training
    messages, never sent twice to one server; the other modes run at 2 clients (or the fewest given).

    With --ports, the HTTP load goes to kb servers already running on those loopback ports instead (for
    example two replicas, then one of them alone, under the same load): client i of a run sends to the
    i-th port, around again.
    """
    settings = ctx.obj["settings"]
    if ports:
        only = _running_only(ctx, only, synthetic, engine)
    options = BenchOptions(
        engines=BOTH if engine == "both" else (engine or settings["KEYWORD_ENGINE"],),
        scratch=(scratch or settings["DATA_DIR"] / "bench").resolve(),
        duration=duration,
        clients=clients,
        only=only,
        synthetic=synthetic,
        queries=queries or DEFAULT_QUERIES,
        host=target,
        ports=ports,
    )
    say = lambda message: click.echo(message, err=True)  # noqa: E731
    try:
        previous = signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread
        previous = None
    try:
        report = Bench(settings, options, progress_bar, say).run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    click.echo(format_report(report))
    if json_path:
        atomic_write(json_path, json.dumps(report, indent=2) + "\n")
        say(f"report written to {json_path}")
