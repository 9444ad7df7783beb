"""Pages for policy owners: the editor with live preview, drafts and review, history, review due, audit."""

from __future__ import annotations

import datetime as dt

import yaml
from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from kb import audit, markdown
from kb.diffing import diff_html
from kb.documents import BUSINESS_LINES, FIELDS, STATUSES, TYPES, split_front_matter
from kb.errors import ConflictError, DocumentError, ForbiddenError, InputError, KbError, NotFoundError
from kb.history import parse_day
from kb.reviews import review_due
from kb.values import resolve
from kb.web import auth
from kb.web.extensions import history, path_of, searcher, workflow

bp = Blueprint("authoring", __name__)

TEMPLATE_BODY = """## Purpose

What this procedure is for, in one or two sentences.

## Scope and applicability

Who uses it, for which customers, products and channels.

## Procedure

1. First step, naming the system and the field the agent touches.
2. Next step.

## Customer macros

### Macro: Name of the macro

> Hi [first name], ...

## Escalation

Where to escalate, the fields the next tier needs, and its SLA.

## Compliance notes

PCI DSS, privacy and AML points that apply.

## Related documents

- [Refund policy](/sops/policy-refunds)
"""
FORM_FIELDS = FIELDS  # the editor's form has one field per front-matter field


def compose(form: dict) -> str:
    """The whole file from the editor's fields: YAML front matter (safe_dump) and the Markdown body."""
    front: dict = {}
    for key in FORM_FIELDS:
        value = (form.get(key) or "").strip()
        if key in ("categories", "tags"):
            items = [v.strip() for v in value.replace("\n", ",").split(",") if v.strip()]
            if items or key == "categories":
                front[key] = items
        elif key in ("effective", "review_by") and value:
            try:
                front[key] = dt.date.fromisoformat(value)  # written as a YAML date, not a quoted string
            except ValueError:
                front[key] = value  # lint names the field
        elif value or key != "review_by":
            front[key] = value
    head = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, default_flow_style=None, width=1000)
    body = (form.get("body") or "").replace("\r\n", "\n")
    return f"---\n{head}---\n\n{body.strip()}\n"


def decompose(text: str) -> dict:
    """The editor's fields from a whole file (fields it cannot read are left empty)."""
    split = split_front_matter(text)
    if split is None:
        return {"body": text}
    front, body, _ = split
    try:
        data = yaml.safe_load(front) or {}
    except yaml.YAMLError:
        data = {}
    fields = {key: "" for key in FORM_FIELDS}
    if isinstance(data, dict):
        for key in FORM_FIELDS:
            value = data.get(key)
            if isinstance(value, list):
                fields[key] = ", ".join(str(v) for v in value)
            elif value is not None:
                fields[key] = str(value)
    fields["body"] = body.lstrip("\n")
    return fields


def _body_offset(text: str) -> int:
    """Lines before the body textarea's first line in a composed file (the front matter and one blank line)."""
    split = split_front_matter(text)
    return split[2] if split else 0


def _render(sop_id: str, text: str) -> str:
    """A whole file's body as the published page shows it: shared values substituted, then rendered."""
    split = split_front_matter(text)
    resolved, _ = resolve(split[1] if split else text, workflow().checks.values(), sop_id)
    return markdown.render_html(resolved)


def _editor(fields: dict, draft=None, sop_id: str | None = None, base: str | None = None, problems=(), error=None):
    categories = sorted(c["id"] for c in searcher().generation.categories if c["parent"])
    return render_template(
        "editor.html",
        fields=fields,
        draft=draft,
        sop_id=sop_id,
        base=base,
        problems=problems,
        error=error,
        types=TYPES,
        business_lines=BUSINESS_LINES,
        statuses=STATUSES,
        categories=categories,
        summary=fields.get("summary", ""),
    ), (422 if error or any(p.severity == "error" for p in problems) else 200)


@bp.get("/sops/new")
def new_sop():
    """A new SOP from the template."""
    auth.require("author")
    fields = {key: "" for key in FORM_FIELDS}
    today = dt.date.today()
    fields.update(
        type="sop",
        business_line="all",
        status="published",
        effective=today.isoformat(),
        review_by=(today + dt.timedelta(days=180)).isoformat(),
        body=TEMPLATE_BODY,
    )
    return _editor(fields)


