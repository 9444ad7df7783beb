"""Published history read from git: revisions, files at a commit, the revision in force on a day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kb.errors import InputError
from kb.repository import Revision, changed_files, head, history, revision_as_of, revisions, show
from tests.conftest import git, init_repo, make_sop

PATH = "all/refunds.md"
BODY = """
## Purpose
Refund a charge within {days} days.
"""


def refunds(effective: str, days: int = 30) -> str:
    """The text of the refunds SOP with an effective date and a refund window."""
    return make_sop("refunds", "Refunds", BODY.format(days=days), effective=effective)


def publish(repo: Path, summary: str, author: str, reviewer: str | None = None, date: str | None = None) -> str:
    """Commit every change as kb publishes: author, summary and a Reviewed-by trailer; return the commit."""
    git(repo, "add", "-A")
    args = ["commit", "-q", f"--author={author}", "-m", summary]
    if reviewer:
        args += ["-m", f"Reviewed-by: {reviewer}"]
    if date:
        args.append(f"--date={date}")
    git(repo, *args)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def published(tmp_path) -> dict:
    """A repository whose sops/all/refunds.md has three revisions (effective Jan 1, Mar 1, Jun 1 2026)."""
    repo = tmp_path / "content"
    sops = init_repo(repo, {PATH: refunds("2026-01-01"), "all/other.md": refunds("2026-01-01")})
    first = git(repo, "rev-parse", "HEAD").strip()
    (sops / PATH).write_text(refunds("2026-03-01", days=45))
    second = publish(
        repo,
        "Extend the refund window",
        "Ann Author <ann@example.com>",
        "Bob Approver <bob@example.com>",
        date="2026-02-20T09:30:00+01:00",
    )
    (sops / "all/other.md").write_text(refunds("2026-04-01", days=10))
    unrelated = publish(repo, "Change another SOP", "Ann Author <ann@example.com>", "Bob Approver <bob@example.com>")
    (sops / PATH).write_text(refunds("2026-06-01", days=60))
    third = publish(repo, "Sixty days", "Carol Writer <carol@example.com>", "Dan Reviewer <dan@example.com>")
    return {"repo": repo, "sops": sops, "first": first, "second": second, "unrelated": unrelated, "third": third}


def test_history_lists_the_commits_that_changed_the_file_newest_first(published):
    commits = [r.commit for r in history(published["sops"], PATH)]
    assert commits == [published["third"], published["second"], published["first"]]


def test_history_fields_come_from_the_commit_and_its_trailer(published):
    revision = history(published["sops"], PATH)[1]
    assert revision == Revision(
        commit=published["second"],
        date="2026-02-20T09:30:00+01:00",
        author="Ann Author",
        author_email="ann@example.com",
        reviewer="Bob Approver",
        reviewer_email="bob@example.com",
        summary="Extend the refund window",
        effective="2026-03-01",
    )
    assert revision.to_dict()["reviewer_email"] == "bob@example.com"


def test_history_reviewer_is_none_for_a_commit_without_trailer(published):
    oldest = history(published["sops"], PATH)[-1]
    assert (oldest.author, oldest.reviewer, oldest.reviewer_email) == ("kb tests", None, None)
    assert oldest.summary == "initial SOPs"


def test_history_reads_the_effective_date_of_each_revision(published):
    assert [r.effective for r in history(published["sops"], PATH)] == ["2026-06-01", "2026-03-01", "2026-01-01"]


def test_history_effective_is_none_when_missing_or_unparseable(published):
    sops = published["sops"]
    (sops / PATH).write_text(refunds("soon"))
    publish(published["repo"], "Bad date", "Ann Author <ann@example.com>")
    (sops / PATH).write_text("no front matter\n")
    publish(published["repo"], "No front matter", "Ann Author <ann@example.com>")
    assert [r.effective for r in history(sops, PATH)][:2] == [None, None]


def test_history_limit_keeps_the_newest(published):
    assert [r.commit for r in history(published["sops"], PATH, limit=1)] == [published["third"]]


def test_history_of_an_unknown_file_is_empty(published):
    assert history(published["sops"], "all/nothing.md") == []


@pytest.mark.parametrize("path", ["all/*.md", ":(top)sops/all/refunds.md"])
def test_history_takes_the_path_literally(published, path):
    assert history(published["sops"], path) == []


def test_history_from_the_repository_top_matches_the_content_folder(published):
    from_top = history(published["repo"], f"sops/{PATH}")
    assert from_top == history(published["sops"], PATH)


def test_history_outside_a_repository_is_empty(tmp_path):
    assert history(tmp_path, PATH) == []


def test_show_returns_the_file_at_an_old_commit(published):
    assert show(published["sops"], PATH, published["second"]) == refunds("2026-03-01", days=45)
    assert show(published["sops"], PATH, published["first"][:7]) == refunds("2026-01-01")


def test_show_works_from_the_repository_top(published):
    assert show(published["repo"], f"sops/{PATH}", published["first"]) == refunds("2026-01-01")


def test_show_is_none_for_a_file_missing_at_that_commit(published):
    assert show(published["sops"], "all/nothing.md", published["third"]) is None
    assert show(published["sops"], PATH, "0" * 40) is None


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2025, 12, 31), None),
        (dt.date(2026, 1, 1), "first"),
        (dt.date(2026, 2, 15), "first"),
        (dt.date(2026, 3, 1), "second"),
        (dt.date(2026, 5, 31), "second"),
        (dt.date(2026, 6, 1), "third"),
        (dt.date(2030, 1, 1), "third"),
    ],
)
def test_revision_as_of_is_the_newest_in_force_on_that_day(published, day, expected):
    revision = revision_as_of(published["sops"], PATH, day)
    assert (revision.commit if revision else None) == (published[expected] if expected else None)


def test_changed_files_between_two_commits(published):
    sops = published["sops"]
    assert changed_files(sops, published["first"], published["third"]) == ["all/other.md", PATH]
    assert changed_files(sops, published["unrelated"], published["third"]) == [PATH]
    assert changed_files(sops, published["third"], published["third"]) == []


def test_changed_files_rejects_an_unknown_commit(published):
    with pytest.raises(InputError) as caught:
        changed_files(published["sops"], "0" * 40, published["third"])
    assert caught.value.details == {"field": "old"}


@pytest.mark.parametrize("commit", ["HEAD", "abc12", "--all", "ABCDEF1", "g" * 7, "a" * 41, "abcdef1\n"])
def test_malformed_commit_is_rejected(published, commit):
    with pytest.raises(InputError) as caught:
        show(published["sops"], PATH, commit)
    assert caught.value.details == {"field": "commit"}


@pytest.mark.parametrize("path", ["../secret.md", "all/../../secret.md", "/etc/passwd", "", ".", "a\nb.md"])
def test_path_outside_the_content_folder_is_rejected(published, path):
    with pytest.raises(InputError) as caught:
        history(published["sops"], path)
    assert caught.value.details == {"field": "path"}
    with pytest.raises(InputError):
        show(published["sops"], path, published["third"])


def test_head_is_the_newest_commit(published):
    assert head(published["sops"]) == published["third"]


def test_head_is_none_outside_a_repository_or_without_commits(tmp_path):
    assert head(tmp_path / "missing") is None
    assert head(tmp_path) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert head(empty) is None


def test_revisions_still_name_each_files_last_commit(published):
    (published["sops"] / "all/other.md").write_text("changed\n")
    assert revisions(published["sops"])[PATH] == published["third"]
    assert revisions(published["sops"])["all/other.md"] is None
