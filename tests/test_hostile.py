"""The hostile-input suite: one parametrised table per class of attack or fault (issue 9).

Each section below belongs to one class; every case names what it sends and what must come back.
"""

from __future__ import annotations

import pytest

# == front matter and Markdown: parsing within bounds ==================================================

# == requests: size, encoding, text validation at the edge =============================================

# == card numbers masked at every boundary =============================================================

# == authentication: redirects, sessions, rate limits ==================================================

# == index faults ======================================================================================


def _damage_file(pattern: str, how: str):
    """A damage of one file of the live generation: truncated to half, zeroed or deleted."""

    def damage(data, live: str) -> None:  # data: the data folder (a Path)
        path = sorted((data / "index" / live).glob(pattern))[0]
        if how == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif how == "zeroed":
            path.write_bytes(b"")
        else:
            path.unlink()

    return damage


def _manifest(text_of):
    """A damage of the manifest: text_of(manifest dict) is written in its place (None deletes it)."""

    def damage(data, live: str) -> None:
        import json

        path = data / "index" / "manifest.json"
        text = text_of(json.loads(path.read_text()))
        path.unlink() if text is None else path.write_text(text)

    return damage


def _json(value) -> str:
    import json

    return json.dumps(value)


def _delete_folder(data, live: str) -> None:
    import shutil

    shutil.rmtree(data / "index" / live)


_GENERATION_FILES = [
    "vectors.faiss",
    "sections.json",
    "documents.json",
    "categories.json",
    "taxonomy.npy",
    "taxonomy_rows.json",
    "glossary.json",
    "vocabulary.json",
    "build.json",
    "keyword/*.toc",
    "keyword/*.seg",
]
# (case, damage, the generation that must serve: "older" or the newest good one, "live")
_INDEX_DAMAGE = [
    (f"{name} {how}", _damage_file(name, how), "older")
    for name in _GENERATION_FILES
    for how in ("truncated", "zeroed", "deleted")
] + [
    ("manifest truncated", _manifest(lambda m: _json(m)[:20]), "live"),
    ("manifest not JSON", _manifest(lambda m: "generation = live\n"), "live"),
    ("manifest a JSON list", _manifest(lambda m: _json([m])), "live"),
    ("manifest generation of the wrong type", _manifest(lambda m: _json({**m, "generation": 7})), "live"),
    (
        "manifest naming a missing folder",
        _manifest(lambda m: _json({**m, "generation": "g20260101T000000-abcdef"})),
        "live",
    ),
    ("manifest of another format version", _manifest(lambda m: _json({**m, "format": 99})), "live"),
    ("manifest deleted", _manifest(lambda m: None), "live"),
    ("live generation folder deleted", _delete_folder, "older"),
]


@pytest.mark.parametrize("damage, serves", [c[1:] for c in _INDEX_DAMAGE], ids=[c[0] for c in _INDEX_DAMAGE])
def test_damaged_index_boots_degraded_and_serves_the_newest_good_generation(two_generations, damage, serves):
    from kb.web import create_app
    from tests.conftest import NEW_PHRASE

    settings, data = two_generations["settings"], two_generations["settings"]["DATA_DIR"]
    damage(data, two_generations["live"])
    on_disk = sorted(p.name for p in (data / "index").iterdir())
    app = create_app({**settings, "TESTING": True})
    app.extensions["kb"]["searcher"].warm_up()  # what a gunicorn worker does at boot: must not raise
    client = app.test_client()
    health = client.get("/healthz")
    body = health.get_json()
    assert health.status_code == 200 and body["status"] == "degraded"
    assert body["generation"] == two_generations[serves] and "run `kb index --full`" in body["reason"]
    found = client.get("/api/v1/search?q=customer+charged+twice&k=3")
    assert found.status_code == 200 and found.get_json()["results"][0]["sop_id"] == "pay-duplicate-charge"
    new = client.get("/api/v1/search", query_string={"q": NEW_PHRASE, "mode": "keyword"}).get_json()["results"]
    assert [r["sop_id"] for r in new] == (["pay-card-declined"] if serves == "live" else [])
    assert sorted(p.name for p in (data / "index").iterdir()) == on_disk  # serving never repairs or deletes


# == Unicode normalisation =============================================================================
