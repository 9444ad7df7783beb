"""`kb webhooks`: register, list and remove outbound webhooks, read their delivery log, send what is due.

Anyone who can run kb on the instance folder administers it (as with `kb users`), so these commands need no log-in;
each add and remove is audited with the operating-system user as actor.
"""

from __future__ import annotations

import json

import click

from kb.cli_accounts import _cli_actor, _db, _settings
from kb.webhooks import EVENTS, STATUSES


@click.group("webhooks")
def webhooks_group() -> None:
    """Manage outbound webhooks: signed events to other systems when an SOP is published or retired."""


@webhooks_group.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(EVENTS),
    help="An event to send; repeat for several (default: all of them).",
)
@click.pass_context
def webhooks_add_command(ctx: click.Context, url: str, events: tuple[str, ...]) -> None:
    """Register URL (http or https) and print its signing secret alone on the last line: it is never shown again."""
    from kb.webhooks import register

    settings = _settings(ctx)
    allow_private = settings["WEBHOOK_ALLOW_PRIVATE"] == "on"
    hook, secret = register(_db(ctx), url, list(events or EVENTS), _cli_actor(), allow_private, "cli")
    click.echo(f"added webhook {hook['id']} for {hook['url']}, events {' '.join(hook['events'])}; signing secret:")
    click.echo("warning: this secret is shown only once; store it now", err=True)
    click.echo(secret)


@webhooks_group.command("list")
@click.option("--all", "include_removed", is_flag=True, help="Include removed webhooks.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, url, events, created, ...}.")
@click.pass_context
def webhooks_list_command(ctx: click.Context, include_removed: bool, as_json: bool) -> None:
    """List webhooks with their events (never their secrets)."""
    from kb.redaction import redact
    from kb.webhooks import hooks

    found = hooks(_db(ctx), include_removed)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no webhooks", err=True)
    for hook in found:
        state = f"  removed {hook['removed']}" if hook["removed"] else ""
        click.echo(
            f"{hook['id']:>4}  {redact(hook['url'])}  {','.join(hook['events'])}  "
            f"added {hook['created']} by {hook['created_by'] or '-'}{state}"
        )


@webhooks_group.command("remove")
@click.argument("hook_id", metavar="ID", type=int)
@click.pass_context
def webhooks_remove_command(ctx: click.Context, hook_id: int) -> None:
    """Remove a webhook: nothing more is sent to it, and its pending deliveries are cancelled."""
    from kb.redaction import redact
    from kb.webhooks import remove

    hook = remove(_db(ctx), hook_id, _cli_actor(), "cli")
    click.echo(f"removed webhook {hook['id']} ({redact(hook['url'])})")


@webhooks_group.command("deliveries")
@click.option("--hook", "hook_id", type=int, default=None, help="Only this webhook's deliveries.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only deliveries in this state.")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of deliveries.")
@click.pass_context
def webhooks_deliveries_command(
    ctx: click.Context, hook_id: int | None, status: str | None, limit: int, as_json: bool
) -> None:
    """The delivery log, newest first: event, SOP, status, attempts, the last answer and error."""
    from kb.redaction import redact
    from kb.webhooks import deliveries

    found = deliveries(_db(ctx), hook_id, status, limit)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no deliveries", err=True)
    for d in found:
        when = f"next {d['next_attempt']}" if d["next_attempt"] else ""
        when = f"delivered {d['delivered']}" if d["delivered"] else when
        error = f"  error: {redact(d['last_error'])}" if d["last_error"] else ""
        click.echo(
            f"{d['id']:>5}  hook {d['webhook_id']}  {d['event']}  {d['sop_id']}@{(d['revision'] or '')[:10]}  "
            f"{d['status']}  attempts {d['attempts']}  last answer {d['last_status'] or '-'}  {when}{error}".rstrip()
        )


@webhooks_group.command("deliver")
@click.option("--json", "as_json", is_flag=True, help="Print {delivered, retrying, failed, lost} as JSON.")
@click.pass_context
def webhooks_deliver_command(ctx: click.Context, as_json: bool) -> None:
    """Send the deliveries due now, once each (the server's worker does this every KB_WEBHOOK_INTERVAL seconds)."""
    from kb.webhook_delivery import deliver_due

    counts = deliver_due(_settings(ctx))
    if as_json:
        click.echo(json.dumps(counts))
        return
    click.echo(", ".join(f"{count} {what}" for what, count in counts.items()))
