"""The `kb` command line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from kb.config import load_settings
from kb.errors import KbError
from kb.redaction import install_log_filter, redact


class KbGroup(click.Group):
    """A click group that turns every KbError into a clean message and exit status."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KbError as error:
            raise click.ClickException(redact(error.message)) from None


def _settings(ctx: click.Context) -> dict:
    return ctx.obj["settings"]


@click.group(cls=KbGroup)
@click.version_option(package_name="kb")
@click.pass_context
def main(ctx: click.Context) -> None:
    """kb: a knowledge base for payment customer support.

    Settings come from KB_* environment variables (KB_CONTENT_DIR, KB_DATA_DIR, ...);
    see the README for the list.
    """
    try:
        settings = load_settings()
    except KbError as error:
        raise click.ClickException(redact(error.message)) from None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kb").setLevel(settings["LOG_LEVEL"])
    install_log_filter()
    ctx.obj = {"settings": settings}


def _problem_line(problem) -> str:
    """One problem as kb index and kb lint print it: file:line: [warning: ]field: message."""
    prefix = "warning: " if problem.severity == "warning" else ""
    what = f"{problem.field}: {problem.message}" if problem.field else problem.message
    return f"{problem.file}:{problem.line}: {prefix}{what}"


@main.command("index")
@click.option("--full", is_flag=True, help="Rebuild everything instead of only what changed.")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@click.pass_context
def index_command(ctx: click.Context, full: bool, as_json: bool) -> None:
    """Index the SOP library (incrementally unless --full).

    Every problem in a document is reported with its file and line; valid
    documents are indexed anyway, and the exit status is 1 if any document was
    skipped or the taxonomy, the shared values or the glossary have an error.
    """
    from kb.cli_bench import progress_bar
    from kb.indexing.builder import build_index

    settings = _settings(ctx)
    content = settings["CONTENT_DIR"]
    _follow_remote(settings)
    if not content.is_dir():
        raise click.ClickException(f"content folder {content} does not exist (set KB_CONTENT_DIR)")
    report = build_index(
        content,
        settings["DATA_DIR"],
        settings["EMBEDDING_MODEL"],
        full=full,
        progress=None if as_json else progress_bar,
        engine=settings["KEYWORD_ENGINE"],
        tickets=_labelled_tickets(settings),
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            click.echo(_problem_line(problem), err=True)
        if report.up_to_date:
            click.echo(
                f"index is up to date: {report.documents} documents, {report.sections} sections "
                f"({report.seconds:.2f} s)"
            )
        else:
            kind = "full" if report.full else "incremental"
            click.echo(
                f"{kind} build {report.generation}: {report.documents} documents, {report.sections} sections, "
                f"{len(report.changed)} changed, {len(report.removed)} removed, {report.embedded} embedded "
                f"({report.seconds:.2f} s)"
            )
            click.echo(_classifier_line(report.classifier))
        if report.skipped:
            click.echo(f"skipped {len(report.skipped)} document(s): {', '.join(report.skipped)}", err=True)
    library_errors = [p for p in report.problems if p.severity == "error" and not p.file.endswith(".md")]
    if report.skipped or library_errors:
        ctx.exit(1)


def _follow_remote(settings: dict) -> None:
    """With KB_CONTENT_REMOTE: clone it into an empty content folder, or fetch and fast-forward the clone; a folder
    that is not its clone, or a remote that cannot be reached, stops the command (a ConfigError naming it)."""
    from kb.workflow import Workflow

    head = Workflow(settings).publisher.follow()
    if head is not None:
        logging.getLogger("kb.remote").info("the content clone follows the remote at %s", head[:12])


def _classifier_line(record: dict) -> str:
    """One line on the build's category classifier."""
    if not record.get("trained"):
        return "category classifier: none (the taxonomy has fewer than two categories)"
    if record.get("reused"):
        return f"category classifier: unchanged ({record.get('examples')} examples), reused"
    accuracy = record.get("accuracy")
    held_out = f", held-out accuracy {accuracy:.1%}" if accuracy is not None else ""
    return (
        f"category classifier: trained on {record['examples']} examples ({record['phrasings']} phrasings, "
        f"{record['tickets']} tickets) in {record['seconds']:.1f} s{held_out}"
    )


def _labelled_tickets(settings: dict) -> list[tuple[str, str]]:
    """The labelled tickets of the instance database (kb tickets import), for the classifier."""
    from contextlib import closing

    from kb.store import connect
    from kb.tickets import training_examples

    with closing(connect(settings["DATA_DIR"])) as db:
        return training_examples(db)


@main.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print {documents, errors, warnings, problems} as JSON.")
@click.pass_context
def lint_command(ctx: click.Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Check SOP documents and print every problem as file:line: message.

    With no PATH the whole library (KB_CONTENT_DIR) is checked, including the
    taxonomy and the shared values; with PATHs (files or folders inside the
    library) only their problems are shown. Exit status 1 if there is an error;
    warnings (a passed review date, an unserved category) do not fail.
    """
    from kb.lint import lint

    root = _settings(ctx)["CONTENT_DIR"]
    outside = [p for p in paths if root.resolve() not in [p.resolve(), *p.resolve().parents]]
    if outside:
        raise click.ClickException(f"{outside[0]} is not inside the content folder {root} (set KB_CONTENT_DIR)")
    report = lint(root, list(paths) or None)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            click.echo(_problem_line(problem))
        for kind, w in sorted(report.words.items()):
            click.echo(f"{kind} words: min {w['min']:,}, median {w['median']:,}, max {w['max']:,}", err=True)
        click.echo(f"{report.documents} documents: {report.errors} errors, {report.warnings} warnings", err=True)
    if report.errors:
        ctx.exit(1)


def _searcher(ctx: click.Context):
    from kb.search import Searcher

    return Searcher(_settings(ctx))


@main.command("search")
@click.argument("query")
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "keyword", "semantic"]),
    default="hybrid",
    show_default=True,
    help="How to search.",
)
@click.option("-k", "k", type=int, default=5, show_default=True, help="How many SOPs to return.")
@click.option("--business-line", default=None, help="Only documents of this business line (or 'all').")
@click.option("--category", default=None, help="Only documents in this category or group.")
@click.option("--type", "doc_type", type=click.Choice(["sop", "policy"]), default=None, help="Only this type.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON response.")
@click.pass_context
def search_command(ctx, query, mode, k, business_line, category, doc_type, as_json) -> None:
    """Search the library and print the best SOP sections."""
    from kb.snippets import plain_text

    filters = {"business_line": business_line, "category": category, "type": doc_type}
    results = _searcher(ctx).search(query, k, mode, filters if any(filters.values()) else None)
    if as_json:
        click.echo(json.dumps(results.to_dict(), indent=2, ensure_ascii=False))
        return
    if not results.hits:
        click.echo("no results")
    for rank, hit in enumerate(results.hits, start=1):
        click.echo(f"{rank}. {hit.title} [{hit.sop_id}] > {hit.heading}  (score {hit.score:.4f})")
        click.echo(f"   {hit.url}")
        click.echo(f"   {plain_text(hit.snippet)}")


@main.command("eval")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: {n, modes: {mode: metrics}}.")
@click.option(
    "--explain",
    "explain_query",
    metavar="QUERY",
    help="Instead of measuring, show for QUERY each retriever's ranking and the fused result "
    "(relevant SOPs marked * when FILE labels that query).",
)
@click.option("-k", "k", type=int, default=5, show_default=True, help="How many SOPs --explain shows per ranking.")
@click.pass_context
def eval_command(ctx: click.Context, file: Path | None, as_json: bool, explain_query: str | None, k: int) -> None:
    """Measure hit@1, hit@3, hit@5 and MRR per mode on labelled queries (JSON lines), or --explain one query."""
    from kb.evaluation import evaluate, load_queries

    queries = load_queries(file) if file else []
    if explain_query is not None:
        relevant = {r for q in queries if q.query == explain_query for r in q.relevant}
        _explain(_searcher(ctx).explain(explain_query, k), relevant, as_json)
        return
    if file is None:
        raise click.UsageError("give a FILE of labelled queries, or --explain QUERY")
    result, skipped = evaluate(_searcher(ctx), queries)
    if skipped:
        click.echo(f"skipped {len(skipped)} of {len(queries)} queries: none of their SOPs is in the index", err=True)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['n']} queries")
    click.echo(f"{'mode':<10}{'hit@1':>8}{'hit@3':>8}{'hit@5':>8}{'mrr':>8}")
    for mode, metrics in result["modes"].items():
        click.echo(f"{mode:<10}" + "".join(f"{metrics[m]:>8.3f}" for m in ("hit@1", "hit@3", "hit@5", "mrr")))


def _explain(report: dict, relevant: set[str], as_json: bool) -> None:
    """Print an explanation from Searcher.explain."""
    if as_json:
        click.echo(json.dumps({**report, "relevant": sorted(relevant)}))
        return
    mark = lambda sop_id: "*" if sop_id in relevant else " "  # noqa: E731
    click.echo(f"query:    {report['query']}")
    click.echo(f"searched: {report['searched']}")
    if report["expansions"]:
        click.echo("keyword also searches: " + ", ".join(f"{t} (x{w:g})" for t, w in report["expansions"]))
    for name, rows in report["rankings"].items():
        click.echo(f"\n{name}:")
        for rank, row in enumerate(rows, 1):
            score = "" if row["score"] is None else f"  {row['score']:.4f}"
            where = f"  #{row['section']}" if row["section"] else ""
            click.echo(f" {mark(row['sop_id'])}{rank:>2}. {row['sop_id']}{where}{score}")
    click.echo(
        f"\ntaxonomy confidence {report['taxonomy_confidence']:.3f}: "
        f"weight {report['weights']['taxonomy']:g} (KB_TAXONOMY_FULL_SIMILARITY scales it below full)"
    )
    click.echo("\nhybrid (fused; rank in keyword / semantic / taxonomy):")
    for rank, row in enumerate(report["hybrid"], 1):
        ranks = " / ".join("-" if r is None else str(r) for r in row["ranks"].values())
        click.echo(
            f" {mark(row['sop_id'])}{rank:>2}. {row['sop_id']}  #{row['section']}  {row['score']:.4f}  ({ranks})"
        )


@main.command("serve")
@click.option("--host", default=None, help="Address to listen on (default KB_HOST).")
@click.option("--port", type=int, default=None, help="Port (default KB_PORT).")
@click.option("--workers", type=int, default=None, help="Worker processes (default KB_WORKERS).")
@click.pass_context
def serve_command(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the web app and JSON API with gunicorn."""
    from kb import store
    from kb.errors import IndexError_, IndexNotBuiltError
    from kb.indexing.builder import current_generation
    from kb.web.limits import check_storage

    settings = _settings(ctx)
    try:
        store.check(settings["DATA_DIR"])  # a shared database that cannot be reached: stop, naming KB_DATABASE_URL
        check_storage(settings)  # so is a Redis for the rate limits (KB_RATE_LIMIT_STORAGE)
    except KbError as error:
        raise click.ClickException(redact(error.message)) from None
    _follow_remote(settings)
    try:
        current_generation(settings["DATA_DIR"], settings["KEYWORD_ENGINE"])  # fail now if none was ever built
    except IndexNotBuiltError:
        raise
    except IndexError_ as error:  # damaged or another engine's: serve anyway, /healthz and search say why
        click.echo(f"kb serve: warning: {error.message}", err=True)
    _prepare_query_model(settings)
    from kb.web.server import run

    run(host or settings["HOST"], port or settings["PORT"], workers or settings["WORKERS"])


def _prepare_query_model(settings: dict) -> None:
    """Make the int8 query model once, before workers start (each would otherwise wait for it on its first query).

    Only from an existing ONNX export (never loads torch); a failure is a warning: queries then use fp32 ONNX.
    """
    from kb.errors import KbError
    from kb.indexing import embeddings, query_encoder

    if settings["QUERY_ENCODER"] != "onnx-int8":
        return
    folder = embeddings.onnx_folder(settings["DATA_DIR"], settings["EMBEDDING_MODEL"])
    if not (folder / "meta.json").is_file():
        return
    try:
        query_encoder.quantize_onnx(folder)
    except (KbError, OSError) as error:
        click.echo(f"kb serve: warning: no int8 query model, queries use fp32 ONNX: {error}", err=True)


from kb.cli_accounts import keys_group, users_group  # noqa: E402 - the groups are defined after main
from kb.cli_bench import bench_command  # noqa: E402 - registered after main like the groups
from kb.cli_mcp import mcp_command  # noqa: E402 - registered after main like the groups
from kb.cli_tickets import tickets_group  # noqa: E402
from kb.cli_webhooks import webhooks_group  # noqa: E402

main.add_command(users_group)
main.add_command(keys_group)
main.add_command(tickets_group)
main.add_command(bench_command)
main.add_command(webhooks_group)
main.add_command(mcp_command)

if __name__ == "__main__":  # python -m kb.cli
    main()
