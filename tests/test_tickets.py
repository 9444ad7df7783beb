"""Labelled tickets (kb/tickets.py, kb/cli_tickets.py): CSV checked whole, masked, stored, listed, removed, audited,
and learnt by the next index build."""

from __future__ import annotations

import getpass
import json

import pytest
from click.testing import CliRunner

from kb import tickets
from kb.audit import query
from kb.cli import main
from kb.errors import InputError, NotFoundError
from kb.store import connect
from kb.taxonomy import parse_taxonomy
from tests.conftest import CATEGORIES, bind_database

ACTOR = "cli:" + getpass.getuser()
TAXONOMY = parse_taxonomy(CATEGORIES)[0]
CARD = "4111 1111 1111 1111"
GOOD = (
    "text,category\n"
    f'"charged twice, card {CARD}",payments/duplicate-charge\n'
    "my visa was declined,payments/card-declined\n"
    '"payout\nlate again",payouts/delayed\n'
)


@pytest.fixture
def db(tmp_path, database_url):
    conn = connect(bind_database(tmp_path / "instance", database_url))  # on SQLite, then PostgreSQL
    yield conn
    conn.close()


def stored(db) -> list[tuple[str, str, str]]:
    return [tuple(row) for row in db.execute("SELECT text, category, source FROM tickets ORDER BY id")]


# -- import: masked, deduplicated --------------------------------------------------------------------------


def test_an_import_masks_card_numbers_and_stores_every_row(db):
    report = tickets.import_tickets(db, GOOD.encode(), TAXONOMY, "/somewhere/march.csv", actor="ann")
    assert report.to_dict() == {"file": "march.csv", "rows": 3, "added": 3, "duplicates": 0}
    assert stored(db) == [
        ("charged twice, card [card ending 1111]", "payments/duplicate-charge", "march.csv"),
        ("my visa was declined", "payments/card-declined", "march.csv"),
        ("payout\nlate again", "payouts/delayed", "march.csv"),
    ]
    assert CARD not in json.dumps(stored(db))


def test_importing_twice_adds_nothing_and_repeats_in_a_file_are_skipped(db):
    tickets.import_tickets(db, GOOD.encode(), TAXONOMY, "a.csv")
    again = tickets.import_tickets(
        db, (GOOD + "my visa was declined,payments/card-declined\n").encode(), TAXONOMY, "b.csv"
    )
    assert (again.rows, again.added, again.duplicates) == (4, 0, 4)
    assert len(stored(db)) == 3


def test_the_same_text_may_carry_two_categories(db):
    data = "category,TEXT\npayments/card-declined,refused twice\npayments/duplicate-charge,refused twice\n"
    assert tickets.import_tickets(db, data.encode(), TAXONOMY, "x.csv").added == 2


def test_a_byte_order_mark_and_blank_lines_are_fine(db):
    data = "\ufefftext,category\r\n\r\ncharged twice,payments/duplicate-charge\r\n,\r\n"
    assert tickets.import_tickets(db, data.encode("utf-8"), TAXONOMY, "excel.csv").added == 1


# -- refused whole, naming each row -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"text,category\nfoo,nowhere/at-all\n", ["row 2: category: category 'nowhere/at-all' is not in the taxonomy"]),
        (b"text,category\nfoo,payments\n", ["row 2: category: category 'payments' is a group"]),
        (b"text,category\n,payments/card-declined\n", ["row 2: text: text is empty"]),
        (
            b"text,category\nfoo\x01bar,payments/card-declined\n",
            ["row 2: text: text contains a NUL or another control"],
        ),
        (b"text,category\nfoo,payments/card-declined,extra\n", ["row 2: row: has 3 fields, the header 2"]),
        (b"text\nfoo\n", ["row 1: header: has no 'category' column"]),
        (b"text,category,id\nfoo,payments/card-declined,1\n", ["row 1: header: unknown column 'id'"]),
        (b"text,category\ncaf\xe9,payments/card-declined\n", ["file: is not UTF-8 text (byte 17)"]),
        (b"", ["row 1: file: is empty"]),
    ],
    ids=[
        "unknown category",
        "group",
        "empty text",
        "control character",
        "extra field",
        "missing column",
        "unknown column",
        "not UTF-8",
        "empty file",
    ],
)
def test_a_bad_file_is_refused_naming_the_problem_and_nothing_is_stored(db, data, expected):
    with pytest.raises(InputError) as caught:
        tickets.import_tickets(db, data, TAXONOMY, "t.csv")
    for line in expected:
        assert line in caught.value.message
    assert stored(db) == []


def test_every_problem_is_reported_at_once_with_its_row_and_nothing_is_stored(db):
    data = (
        "text,category\n"
        "good one,payments/card-declined\n"
        "bad one,payments/nothing-like-it\n"
        ",payouts/delayed\n"
        "another good one,payouts/delayed\n"
        f"{'x' * (tickets.MAX_TEXT_CHARS + 1)},payouts/delayed\n"
    )
    with pytest.raises(InputError) as caught:
        tickets.import_tickets(db, data.encode(), TAXONOMY, "t.csv")
    rows = [(p["line"], p["field"]) for p in caught.value.details["problems"]]
    assert rows == [(3, "category"), (4, "text"), (6, "text")]
    assert "nothing imported, 3 problem(s)" in caught.value.message and "at most 5,000" in caught.value.message
    assert stored(db) == []


