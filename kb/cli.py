"""The `kb` command line."""

from __future__ import annotations

import json
import logging
import sys
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


def _progress(label: str, total: int, already: int):
    """A progress bar on stderr for slow steps."""
    bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
    bar.__enter__()
    state = {"done": already}

    def tick(n: int) -> None:
        bar.update(n)
        state["done"] += n
        if state["done"] >= total:
            bar.__exit__(None, None, None)

    return tick


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
    from kb.indexing.builder import build_index

    settings = _settings(ctx)
    content = settings["CONTENT_DIR"]
    if not content.is_dir():
        raise click.ClickException(f"content folder {content} does not exist (set KB_CONTENT_DIR)")
    report = build_index(
        content, settings["DATA_DIR"], settings["EMBEDDING_MODEL"], full=full, progress=None if as_json else _progress
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
        if report.skipped:
            click.echo(f"skipped {len(report.skipped)} document(s): {', '.join(report.skipped)}", err=True)
    library_errors = [p for p in report.problems if p.severity == "error" and not p.file.endswith(".md")]
    if report.skipped or library_errors:
        ctx.exit(1)


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
    import html
    import re

    filters = {"business_line": business_line, "category": category, "type": doc_type}
    results = _searcher(ctx).search(query, k, mode, filters if any(filters.values()) else None)
    if as_json:
        click.echo(json.dumps(results.to_dict(), indent=2, ensure_ascii=False))
        return
    if not results.hits:
        click.echo("no results")
    for rank, hit in enumerate(results.hits, start=1):
        snippet = html.unescape(re.sub(r"</?mark>", "", hit.snippet))
        click.echo(f"{rank}. {hit.title} [{hit.sop_id}] > {hit.heading}  (score {hit.score:.4f})")
        click.echo(f"   {hit.url}")
        click.echo(f"   {snippet}")


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
    from kb.errors import IndexError_, IndexNotBuiltError
    from kb.indexing.builder import current_generation

    settings = _settings(ctx)
    try:
        current_generation(settings["DATA_DIR"])  # fail now, clearly, if no index was ever built
    except IndexNotBuiltError:
        raise
    except IndexError_ as error:  # damaged: serve anyway, /healthz and search say why until a rebuild
        click.echo(f"kb serve: warning: {error.message}", err=True)
    from kb.web.server import run

    run(host or settings["HOST"], port or settings["PORT"], workers or settings["WORKERS"])


def _db(ctx: click.Context):
    """The workflow database of the instance folder, closed when the command ends."""
    from kb.store import connect

    db = connect(_settings(ctx)["DATA_DIR"])
    ctx.call_on_close(db.close)
    return db


def _cli_actor() -> str:
    """The audit actor of a CLI command: cli: and the operating-system user."""
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli:unknown"


class _Audit:
    """Record one audit row for a with-block: ok, or failed with the KbError's message (then re-raised).

    Inside the block, .target and .details may change once more is known (a new key's id).
    """

    def __init__(self, db, action: str, target: str, **details):
        self.db, self.action, self.target, self.details = db, action, target, details

    def __enter__(self) -> _Audit:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        from kb.audit import record

        if kind is None:
            outcome, details = "ok", self.details or None
        elif isinstance(error, KbError):
            outcome, details = "failed", {**self.details, "error": error.message}
        else:
            return
        record(
            self.db, self.action, actor=_cli_actor(), target=self.target, outcome=outcome, client="cli", details=details
        )


def _read_password(from_stdin: bool) -> str:
    """A password from one line of stdin, or asked twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@main.group("users")
def users_group() -> None:
    """Manage the people who sign in and their roles (agent, author, approver, admin)."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, help="agent, author, approver or admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin instead of asking.")
@click.pass_context
def users_add_command(ctx: click.Context, name: str, role: str, password_stdin: bool) -> None:
    """Add a user with a role and a password (asked twice, hidden)."""
    from kb.accounts import add_user

    db = _db(ctx)
    password = _read_password(password_stdin)
    with _Audit(db, "user_added", f"user:{name}", role=role):
        user = add_user(db, name, role, password)
    click.echo(f"added user {user.name} ({user.role})")


@users_group.command("role")
@click.argument("name")
@click.argument("role")
@click.pass_context
def users_role_command(ctx: click.Context, name: str, role: str) -> None:
    """Give a user another role."""
    from kb.accounts import get_user, set_role

    db = _db(ctx)
    before = get_user(db, name)
    old = before.role if before else None
    with _Audit(db, "role_changed", f"user:{name}", **{"from": old, "to": role}):
        user = set_role(db, name, role)
    click.echo(f"{user.name}: {old} -> {user.role}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, name, role, disabled}.")
@click.pass_context
def users_list_command(ctx: click.Context, as_json: bool) -> None:
    """List the users and their roles."""
    from dataclasses import asdict

    from kb.accounts import list_users

    users = list_users(_db(ctx))
    if as_json:
        click.echo(json.dumps([asdict(u) for u in users], indent=2))
        return
    if not users:
        click.echo("no users", err=True)
    width = max((len(u.name) for u in users), default=0)
    for user in users:
        click.echo(f"{user.name:<{width}}  {user.role}" + ("  (disabled)" if user.disabled else ""))


@users_group.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin instead of asking.")
@click.pass_context
def users_password_command(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a user's password (asked twice, hidden)."""
    from kb.accounts import set_password

    db = _db(ctx)
    password = _read_password(password_stdin)
    with _Audit(db, "password_changed", f"user:{name}"):
        set_password(db, name, password)
    click.echo(f"changed the password of {name}")


@main.group("keys")
def keys_group() -> None:
    """Manage API keys for chatbots and agent-assist tools (stored hashed, shown once)."""


@keys_group.command("create")
@click.option("--user", "user_name", required=True, help="The user the key acts as (it has that user's role).")
@click.option("--name", "label", required=True, help="A label saying what uses the key (1-64 characters).")
@click.pass_context
def keys_create_command(ctx: click.Context, user_name: str, label: str) -> None:
    """Create an API key and print it alone on the last line: it is never shown again."""
    from kb.accounts import create_key, get_user

    db = _db(ctx)
    with _Audit(db, "key_created", f"user:{user_name}", user=user_name, label=label) as entry:
        key, row = create_key(db, user_name, label)
        entry.target = f"key:{row['id']}"
        entry.details["prefix"] = row["prefix"]
    role = get_user(db, row["user"]).role
    click.echo(f"created key {row['id']} for user {row['user']} ({role}), label {row['label']!r}:")
    click.echo("warning: this key is shown only once; store it now", err=True)
    click.echo(key)


@keys_group.command("list")
@click.option("--user", "user_name", default=None, help="Only this user's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, user, label, prefix, created, ...}.")
@click.pass_context
def keys_list_command(ctx: click.Context, user_name: str | None, as_json: bool) -> None:
    """List API keys: their first characters, never the keys."""
    from kb.accounts import list_keys

    keys = list_keys(_db(ctx), user_name)
    if as_json:
        click.echo(json.dumps(keys, indent=2))
        return
    if not keys:
        click.echo("no keys", err=True)
    for k in keys:
        state = f"revoked {k['revoked']}" if k["revoked"] else f"last used {k['last_used'] or 'never'}"
        click.echo(f"{k['id']:>4}  {k['prefix']}...  {k['user']}  {k['label']!r}  created {k['created']}  {state}")


@keys_group.command("revoke")
@click.argument("key_id", metavar="ID", type=int)
@click.pass_context
def keys_revoke_command(ctx: click.Context, key_id: int) -> None:
    """Revoke an API key: it stops working at once."""
    from kb.accounts import revoke_key

    db = _db(ctx)
    with _Audit(db, "key_revoked", f"key:{key_id}") as entry:
        revoked_before = db.execute("SELECT revoked FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        row = revoke_key(db, key_id)
        already = revoked_before["revoked"] is not None
        entry.details.update(user=row["user"], label=row["label"], already_revoked=already)
    if already:
        click.echo(f"key {row['id']} ({row['user']}, {row['label']!r}) was already revoked at {row['revoked']}")
    else:
        click.echo(f"revoked key {row['id']} ({row['user']}, {row['label']!r})")
