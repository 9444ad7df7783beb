import re
import shutil

import pytest

from tests.conftest import CHROMIUM_ARGS, CHROMIUM_PATH, serve_in_thread

CHROMIUM = CHROMIUM_PATH


def test_search_page_shows_results_with_deep_links(client):
    html = client.get("/?q=customer+charged+twice").get_data(as_text=True)
    assert 'href="/sops/pay-duplicate-charge#' in html
    assert "<mark>" in html
    assert ">customer charged twice</textarea>" in html


def test_search_page_escapes_the_query(client):
    html = client.get("/", query_string={"q": '"><script>alert(1)</script>'}).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_search_page_redirects_away_from_card_numbers(client):
    response = client.get("/", query_string={"q": "card 4111111111111111 declined", "mode": "keyword"})
    assert response.status_code == 303
    assert "4111111111111111" not in response.headers["Location"]
    assert "card+ending+1111" in response.headers["Location"] and "mode=keyword" in response.headers["Location"]


def test_search_page_shows_a_clear_error_for_a_too_long_query(client):
    html = client.get("/", query_string={"q": "x" * 2001}).get_data(as_text=True)
    assert 'role="alert"' in html and "longer than 2000 characters" in html


def test_sop_page_has_contents_anchors_and_metadata(client):
    html = client.get("/sops/pay-duplicate-charge").get_data(as_text=True)
    anchors = re.findall(r'<a href="#([a-z0-9-]+)">', html)
    assert anchors and all(f'id="{a}"' in html for a in anchors)
    assert "payments-policy" in html or "Owner" in html


def test_unknown_sop_page_is_a_404_page(client):
    response = client.get("/sops/nope")
    assert response.status_code == 404 and "no SOP with id" in response.get_data(as_text=True)


def test_assets_are_served_locally(client):
    html = client.get("/").get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert client.get("/static/kb.css").status_code == 200


@pytest.fixture(scope="module")
def live_server(app):
    url, server = serve_in_thread(app)
    yield url
    server.shutdown()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("node") is None and False, reason="needs Debian chromium")
def test_agent_searches_and_lands_on_the_section_in_chromium(live_server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
        )
        page = browser.new_page()
        page.goto(live_server + "/")
        page.fill("textarea[name=q]", "customer charged twice")
        page.press("textarea[name=q]", "Enter")
        page.wait_for_selector("ol.results li")
        first = page.locator("ol.results li a.title").first
        assert "Duplicate charges" in first.inner_text()
        assert page.locator("mark").count() > 0
        page.screenshot(path=str(tmp_path / "search.png"), full_page=True)
        first.click()
        page.wait_for_url(re.compile(r"/sops/pay-duplicate-charge\?q=[^#]*&from=\d+#[a-z0-9-]+$"))
        anchor = page.url.split("#")[1]
        assert page.locator(f"#{anchor}").is_visible()
        assert page.locator("nav.toc a").count() >= 5
        page.screenshot(path=str(tmp_path / "sop.png"), full_page=True)
        # A pasted ticket keeps its lines: Shift+Enter adds one, Enter searches.
        page.goto(live_server + "/")
        box = page.locator("textarea[name=q]")
        box.type("Hi team,")
        box.press("Shift+Enter")
        box.type("two identical payments for one coin pack")
        box.press("Shift+Enter")
        box.type("Sent from my iPhone")
        box.press("Enter")
        page.wait_for_selector("ol.results li")
        assert page.locator("textarea[name=q]").input_value().count("\n") == 2
        assert "Duplicate charges" in page.locator("ol.results li a.title").first.inner_text()
        browser.close()


def test_categories_page_lists_documents_per_category(client):
    html = client.get("/categories").get_data(as_text=True)
    assert 'href="/categories/payments/duplicate-charge"' in html
    assert 'href="/sops/pay-duplicate-charge"' in html


def test_category_page_shows_examples_and_its_sops(client):
    html = client.get("/categories/payments/duplicate-charge").get_data(as_text=True)
    assert "How customers put it" in html and 'href="/sops/pay-duplicate-charge"' in html
    assert client.get("/categories/payments/nope").status_code == 404


def test_sop_page_links_its_categories(client):
    html = client.get("/sops/pay-duplicate-charge").get_data(as_text=True)
    assert 'href="/categories/payments/duplicate-charge"' in html