def test_a_card_number_in_a_bad_category_is_not_echoed(db):
    with pytest.raises(InputError) as caught:
        tickets.import_tickets(db, f"text,category\nfoo,{CARD}\n".encode(), TAXONOMY, "t.csv")
    assert CARD not in json.dumps([caught.value.message, caught.value.details])


def test_limits_on_size_rows_and_tickets_in_all(db, monkeypatch):
    monkeypatch.setattr(tickets, "MAX_FILE_BYTES", 100)
    with pytest.raises(InputError, match="is 150 bytes, at most 100"):
        tickets.import_tickets(db, b"x" * 50, TAXONOMY, "t.csv", size=150)  # only the start was read
    monkeypatch.setattr(tickets, "MAX_FILE_BYTES", 10_000)
    monkeypatch.setattr(tickets, "MAX_ROWS", 2)
    three = "text,category\n" + "".join(f"t{i},payouts/delayed\n" for i in range(3))
    with pytest.raises(InputError, match="more than 2 rows"):
        tickets.import_tickets(db, three.encode(), TAXONOMY, "t.csv")
    monkeypatch.setattr(tickets, "MAX_ROWS", 10)
    monkeypatch.setattr(tickets, "MAX_TICKETS", 2)
    with pytest.raises(InputError, match="more than the 2 the classifier trains on"):
        tickets.import_tickets(db, three.encode(), TAXONOMY, "t.csv")
    assert stored(db) == []


# -- list, remove, training examples -------------------------------------------------------------------------


def test_list_filters_by_category_or_group_and_pages(db):
    tickets.import_tickets(db, GOOD.encode(), TAXONOMY, "a.csv")
    rows, total = tickets.list_tickets(db, "payments")
    assert total == 2 and [r["category"] for r in rows] == ["payments/duplicate-charge", "payments/card-declined"]
    rows, total = tickets.list_tickets(db, limit=1, offset=2)
    assert total == 3 and [r["id"] for r in rows] == [3]
    with pytest.raises(InputError, match="limit"):
        tickets.list_tickets(db, limit=0)


def test_remove_is_all_or_nothing(db):
    tickets.import_tickets(db, GOOD.encode(), TAXONOMY, "a.csv")
    with pytest.raises(NotFoundError, match="no ticket with id 9; nothing removed"):
        tickets.remove_tickets(db, [1, 9])
    assert len(stored(db)) == 3
    assert [r["id"] for r in tickets.remove_tickets(db, [3, 1])] == [3, 1]
    assert tickets.training_examples(db) == [("my visa was declined", "payments/card-declined")]


# -- the CLI, audited ----------------------------------------------------------------------------------------


@pytest.fixture
def cli(sop_repo, data_dir, monkeypatch):
    """Run a kb command against the tiny library and a fresh instance folder."""
    monkeypatch.setenv("KB_CONTENT_DIR", str(sop_repo / "sops"))
    monkeypatch.setenv("KB_DATA_DIR", str(data_dir))
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args))


def test_kb_tickets_import_list_remove_each_audited(cli, data_dir, tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text(GOOD)
    result = cli("tickets", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 3 ticket(s) from labelled.csv (3 rows, 0 already stored or repeated)" in result.output
    listed = json.loads(cli("tickets", "list", "--json").output)
    assert listed["total"] == 3 and listed["tickets"][0]["imported_by"] == ACTOR
    assert "[card ending 1111]" in cli("tickets", "list").output
    result = cli("tickets", "remove", "1", "2")
    assert result.exit_code == 0 and "removed 2 ticket(s)" in result.output
    missing = cli("tickets", "remove", "3", "99")
    assert missing.exit_code == 1 and "no ticket with id 99" in missing.output
    db = connect(data_dir)
    try:
        rows = list(reversed(query(db, target="tickets"))) + list(reversed(query(db, action="tickets_imported")))
        assert [(r["action"], r["outcome"]) for r in rows] == [
            ("tickets_removed", "ok"),
            ("tickets_removed", "failed"),
            ("tickets_imported", "ok"),
        ]
        assert rows[0]["details"] == {
            "ids": [1, 2],
            "categories": ["payments/card-declined", "payments/duplicate-charge"],
        }
        assert rows[2]["details"] == {"file": "labelled.csv", "rows": 3, "added": 3, "duplicates": 0}
        assert len(tickets.training_examples(db)) == 1
    finally:
        db.close()


def test_a_refused_import_is_audited_as_failed(cli, data_dir, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,category\nfoo,payments\n")
    result = cli("tickets", "import", str(path))
    assert result.exit_code == 1 and "row 2: category: category 'payments' is a group" in result.output
    db = connect(data_dir)
    try:
        (row,) = query(db, action="tickets_imported")
        assert row["outcome"] == "failed" and "nothing imported" in row["details"]["error"]
    finally:
        db.close()


def test_kb_index_trains_the_classifier_on_imported_tickets(cli, tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text(GOOD)
    cli("tickets", "import", str(path))
    report = json.loads(cli("index", "--json").output)
    assert report["classifier"]["trained"] and report["classifier"]["tickets"] == 3
    cli("tickets", "remove", "1")
    assert "category classifier: trained on 29 examples (27 phrasings, 2 tickets)" in cli("index").output
    assert "category classifier: unchanged (29 examples), reused" in cli("index", "--full").output
