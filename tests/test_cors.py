"""CORS on the JSON API: only for the origins in KB_CORS_ORIGINS, never with cookies, never off /api/."""

import pytest

from kb.errors import ConfigError

DESK = "https://desk.example.com"


@pytest.fixture
def cors_client(library):
    from kb.web import create_app

    app = create_app({**library, "CORS_ORIGINS": f"{DESK}, http://localhost:3000", "TESTING": True})
    return app.test_client()


def test_no_cors_headers_unless_origins_are_named(client):
    response = client.get("/api/v1/sops", headers={"Origin": DESK})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


def test_a_named_origin_may_call_the_api_and_its_preflight_is_answered(cors_client):
    response = cors_client.get("/api/v1/search?q=refund", headers={"Origin": DESK})
    assert response.headers["Access-Control-Allow-Origin"] == DESK
    assert "Access-Control-Allow-Credentials" not in response.headers
    preflight = cors_client.options(
        "/api/v1/search",
        headers={
            "Origin": DESK,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == DESK
    assert {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")} == {
        "authorization",
        "content-type",
    }


def test_other_origins_and_other_paths_get_no_cors_headers(cors_client):
    evil = cors_client.get("/api/v1/sops", headers={"Origin": "https://evil.example"})
    assert evil.status_code == 200 and "Access-Control-Allow-Origin" not in evil.headers
    page = cors_client.get("/", headers={"Origin": DESK})
    assert "Access-Control-Allow-Origin" not in page.headers


@pytest.mark.parametrize("value", ["*", "https://desk.example.com/", "desk.example.com", "ftp://x.example"])
def test_an_origin_that_is_not_named_exactly_fails_at_start(library, value):
    from kb.web import create_app

    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        create_app({**library, "CORS_ORIGINS": value, "TESTING": True})
