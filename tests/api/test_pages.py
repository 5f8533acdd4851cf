"""The buyer's lot page and the Digital Link resolver, through the ASGI app (no sockets).

Covers: HTML/JSON/linkset negotiation on ``/l/{lot}`` and ``/01/{gtin}/10/{lot}``;
escaping of participant-supplied text (stored XSS); the Content-Security-Policy
and the absence of inline script; English and Urdu (``dir="rtl"``, every label
translated); the recall banner; the verification evidence (checked here with the
Python verifier); and the page-weight budget (HTML + CSS + JS <= 100 KB).
"""

from __future__ import annotations

import base64
import html.parser
import re
from dataclasses import dataclass

import pytest

from api.app import create_app
from api.i18n import JS_KEYS, STRINGS, choose_language
from api.routes.pages import PAGE_CSP
from api.settings import Settings
from ledger import Entry, open_checkpoint, verify_inclusion
from tests.api.support import Api, assert_problem
from tests.ledger.builders import TIME

BASE = "https://mandi.example"
XSS_NAME = "<script>alert(1)</script>"
XSS_PLOT = '<img src=x onerror="alert(2)">'
GS1_LOT = "gtin:09506000134352:AB%2F12%25"
PAGE_BUDGET = 100 * 1024


@dataclass
class Chain:
    """A small supply chain: two paddy lots milled into rice; one paddy lot recalled."""

    paddy_a: str = "lot:farm-1:A"
    paddy_b: str = "lot:farm-1:B"
    rice: str = "lot:mill-1:R"
    gs1: str = GS1_LOT
    document: str = "ab" * 32


def build_chain(world) -> Chain:
    chain = Chain()
    world.enrol("farm-1", role="producer")
    world.enrol("mill-1", role="processor", name=XSS_NAME)
    world.enrol("lab-1", role="inspector", name="Food Lab")
    ledger = world.ledger

    def say(pid, kind, body):
        signed = world.statement(pid, kind, body)
        ledger.append(signed)
        return signed

    kg = {"amount": 1000, "unit": "kg"}
    for lot in (chain.paddy_a, chain.paddy_b):
        say(
            "farm-1",
            "harvest",
            {
                "lot": lot,
                "crop": "rice",
                "variety": "basmati",
                "plot": XSS_PLOT,
                "harvest_date": TIME[:10],
                "quantity": kg,
            },
        )
        ship = say(
            "farm-1",
            "ship",
            {"lot": lot, "to": "mill-1", "quantity": kg, "transport": {"mode": "road"}},
        )
        say("mill-1", "receive", {"shipment": ship.event_id.hex(), "quantity": kg})
    say(
        "mill-1",
        "transform",
        {
            "process": "milling",
            "inputs": [
                {"lot": chain.paddy_a, "quantity": kg},
                {"lot": chain.paddy_b, "quantity": kg},
            ],
            "outputs": [
                {"lot": chain.rice, "crop": "rice", "quantity": {"amount": 1300, "unit": "kg"}}
            ],
        },
    )
    say(
        "lab-1",
        "inspect",
        {
            "lot": chain.rice,
            "inspection": "residue",
            "result": "pass",
            "document": chain.document,
            "certificate": "CERT-1",
        },
    )
    say("farm-1", "recall", {"lot": chain.paddy_a, "reason": "residue above the MRL"})
    say(
        "farm-1",
        "harvest",
        {
            "lot": chain.gs1,
            "crop": "mango",
            "plot": "orchard",
            "harvest_date": TIME[:10],
            "quantity": {"amount": 40, "unit": "crate"},
        },
    )
    ledger.flush_checkpoint()
    return chain


@pytest.fixture
def settings():
    return Settings(run_checkpointer=False, public_base_url=BASE)


@pytest.fixture
def chain(world):
    return build_chain(world)


@pytest.fixture
def api(world, settings, chain):
    client = Api(create_app(settings, world.ledger))
    yield client
    client.close()


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.script_text.append(data)


