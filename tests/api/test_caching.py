"""The server-side caches of the lot page and the QR image, and their HTTP validators.

A cached page must be byte-identical to a fresh render at the same log size,
answer ``If-None-Match`` with 304, and still change as soon as the log does:
a new event on the lot, or a recall upstream of it. A cached QR image is
encoded once. :class:`api.cache.LruCache` and the ETag helpers are tested on
their own at the end.
"""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from api.cache import LruCache, etag_matches, strong_etag
from api.routes import pages as pages_route
from api.routes import qr as qr_route
from api.settings import Settings
from tests.api.support import Api
from tests.api.test_pages import BASE, build_chain

HTML = {"accept": "text/html"}
GS1_PATH = "/01/09506000134352/10/AB%2F12%25"


@pytest.fixture
def settings():
    return Settings(run_checkpointer=False, public_base_url=BASE)


@pytest.fixture
def chain(world):
    return build_chain(world)


@pytest.fixture
def api(world, settings, chain):
    qr_route._store.clear()  # module-wide: each test starts with a cold QR cache
    client = Api(create_app(settings, world.ledger))
    yield client
    client.close()


@pytest.fixture
def renders(monkeypatch):
    """Counts the pages rendered from the ledger (cache misses)."""
    calls: list[str] = []
    real = pages_route._page_context

    def counting(ledger, settings, lot, language):
        calls.append(lot.text)
        return real(ledger, settings, lot, language)

    monkeypatch.setattr(pages_route, "_page_context", counting)
    return calls


def _say(world, pid, kind, body):
    world.ledger.append(world.statement(pid, kind, body))


# ---------------------------------------------------------------------------
# The lot page


def test_page_is_rendered_once_and_served_identical_with_a_strong_etag(api, chain, renders):
    first = api.get(f"/l/{chain.rice}", headers=HTML)
    second = api.get(f"/l/{chain.rice}", headers=HTML)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert re.fullmatch(r'"[0-9a-f]{32}"', first.headers["etag"])
    assert second.headers["etag"] == first.headers["etag"] == strong_etag(first.content)
    assert second.headers["cache-control"] == "no-cache"  # revalidate: the log may grow
    assert second.headers["content-security-policy"] == pages_route.PAGE_CSP
    assert renders == [chain.rice]


def test_page_if_none_match_gets_304(api, chain):
    etag = api.get(f"/l/{chain.rice}", headers=HTML).headers["etag"]
    not_modified = api.get(f"/l/{chain.rice}", headers={**HTML, "if-none-match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert "Accept, Accept-Language" in not_modified.headers["vary"]
    weak_in_list = {**HTML, "if-none-match": f'"other", W/{etag}'}
    assert api.get(f"/l/{chain.rice}", headers=weak_in_list).status_code == 304
    other = api.get(f"/l/{chain.rice}", headers={**HTML, "if-none-match": '"other"'})
    assert other.status_code == 200
    assert other.headers["etag"] == etag


def test_languages_are_cached_apart(api, chain, renders):
    english = api.get(f"/l/{chain.rice}", headers=HTML)
    urdu = api.get(f"/l/{chain.rice}?lang=ur", headers=HTML)
    assert english.headers["etag"] != urdu.headers["etag"]
    assert 'dir="rtl"' in urdu.text
    assert 'dir="rtl"' not in english.text
    assert api.get(f"/l/{chain.rice}", headers=HTML).content == english.content
    assert api.get(f"/l/{chain.rice}?lang=ur", headers=HTML).content == urdu.content
    assert renders == [chain.rice, chain.rice]


def test_cached_page_changes_when_the_lot_gets_a_new_event(api, world, chain):
    before = api.get(f"/l/{chain.rice}", headers=HTML)
    assert "CERT-2" not in before.text
    _say(
        world,
        "lab-1",
        "inspect",
        {
            "lot": chain.rice,
            "inspection": "quality",
            "result": "pass",
            "document": "cd" * 32,
            "certificate": "CERT-2",
        },
    )
    after = api.get(f"/l/{chain.rice}", headers=HTML)
    assert "CERT-2" in after.text
    assert after.headers["etag"] != before.headers["etag"]
    stale = api.get(f"/l/{chain.rice}", headers={**HTML, "if-none-match": before.headers["etag"]})
    assert stale.status_code == 200
    assert stale.content == after.content


def test_cached_page_changes_when_an_upstream_lot_is_recalled(api, world, chain):
    def banner() -> str:
        page = api.get(f"/l/{chain.rice}", headers=HTML).text
        return page.split('id="recall">')[1].split("</section>")[0]

    assert chain.paddy_b not in banner()
    assert chain.paddy_b not in banner()  # now from the cache
    _say(world, "farm-1", "recall", {"lot": chain.paddy_b, "reason": "aflatoxin"})
    assert chain.paddy_b in banner()
    assert "aflatoxin" in banner()


def test_cached_page_matches_a_fresh_render_and_each_app_has_its_own(
    world, settings, chain, api, renders
):
    cached = api.get(GS1_PATH, headers=HTML)
    assert api.get(GS1_PATH, headers=HTML).content == cached.content
    # Another app on the same ledger (its settings, e.g. pinned witnesses, may differ).
    fresh = Api(create_app(settings, world.ledger))
    try:
        assert fresh.get(GS1_PATH, headers=HTML).content == cached.content
    finally:
        fresh.close()
    assert renders == [chain.gs1, chain.gs1]


def test_unknown_lot_is_not_cached(api, renders):
    for _ in range(2):
        assert api.get("/l/lot:nobody:x", headers=HTML).status_code == 404
    assert renders == ["lot:nobody:x", "lot:nobody:x"]


def test_json_is_not_served_from_the_page_cache(api, chain):
    api.get(f"/l/{chain.rice}", headers=HTML)
    answer = api.get(f"/l/{chain.rice}", headers={"accept": "application/json"})
    assert answer.headers["content-type"] == "application/json"
    assert "etag" not in answer.headers
    assert answer.json()["lot"]["lot"] == chain.rice


# ---------------------------------------------------------------------------
# The QR image


def test_qr_image_is_encoded_once_then_served_from_the_cache(api, chain, monkeypatch):
    encoded: list[str] = []
    real = qr_route.qr_image

    def counting(uri, fmt, size, border):
        encoded.append(uri)
        return real(uri, fmt, size, border)

    monkeypatch.setattr(qr_route, "qr_image", counting)
    url = f"/v1/lots/{chain.rice}/qr.png"
    bodies = {api.get(url).content for _ in range(3)}
    assert len(bodies) == 1
    assert api.get(url, headers={"if-none-match": "*"}).status_code == 304
    assert encoded == [f"{BASE}/l/{chain.rice}"]
    assert api.get("/v1/lots/lot:nobody:x/qr.png").status_code == 404
    assert len(qr_route._store) == 1  # nothing cached for an unknown lot


# ---------------------------------------------------------------------------
# The building blocks


def test_lru_cache_evicts_the_least_recently_used():
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert cache.get("b") is None
    assert cache.keys() == ["a", "c"]
    assert list(cache) == ["a", "c"]
    cache.put("a", 4)
    assert cache.keys() == ["c", "a"]
    assert cache.get("a") == 4
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize("capacity", [0, -1])
def test_lru_cache_refuses_no_capacity(capacity):
    with pytest.raises(ValueError, match="capacity"):
        LruCache(capacity)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ('"x",W/"abc" ', True),
        ("*", True),
        ('"abcd"', False),
        ("abc", False),
    ],
)
def test_etag_matches(header, matches):
    assert etag_matches(header, '"abc"') is matches