@bp.get("/sops/<sop_id>/edit")
def edit_sop(sop_id: str):
    """Start a draft from the published SOP."""
    auth.require("author")
    doc = searcher().document(sop_id)
    return _editor(decompose(doc["markdown"]), sop_id=sop_id, base=doc["revision"])


@bp.get("/drafts/<int:draft_id>/edit")
def edit_draft(draft_id: int):
    """Go on editing a draft."""
    draft = workflow().editable(auth.require("author"), draft_id)
    fields = {**decompose(draft.markdown), "summary": draft.summary}
    return _editor(fields, draft=draft, sop_id=draft.sop_id, base=draft.base_revision)


@bp.post("/drafts/save")
def save_draft():
    """Save the editor: a new draft, or changes to an existing one. Lint runs; errors keep the form open."""
    user = auth.require("author")
    form = request.form.to_dict()
    text = compose(form)
    draft_id = form.get("draft_id", "")
    sop_id = form.get("sop_id") or form.get("id", "").strip()
    base = form.get("base_revision") or None
    if draft_id and not (draft_id.isascii() and draft_id.isdigit() and len(draft_id) <= 12):
        raise NotFoundError(f"no draft with id {draft_id[:20]!r}", {"field": "draft_id"})
    try:
        if draft_id:
            draft, _ = workflow().update(
                user, int(draft_id), text, form.get("summary", ""), base, auth.client_address()
            )
        else:
            draft, _ = workflow().create(user, sop_id, text, base, form.get("summary", ""), auth.client_address())
    except DocumentError as error:
        offset = _body_offset(text)
        problems = [(p, p.line - offset) for p in error.problems]
        draft = workflow().get(int(draft_id)) if draft_id else None
        return _editor(form, draft, sop_id, base, problems=problems, error="Fix the problems below, then save.")
    except (InputError, ConflictError) as error:
        draft = workflow().get(int(draft_id)) if draft_id else None
        return _editor(form, draft, sop_id, base, error=error.message)
    if form.get("then") == "submit":
        return _act(user, draft.id, "submit")
    return redirect(url_for("authoring.draft_page", draft_id=draft.id), code=303)


@bp.post("/drafts/preview")
def preview():
    """Live preview: the editor's fields rendered by the published page's renderer, with every lint problem."""
    from kb.documents import MAX_DOCUMENT_CHARS
    from kb.errors import TooLargeError

    auth.require("author")
    form = request.form.to_dict()
    text = compose(form)
    if len(text) > MAX_DOCUMENT_CHARS:
        raise TooLargeError(f"body: the document is longer than {MAX_DOCUMENT_CHARS:,} characters", {"field": "body"})
    sop_id = form.get("sop_id") or form.get("id", "").strip() or "new-sop"
    problems = workflow().checks.problems(sop_id, text)
    offset = _body_offset(text)
    return jsonify(
        {
            "html": _render(sop_id, text),
            "problems": [{**p.to_dict(), "body_line": p.line - offset} for p in problems],
        }
    )


@bp.get("/drafts")
def drafts_page():
    """Drafts: the caller's own, and for approvers everything in review."""
    user = auth.require("author")
    status = request.args.get("status") or None
    return render_template("drafts.html", drafts=workflow().drafts(user, status), status=status)


@bp.get("/drafts/<int:draft_id>")
def draft_page(draft_id: int):
    """A draft: rendered preview, problems, the change against its base, and the actions the user may take."""
    return _draft_view(workflow().readable(auth.require("author"), draft_id))


def _draft_view(draft, error: str | None = None, conflict: dict | None = None, status: int = 200):
    problems = workflow().checks.problems(draft.sop_id, draft.markdown)
    base_text = ""
    if draft.base_revision:
        try:
            base_text = history().text(workflow().checks.path_of(draft.sop_id), draft.base_revision)
        except KbError:
            base_text = ""
    return render_template(
        "draft.html",
        draft=draft,
        html=_render(draft.sop_id, draft.markdown),
        problems=problems,
        change=diff_html(base_text, draft.markdown, context_lines=3),
        error=error,
        conflict=conflict,
    ), status


