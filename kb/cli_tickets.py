"""`kb tickets`: labelled tickets that train the category classifier (kb.tickets), each change audited."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kb.cli_accounts import _Audit, _cli_actor, _db

RETRAIN_HINT = "the classifier learns them at the next index build: run `kb index` (a publish does it too)"


@click.group("tickets")
def tickets_group() -> None:
    """Manage labelled tickets (customer text and its category) that train the category classifier."""


@tickets_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print {file, rows, added, duplicates} as JSON.")
@click.pass_context
def tickets_import_command(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Import labelled tickets from a CSV file with the columns text and category.

    The file is checked whole first (UTF-8, the header, every row's text and category, which must be a
    category of the taxonomy and not a group); any problem is reported with its row and nothing is imported.
    Card numbers are masked before a text is stored; rows already stored are skipped.
    """
    from kb.taxonomy import load_taxonomy
    from kb.tickets import MAX_FILE_BYTES, import_tickets

    settings = ctx.obj["settings"]
    db = _db(ctx)
    with _Audit(db, "tickets_imported", f"tickets:{file.name}", file=file.name) as entry:
        categories, _ = load_taxonomy(settings["CONTENT_DIR"])
        with open(file, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # a larger file is refused without reading it whole
        report = import_tickets(db, data, categories, file.name, _cli_actor(), size=file.stat().st_size)
        entry.details.update(rows=report.rows, added=report.added, duplicates=report.duplicates)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(
        f"imported {report.added} ticket(s) from {report.file} ({report.rows} rows, "
        f"{report.duplicates} already stored or repeated)"
    )
    if report.added:
        click.echo(RETRAIN_HINT, err=True)


@tickets_group.command("list")
@click.option("--category", default=None, help="Only tickets of this category or group.")
@click.option("--limit", type=int, default=100, show_default=True, help="How many to show (at most 1000).")
@click.option("--offset", type=int, default=0, show_default=True, help="How many to skip.")
@click.option("--json", "as_json", is_flag=True, help="Print {total, tickets: [{id, text, category, ...}]}.")
@click.pass_context
def tickets_list_command(ctx: click.Context, category: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List labelled tickets, oldest first: id, category, when and from which file, and the text (masked)."""
    from kb.tickets import list_tickets

    rows, total = list_tickets(_db(ctx), category, limit, offset)
    if as_json:
        click.echo(json.dumps({"total": total, "tickets": rows}, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no tickets", err=True)
    for row in rows:
        text = " ".join(row["text"].split())
        text = text if len(text) <= 80 else text[:79] + "…"
        click.echo(f"{row['id']:>6}  {row['category']}  {row['imported']}  {row['source']}  {text}")
    if total > offset + len(rows):
        click.echo(f"{total} in all; --offset {offset + len(rows)} shows more", err=True)


@tickets_group.command("remove")
@click.argument("ids", metavar="ID...", nargs=-1, required=True, type=int)
@click.pass_context
def tickets_remove_command(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Remove labelled tickets by id (all or none: an unknown id removes nothing)."""
    from kb.tickets import remove_tickets

    db = _db(ctx)
    with _Audit(db, "tickets_removed", "tickets", ids=list(ids)) as entry:
        removed = remove_tickets(db, ids)
        entry.details["categories"] = sorted({row["category"] for row in removed})
    click.echo(f"removed {len(removed)} ticket(s)")
    click.echo(RETRAIN_HINT, err=True)