def _tags(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


# ---------------------------------------------------------------------------
# HTML


def test_page_is_server_rendered_and_readable_without_javascript(api, chain):
    r = api.get(f"/l/{chain.rice}", headers={"accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.text
    assert chain.rice in page
    for label in ("Processed", "Inspected", "Lots used", "Made from these lots"):
        assert label in page
    assert page.count('class="event ') == 2  # transform and inspect, in log order
    assert chain.paddy_a in page
    assert chain.paddy_b in page
    assert "JavaScript is off" in page  # replaced by verify.js when it runs
    assert chain.document in page  # inspection's document hash
    assert "CERT-1" in page


def test_csp_forbids_inline_script_and_the_page_has_none(api, chain):
    r = api.get(f"/l/{chain.rice}")
    csp = r.headers["content-security-policy"]
    assert csp == PAGE_CSP
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    parsed = _tags(r.text)
    scripts = [attrs for tag, attrs in parsed.tags if tag == "script"]
    assert scripts == [{"defer": None, "src": "/static/verify.js"}]
    assert parsed.script_text == []
    for tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "style" not in attrs, (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^(https?:)?//", value), f"external resource {value}"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "Accept" in r.headers["vary"]


def test_participant_supplied_markup_renders_as_text(api, chain):
    page = api.get(f"/l/{chain.rice}").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    upstream = api.get(f"/l/{chain.paddy_a}").text
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in upstream
    assert "<img src=x" not in upstream
    # Only our own script tag exists.
    assert [t for t, _ in _tags(page).tags].count("script") == 1
    assert [t for t, _ in _tags(upstream).tags].count("img") == 1  # the QR code


def test_recall_banner_on_a_lot_made_from_a_recalled_input(api, chain):
    page = api.get(f"/l/{chain.rice}").text
    banner = page.split('<section class="recall" role="alert" id="recall">')[1].split("</section>")[
        0
    ]
    assert "RECALLED" in banner
    assert chain.paddy_a in banner
    assert "residue above the MRL" in banner
    assert chain.paddy_b not in banner
    assert 'id="recall"' not in api.get(f"/l/{chain.paddy_b}").text
    assert 'id="recall"' in api.get(f"/l/{chain.paddy_a}").text


def test_urdu_page_is_right_to_left_with_every_label_translated(api, chain):
    r = api.get(f"/l/{chain.rice}?lang=ur")
    page = r.text
    assert '<html lang="ur" dir="rtl">' in page
    assert r.headers["content-language"] == "ur"
    ur, en = STRINGS["ur"], STRINGS["en"]
    for key in ("journey", "upstream", "inspections", "recall_title", "quantity", "status"):
        assert ur[key] in page
        assert en[key] not in page
    assert ur["kind_transform"] in page
    assert ur["kind_inspect"] in page
    assert 'href="?lang=en"' in page  # the visible switch back
    css = api.get("/static/mandi.css").text
    assert ":lang(ur)" in css
    assert "Nastaliq" in css


def test_language_from_accept_language_and_the_switch(api, chain):
    assert (
        'lang="ur" dir="rtl"'
        in api.get(f"/l/{chain.rice}", headers={"accept-language": "ur-PK,ur;q=0.9,en;q=0.5"}).text
    )
    assert (
        'lang="en" dir="ltr"'
        in api.get(f"/l/{chain.rice}", headers={"accept-language": "en-GB,ur;q=0.3"}).text
    )
    assert (
        'lang="en" dir="ltr"'
        in api.get(f"/l/{chain.rice}?lang=en", headers={"accept-language": "ur"}).text
    )
    assert 'lang="en"' in api.get(f"/l/{chain.rice}", headers={"accept-language": "fr"}).text


def test_strings_are_complete_in_both_languages():
    assert set(STRINGS["en"]) == set(STRINGS["ur"])
    assert all(STRINGS["ur"][k] for k in STRINGS["ur"])
    assert set(JS_KEYS) <= set(STRINGS["en"])
    assert choose_language(None, None) == "en"
    assert choose_language("ur", "en") == "ur"
    assert choose_language("xx", "ur;q=0.8, en;q=0.9") == "en"
    assert choose_language(None, "ur;q=0") == "en"
    assert choose_language(None, "ur-PK;q=bad, ur") == "ur"


def test_unknown_lot_is_a_404_page_or_problem(api):
    r = api.get("/l/lot:nobody:x")
    assert r.status_code == 404
    assert "Lot not found" in r.text
    assert r.headers["content-security-policy"] == PAGE_CSP
    assert_problem(
        api.get("/l/lot:nobody:x", headers={"accept": "application/json"}), 404, "unknown_lot"
    )
    assert_problem(api.get("/l/not-a-lot"), 400, "bad_lot_id")


def test_page_weight_budget(api, chain):
    """HTML + every stylesheet and script the page loads <= 100 KB, no compression counted."""
    page = api.get(f"/l/{chain.rice}").text
    parsed = _tags(page)
    assets = [a["src"] for t, a in parsed.tags if t == "script"]
    assets += [a["href"] for t, a in parsed.tags if t == "link" and a.get("rel") == "stylesheet"]
    assert sorted(assets) == ["/static/mandi.css", "/static/verify.js"]
    weight = len(page.encode())
    for asset in assets:
        r = api.get(asset)
        assert r.status_code == 200
        weight += len(r.content)
    assert weight <= PAGE_BUDGET, f"lot page weighs {weight} bytes"


# ---------------------------------------------------------------------------
# JSON, linkset, GS1 paths


def test_json_representation_has_state_history_upstream_and_recalls(api, chain):
    r = api.get(f"/l/{chain.rice}", headers={"accept": "application/json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["lot"]["lot"] == chain.rice
    assert body["path"] == f"/l/{chain.rice}"
    assert [h["kind"] for h in body["history"]] == ["transform", "inspect"]
    assert {u["lot"] for u in body["upstream"]} == {chain.paddy_a, chain.paddy_b}
    assert [x["lot"] for x in body["recalled"]] == [chain.paddy_a]
    assert "evidence" not in body
    assert api.get(f"/l/{chain.rice}?format=json").json() == body


def test_evidence_is_exact_entries_with_inclusion_proofs(api, world, chain):
    latest = world.ledger.latest_checkpoint()
    r = api.get(f"/l/{chain.rice}?tree_size={latest.size}", headers={"accept": "application/json"})
    evidence = r.json()["evidence"]
    assert evidence["tree_size"] == latest.size
    checkpoint = open_checkpoint(latest.note, world.verifier)
    indices = [item["index"] for item in evidence["entries"]]
    assert indices == sorted(indices)
    assert 0 in indices  # genesis: the registry's root, signed by the log key
    assert latest.size - 1 in indices  # the newest entry: the checkpoint's age
    history = {h["index"] for h in r.json()["history"]}
    assert history <= set(indices)
    for item in evidence["entries"]:
        raw = base64.b64decode(item["entry"])
        entry = Entry.from_bytes(raw)
        assert raw == world.ledger.entry(item["index"]).to_bytes()
        verify_inclusion(
            entry.leaf_hash,
            item["index"],
            latest.size,
            [bytes.fromhex(p) for p in item["proof"]],
            checkpoint.checkpoint.root_hash,
        )
    # Every key that signed an included entry is registered by an included entry.
    for item in evidence["entries"]:
        stmt = Entry.from_bytes(base64.b64decode(item["entry"])).signed_statement().statement
        key = world.store.key(stmt.signer)
        if key is not None:
            assert key.added_at in indices
    assert_problem(
        api.get(f"/l/{chain.rice}?tree_size={latest.size + 5}&format=json"),
        400,
        "bad_proof_request",
    )


def test_linkset_for_gs1_resolvers(api, chain):
    r = api.get(f"/l/{chain.rice}", headers={"accept": "application/linkset+json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/linkset+json"
    (links,) = r.json()["linkset"]
    assert links["anchor"] == f"{BASE}/l/{chain.rice}"
    assert links["https://gs1.org/voc/defaultLink"][0]["href"] == links["anchor"]
    assert links["https://gs1.org/voc/traceability"][0]["type"] == "application/json"
    assert api.get(f"/l/{chain.rice}?linkType=all").json() == r.json()


def test_gs1_digital_link_path_resolves_with_escapes_intact(api, chain):
    r = api.get("/01/09506000134352/10/AB%2F12%25", headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["lot"]["lot"] == GS1_LOT
    # Other encoders: a 13-digit GTIN, lowercase hex, an escaped unreserved character.
    r = api.get("/01/9506000134352/10/%41B%2f12%25?format=json")
    assert r.json()["lot"]["lot"] == GS1_LOT
    page = api.get("/01/09506000134352/10/AB%2F12%25")
    assert page.status_code == 200
    assert GS1_LOT in page.text
    assert_problem(api.get("/01/09506000134351/10/AB?format=json"), 400, "bad_gtin")


def test_static_verifier_and_script(api):
    js = api.get("/static/verify.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    page = api.get("/static/verifier.html")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    parsed = _tags(page.text)
    assert parsed.script_text == []
    assert [a.get("src") for t, a in parsed.tags if t == "script"] == ["verify.js"]
    for name in (
        "noble-ed25519/index.js",
        "noble-ed25519/LICENSE",
        "noble-hashes/sha2.js",
        "noble-hashes/LICENSE",
    ):
        assert api.get(f"/static/vendor/{name}").status_code == 200
