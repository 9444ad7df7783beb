import json
import re

import pytest
from click.testing import CliRunner

from kb.cli import main
from kb.errors import StorageError
from kb.indexing import builder, generation
from kb.indexing.builder import build_index
from kb.indexing.generation import current_generation, read_manifest
from kb.search import Searcher
from tests.conftest import commit_all, make_sop


def test_full_build_writes_a_generation_and_a_manifest(sop_repo, data_dir):
    report = build_index(sop_repo / "sops", data_dir)
    assert report.full and report.documents == 3 and report.sections == 6
    assert report.embedded == 0  # the session already embedded these sections: the cache answers
    manifest = read_manifest(data_dir)
    assert manifest["generation"] == report.generation
    folder = current_generation(data_dir)
    assert {p.name for p in folder.iterdir()} >= {"keyword", "vectors.faiss", "sections.json", "documents.json"}
    documents = json.loads((folder / "documents.json").read_text())
    assert len(documents["pay-duplicate-charge"]["revision"]) == 40


def test_incremental_build_with_no_change_writes_nothing(sop_repo, data_dir):
    first = build_index(sop_repo / "sops", data_dir)
    again = build_index(sop_repo / "sops", data_dir)
    assert again.up_to_date and again.embedded == 0
    assert read_manifest(data_dir)["generation"] == first.generation


def test_incremental_build_embeds_only_changed_sections_and_is_served(sop_repo, data_dir, settings_for):
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    searcher = Searcher(settings_for(sops, data_dir))
    assert searcher.search("chargeback representment", 3, "keyword").hits == ()
    path = sops / "all" / "pay-card-declined.md"
    path.write_text(
        path.read_text() + "\n## Chargebacks\nA declined payment never becomes a chargeback representment.\n"
    )
    commit = commit_all(sop_repo, "add chargeback note")
    report = build_index(sops, data_dir)
    assert not report.full and report.changed == ["pay-card-declined"] and report.embedded == 1
    hits = searcher.search("chargeback representment", 3, "keyword").hits
    assert [(h.sop_id, h.anchor, h.revision) for h in hits] == [("pay-card-declined", "chargebacks", commit)]


def test_incremental_build_drops_removed_and_retired_documents(sop_repo, data_dir, settings_for):
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    (sops / "creator-payouts" / "payout-delayed.md").unlink()
    declined = sops / "all" / "pay-card-declined.md"
    declined.write_text(declined.read_text().replace("status: published", "status: retired"))
    commit_all(sop_repo, "remove and retire")
    report = build_index(sops, data_dir)
    assert report.removed == ["pay-card-declined", "payout-delayed"] and report.documents == 1
    searcher = Searcher(settings_for(sops, data_dir))
    assert {h.sop_id for h in searcher.search("payout bank declined card", 10, "keyword").hits} == set()
    assert searcher.document("pay-card-declined")["status"] == "retired"  # still readable
    with pytest.raises(Exception, match="no SOP"):
        searcher.document("payout-delayed")


def test_failed_build_leaves_the_old_generation_serving(sop_repo, data_dir, monkeypatch):
    sops = sop_repo / "sops"
    first = build_index(sops, data_dir)
    (sops / "all" / "new.md").write_text(make_sop("pay-new", "New", "## Purpose\nBrand new text.\n"))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(builder.VectorIndex, "build", broken)
    with pytest.raises(StorageError, match="disk full"):
        build_index(sops, data_dir)
    assert read_manifest(data_dir)["generation"] == first.generation
    leftovers = [p.name for p in generation.index_root(data_dir).iterdir() if p.is_dir()]
    assert leftovers == [first.generation]


def test_full_flag_rebuilds_from_the_cache(sop_repo, data_dir):
    build_index(sop_repo / "sops", data_dir)
    report = build_index(sop_repo / "sops", data_dir, full=True)
    assert report.full and report.generation and report.embedded == 0