@bp.post("/drafts/<int:draft_id>/<action>")
def draft_action(draft_id: int, action: str):
    """Submit, return (with a comment) or approve and publish a draft."""
    user = auth.require("author")
    return _act(user, draft_id, action)


def _act(user, draft_id: int, action: str):
    flow = workflow()
    try:
        if action == "submit":
            flow.submit(user, draft_id, auth.client_address())
        elif action == "return":
            flow.return_(user, draft_id, request.form.get("comment", ""), auth.client_address())
        elif action == "approve":
            revision = flow.approve(user, draft_id, auth.client_address())
            sop_id = flow.get(draft_id).sop_id
            return redirect(url_for("pages.sop_page", sop_id=sop_id, published=revision[:10]), code=303)
        else:
            raise InputError(f"action: unknown action {action!r}", {"field": "action"})
    except ForbiddenError as error:
        auth.denied(user, error.message, f"draft:{draft_id}")
        return _draft_view(flow.get(draft_id), error=error.message, status=403)
    except ConflictError as error:
        details = error.details if isinstance(error.details, dict) else None
        return _draft_view(flow.get(draft_id), error=error.message, conflict=details, status=409)
    except (DocumentError, InputError) as error:
        return _draft_view(flow.get(draft_id), error=error.message, status=422)
    return redirect(url_for("authoring.draft_page", draft_id=draft_id), code=303)


@bp.post("/sops/<sop_id>/restore")
def restore(sop_id: str):
    """A new draft from an old revision."""
    user = auth.require("author")
    path_of(sop_id)
    draft = workflow().restore(user, sop_id, request.form.get("revision", ""), auth.client_address())
    return redirect(url_for("authoring.draft_page", draft_id=draft.id), code=303)


@bp.get("/sops/<sop_id>/history")
def history_page(sop_id: str):
    """An SOP's revisions with author, approver, summary and effective date; pick two to compare."""
    doc = searcher().document(sop_id)
    return render_template("history.html", doc=doc, revisions=history().revisions(path_of(sop_id)))


@bp.get("/sops/<sop_id>/revisions/<revision>")
def revision_page(sop_id: str, revision: str):
    """An SOP as it was at one revision."""
    doc = history().document(sop_id, path_of(sop_id), revision)
    return render_template("sop.html", doc=doc, old_revision=True)


@bp.get("/sops/<sop_id>/as-of")
def as_of_page(sop_id: str):
    """The revision of an SOP in force on a date (?date=YYYY-MM-DD)."""
    day = parse_day(request.args.get("date", ""), "date")
    found = history().as_of(path_of(sop_id), day)
    if found is None:
        return render_template("error.html", status=404, message=f"{sop_id} had no revision in force on {day}."), 404
    return redirect(url_for("authoring.revision_page", sop_id=sop_id, revision=found.commit, as_of=day), code=303)


@bp.get("/sops/<sop_id>/diff")
def diff_page(sop_id: str):
    """Word-level differences between two revisions (?from=&to=)."""
    doc = searcher().document(sop_id)
    result = history().diff(path_of(sop_id), request.args.get("from", ""), request.args.get("to") or None)
    return render_template("diff.html", doc=doc, diff=result)


@bp.get("/review-due")
def review_due_page():
    """Documents whose review date has passed or falls in the next 30 days, by owner."""
    return render_template("review_due.html", owners=review_due(searcher().list_documents()))


@bp.get("/admin/audit")
def audit_page():
    """The audit log, filtered (admin only)."""
    auth.require("admin")
    args = request.args
    filters = {key: args.get(key) or None for key in ("actor", "action", "target", "outcome", "since", "until")}
    error = None
    try:
        with auth.connection() as db:
            rows = audit.query(db, **filters, limit=200)
    except KbError as exc:
        rows, error = [], exc.message
    return render_template(
        "audit.html", rows=rows, filters=filters, error=error, actions=audit.ACTIONS, outcomes=audit.OUTCOMES
    )
