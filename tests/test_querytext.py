import pytest
from whoosh.analysis import StemmingAnalyzer

from kb.glossary import Glossary
from kb.querytext import SYNONYM_WEIGHT, QueryRewriter, clean_ticket, vocabulary

TICKET = """Hi team,

Order #ORD-20261128-88812 / ticket 4471123
I was charged twice for my coin pack yesterday, please help!!
You can reach me at jane.doe@example.com or see https://example.com/orders/88812

Thanks,
Jane Doe
Sent from my iPhone

On Mon, 30 Nov 2026 at 10:02, Support <help@example.com> wrote:
> Hello, thanks for reaching out about your refund request.
"""


def test_clean_ticket_keeps_the_customers_words_only():
    assert clean_ticket(TICKET) == (
        "I was charged twice for my coin pack yesterday, please help!! You can reach me at or see"
    )


@pytest.mark.parametrize(
    "query",
    ["customer charged twice", "CB 13.1 evidence", "refund for 1000 coins", "3DS failed on a 49.99 charge"],
)
def test_clean_ticket_leaves_short_queries_alone(query):
    assert clean_ticket(query) == query


def test_clean_ticket_drops_lines_of_references_but_keeps_sentences_with_one():
    ticket = "Order #ORD-20261128-88812\nTicket 4471123 / account id 99812734\nI need a refund for order 3017724410 now"
    assert clean_ticket(ticket) == "I need a refund for order now"
    assert clean_ticket("refund for order 3017724410") == "refund for order"


def test_clean_ticket_drops_greetings_only_as_whole_lines():
    assert clean_ticket("Hello\nhi my refund is late") == "hi my refund is late"


def analyze(text):
    return [(t.startchar, t.endchar, t.text) for t in StemmingAnalyzer()(text, chars=True)]


@pytest.fixture
def rewriter():
    words = vocabulary(["refund received chargeback customer receipt payout withdrawal subscription"] * 3 + ["refuse"])
    glossary = Glossary({"cb": "chargeback", "cx": "customer"}, (("payout", "withdrawal", "cash out"),))
    return QueryRewriter(glossary, words, analyze, frozenset({"suspended"}))


@pytest.mark.parametrize(
    "typed, corrected",
    [
        ("refnd not recieved", "refund not received"),  # a missing letter; two letters swapped
        ("subscribtion", "subscription"),
        ("chargbak", "chargeback"),  # two edits allowed from eight letters
        ("plan", "plan"),  # short words are left alone
        ("teenager", "teenager"),  # nothing close enough
        ("suspended", "suspended"),  # a dictionary word is spelled right even if the library never uses it
    ],
)
def test_typos_are_corrected_to_library_words(rewriter, typed, corrected):
    assert rewriter.correct_typos(typed) == corrected


def test_the_most_frequent_library_word_wins_a_tie(rewriter):
    assert rewriter.correction("refuxd") == "refund"  # refund (3 uses) beats refuse (1 use)


def test_abbreviations_are_written_out_and_kept_for_keyword_search(rewriter):
    prepared = rewriter.prepare("cx says CB was filed")
    assert prepared.text == "customer says chargeback was filed"
    assert ("CB", 1.0) in prepared.expansions and ("cx", 1.0) in prepared.expansions


def test_synonyms_widen_keyword_queries_at_a_lower_weight(rewriter):
    prepared = rewriter.prepare("creator wants to cash out")
    assert prepared.text == "creator wants to cash out"
    assert prepared.expansions == (("payout", SYNONYM_WEIGHT), ("withdrawal", SYNONYM_WEIGHT))


def test_synonyms_match_inflected_forms(rewriter):
    assert ("withdrawal", SYNONYM_WEIGHT) in rewriter.prepare("two payouts missing").expansions


@pytest.mark.parametrize(
    "typed, plain",
    [
        ("ｒｅｆｎｄ ｎｏｔ ｒｅｃｉｅｖｅｄ", "refnd not recieved"),  # full-width, then typo correction
        ("ⓒⓧ says ⒸⒷ was filed", "cx says CB was filed"),  # circled letters, then abbreviations
        ("creator wants to cash\u00a0out", "creator wants to cash out"),  # no-break space, then synonyms
        ("𝐬𝐮𝐛𝐬𝐜𝐫𝐢𝐛𝐭𝐢𝐨𝐧", "subscribtion"),  # mathematical bold
        ("ﬁled twice", "filed twice"),  # ligature
    ],
)
def test_prepare_normalises_compatibility_forms_first(rewriter, typed, plain):
    assert rewriter.prepare(typed) == rewriter.prepare(plain)


def test_vocabulary_counts_normalised_words():
    assert vocabulary(["ｒｅｆｕｎｄ ﬁle refund"]) == {"refund": 2, "file": 1}