def test_kb_index_reports_bad_documents_indexes_the_rest_and_exits_1(sop_repo, data_dir, monkeypatch):
    sops = sop_repo / "sops"
    (sops / "all" / "broken.md").write_text("---\nid: broken\ntitle: [x\n---\n## A\nb\n")
    (sops / "all" / "extra.md").write_text(make_sop("pay-extra", "Extra", "## A\nb\n", colour="red"))
    monkeypatch.setenv("KB_CONTENT_DIR", str(sops))
    monkeypatch.setenv("KB_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(main, ["index"])
    assert result.exit_code == 1
    assert re.search(r"all/broken\.md:4: (title: )?malformed YAML front matter", result.output)
    assert "all/extra.md:12: colour: unknown field" in result.output
    assert "skipped 2 document(s)" in result.output
    assert read_manifest(data_dir)["documents"] == 3


def test_kb_index_json_report(sop_repo, data_dir, monkeypatch):
    monkeypatch.setenv("KB_CONTENT_DIR", str(sop_repo / "sops"))
    monkeypatch.setenv("KB_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(main, ["index", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["documents"] == 3 and report["full"] is True and report["skipped"] == []


def test_an_index_from_another_kb_version_gets_a_clear_error_and_is_rebuilt(sop_repo, data_dir, settings_for):
    from kb.errors import IndexError_

    build_index(sop_repo / "sops", data_dir)
    folder = current_generation(data_dir)
    for path in (generation.index_root(data_dir) / "manifest.json", folder / "build.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "format": 0}))
    with pytest.raises(IndexError_, match="another version of kb.*run `kb index --full`"):
        Searcher(settings_for(sop_repo / "sops", data_dir)).search("refund")
    report = build_index(sop_repo / "sops", data_dir)
    assert report.full and read_manifest(data_dir)["format"] == generation.FORMAT_VERSION
    assert Searcher(settings_for(sop_repo / "sops", data_dir)).health()["status"] == "ok"


def test_category_phrasings_are_indexed_with_the_documents_they_serve(sop_repo, data_dir, settings_for):
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    searcher = Searcher(settings_for(sops, data_dir))
    assert searcher.search("zorblax", 3, "keyword").hits == ()
    categories = sops / "categories.yaml"
    categories.write_text(categories.read_text().replace('"payout late"', '"zorblax transfer late"'))
    commit_all(sop_repo, "new example phrasing")
    report = build_index(sops, data_dir)
    assert report.changed == ["payout-delayed"]  # only the document of that category is reindexed
    assert [h.sop_id for h in searcher.search("zorblax", 3, "keyword").hits] == ["payout-delayed"]
    generation = searcher.generation
    assert "zorblax" in generation.rewriter.words  # a library word now: never "corrected" away
    assert generation.taxonomy.rows.count("payouts/delayed") == 9  # name and description, eight phrasings
    assert generation.taxonomy.consistent


def test_a_glossary_change_makes_a_new_generation_that_searchers_use(sop_repo, data_dir, settings_for):
    sops = sop_repo / "sops"
    build_index(sops, data_dir)
    searcher = Searcher(settings_for(sops, data_dir))
    assert searcher.search("xyzzy", 3, "keyword").hits == ()
    (sops / "glossary.yaml").write_text("abbreviations:\n  xyzzy: payout\n")
    commit_all(sop_repo, "glossary")
    report = build_index(sops, data_dir)
    assert not report.up_to_date and report.changed == []
    assert "payout-delayed" in [h.sop_id for h in searcher.search("xyzzy", 3, "keyword").hits]


def test_typos_and_pasted_tickets_still_find_the_sop(searcher):
    assert searcher.search("custmer chraged twise", 3, "hybrid").hits[0].sop_id == "pay-duplicate-charge"
    ticket = (
        "Hello,\n\nOrder 4471-2231-0098 ref TX99812734\nI see two identical payments for one order on my card, "
        "please refund one of them.\n\nBest regards,\nJane Doe\n+44 7700 900123\nSent from my iPhone"
    )
    assert searcher.search(ticket, 3, "hybrid").hits[0].sop_id == "pay-duplicate-charge"


def test_a_generation_built_with_another_keyword_engine_is_refused_until_kb_index_rebuilds_it(
    sop_repo, data_dir, settings_for
):
    from kb.search import Searcher

    sops = sop_repo / "sops"
    build_index(sops, data_dir, engine="whoosh")
    settings = {**settings_for(sops, data_dir), "KEYWORD_ENGINE": "tantivy"}
    health = Searcher(settings).health()
    assert health["status"] == "unavailable"
    assert "built with the whoosh keyword engine, and KB_KEYWORD_ENGINE is tantivy" in health["reason"]
    assert "run `kb index`" in health["reason"]
    report = build_index(sops, data_dir, engine="tantivy")  # what `kb index` does with the setting
    assert report.full and report.embedded == 0  # not incremental across engines; vectors come from the cache
    searcher = Searcher(settings)
    assert searcher.health()["status"] == "ok"
    assert searcher.search("refund", 3, "keyword").hits


def test_a_related_documents_section_is_flagged_in_the_generation_and_never_cited(sop_repo, data_dir, settings_for):
    sops = sop_repo / "sops"
    path = sops / "all" / "pay-duplicate-charge.md"
    path.write_text(
        path.read_text()
        + "\n## Related documents\n\n- [Chargeback representment evidence](/sops/cb-evidence)\n"
        + "- [Declined card payments](/sops/pay-card-declined)\n"
    )
    commit_all(sop_repo, "related documents")
    build_index(sops, data_dir)
    folder = current_generation(data_dir)
    flags = {s["key"]: s["links_only"] for s in json.loads((folder / "sections.json").read_text())}
    assert flags["pay-duplicate-charge#related-documents"] is True
    assert not any(v for k, v in flags.items() if k != "pay-duplicate-charge#related-documents")
    searcher = Searcher(settings_for(sops, data_dir))
    assert not searcher.generation.citable("pay-duplicate-charge#related-documents")
    for mode in ("keyword", "hybrid", "semantic"):
        # Only the related-documents list holds these words: the SOP is still found, cited by a real section.
        hits = searcher.search("chargeback representment evidence", 3, mode).hits
        found = {h.sop_id: h for h in hits}
        assert "pay-duplicate-charge" in found, mode
        assert found["pay-duplicate-charge"].anchor != "related-documents", mode
        assert all(o["anchor"] != "related-documents" for h in hits for o in h.others), mode
    [hit] = searcher.search("chargeback representment evidence", 3, "keyword").hits
    assert (hit.sop_id, hit.anchor) == ("pay-duplicate-charge", "purpose")  # its first citable section
