"""`kb bench`'s publish measure: drafts approved in a scratch clone of the content repository (and a copy of the
bench data folder), each timed until a separate warm Searcher finds its new revision."""

from __future__ import annotations

import random
import shutil
import string
import time
from pathlib import Path

from kb.bench_builds import Builds
from kb.errors import IndexError_
from kb.loadtest import percentiles

MAX_PUBLISHES = 20
USERS = ("author", "approver")  # the roles of the two users who publish in the scratch clone


def measure_publish(builds: Builds, engine: str, data: Path) -> None:
    """Publish until searchable in a scratch clone (skipped, and said, when the content is not in git).

    Raises:
        IndexError_: a published revision was not searchable after 300 s.
    """
    from kb.repository import run_git
    from kb.store import DB_NAME

    top = run_git(builds.content, "rev-parse", "--show-toplevel", check=False)
    if not top:
        builds.say(f"publish skipped: {builds.content} is not in a git repository")
        return
    work = builds.folder / f"publish-{engine}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=True)
        run_git(work, "clone", "-q", "--local", top.strip(), str(work / "repo"))
        content = work / "repo" / builds.content.resolve().relative_to(Path(top.strip()).resolve())
        shutil.copytree(data, work / "data", ignore=shutil.ignore_patterns(f"{DB_NAME}*", ".build.lock"))
        settings = builds.settings_for(engine, content, work / "data")
        builds.build(engine, content, work / "data", full=False)
        _publish_runs(builds, engine, settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish_runs(builds: Builds, engine: str, settings: dict) -> None:
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
    update = builds.record.timer(f"publish {sop_id} until searchable", builds.record.duration)
    deadline = time.perf_counter() + builds.record.duration
    while not approve or (time.perf_counter() < deadline and len(approve) < MAX_PUBLISHES):
        word = "benchword" + "".join(rng.choice(string.ascii_lowercase) for _ in range(10))
        lines = path.read_text(encoding="utf-8").split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("## ")) + 1
        text = "\n".join(lines[:at] + ["", f"Bench run {len(approve)}: {word} marks this revision."] + lines[at:])
        draft, _ = workflow.create(author, sop_id, text, workflow.checks.current_revision(sop_id), f"Bench {word}")
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
    builds.record.add("publish", name, engine, requests=len(approve), errors=0, **approved, **found)
