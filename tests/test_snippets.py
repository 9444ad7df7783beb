from whoosh.analysis import StemmingAnalyzer

from kb.snippets import make_snippet

ANALYZER = StemmingAnalyzer()


def analyze(text):
    return [(t.startchar, t.endchar, t.text) for t in ANALYZER(text, chars=True)]


def test_snippet_marks_stemmed_matches_and_escapes_html():
    html = make_snippet("Refunds <b>are</b> refunded & charged twice.", analyze, {"refund", "charg"})
    assert html == "<mark>Refunds</mark> &lt;b&gt;are&lt;/b&gt; <mark>refunded</mark> &amp; <mark>charged</mark> twice."


def test_snippet_windows_around_the_terms():
    text = "filler " * 100 + "the duplicate charge is here " + "tail " * 100
    html = make_snippet(text, analyze, {"duplic", "charg"}, width=120)
    assert "<mark>duplicate</mark> <mark>charge</mark>" in html
    assert html.startswith("… ") and html.endswith(" …") and len(html) < 220


def test_snippet_without_terms_shows_the_start():
    assert make_snippet("Alpha beta gamma.", analyze, set()) == "Alpha beta gamma."


def test_snippet_marks_compatibility_forms_at_their_place_in_the_text():
    from kb.indexing.whoosh_engine import _analyzer

    nfkc = _analyzer()

    def analyze_nfkc(text):
        return [(t.startchar, t.endchar, t.text) for t in nfkc(text, chars=True)]

    html = make_snippet("Ｒｅｆｕｎｄ the ﬁle of ⓡⓔⓕⓤⓝⓓ <now>", analyze_nfkc, {"refund", "file"})
    assert html == "<mark>Ｒｅｆｕｎｄ</mark> the <mark>ﬁle</mark> of <mark>ⓡⓔⓕⓤⓝⓓ</mark> &lt;now&gt;"
