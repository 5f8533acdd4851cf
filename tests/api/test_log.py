"""/v1/log: checkpoint, vkey, entries (JSON Lines and JSON), proofs, roots, info."""

from __future__ import annotations

import json

import pytest

from api.app import create_app
from api.settings import Settings
from ledger import (
    Entry,
    build_vkey,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from tests.api.support import Api, assert_problem, enrol, harvest


@pytest.fixture
def grown(world):
    enrol(world, "farm-1")
    for _ in range(10):
        world.ledger.append(harvest(world, "farm-1"))
    return world  # 12 entries; checkpoint_delay_ms=0 signs one after every append


def test_checkpoint_is_the_stored_note(api, grown):
    r = api.get("/v1/log/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == grown.store.latest_checkpoint().note
    verified = open_checkpoint(r.text, grown.verifier)
    assert verified.checkpoint.size == grown.ledger.size()


def test_checkpoint_carries_the_stored_cosignatures(api, grown):
    from ledger import NoteVerifier, SignedNote, build_witness_vkey, cosign_checkpoint
    from tests.ledger.builders import seeded

    keys = {name: seeded(n) for n, name in [(50, "w.example/b"), (51, "w.example/a")]}
    witnesses = [NoteVerifier.from_vkey(build_witness_vkey(n, k.public)) for n, k in keys.items()]
    first = grown.store.latest_checkpoint()
    body = SignedNote.from_text(first.note).text
    grown.ledger.add_cosignature(
        first.size, cosign_checkpoint(keys["w.example/b"], "w.example/b", body, 7), witnesses[0]
    )
    enrol(grown, "farm-2")  # a newer checkpoint, not cosigned
    assert api.get("/v1/log/checkpoint").text == grown.store.latest_checkpoint().note
    r = api.get("/v1/log/checkpoint", params={"min_cosignatures": 1})
    assert r.status_code == 200
    assert r.text.startswith(first.note)
    assert r.text.count("\n\u2014 ") == 2
    assert open_checkpoint(r.text, grown.verifier, witnesses, 1).checkpoint.size == first.size
    assert_problem(
        api.get("/v1/log/checkpoint", params={"min_cosignatures": 2}),
        404,
        "no_cosigned_checkpoint",
        "min_cosignatures",
    )
    assert_problem(api.get("/v1/log/checkpoint?min_cosignatures=-1"), 422, "validation_failed")
    # Cosigning the newest checkpoint too: the plain endpoint now carries it, byte-exact.
    newest = grown.store.latest_checkpoint()
    newest_body = SignedNote.from_text(newest.note).text
    lines = [
        cosign_checkpoint(keys[w.name], w.name, newest_body, 9)
        for w in sorted(witnesses, key=lambda w: w.name)
    ]
    for w in witnesses:
        grown.ledger.add_cosignature(newest.size, next(x for x in lines if w.name in x), w)
    assert api.get("/v1/log/checkpoint").text == newest.note + "".join(lines)
    assert api.get("/v1/log/checkpoint?min_cosignatures=2").text == newest.note + "".join(lines)


def test_no_checkpoint_yet_is_404():
    from ledger import Ledger, LogIdentity
    from ledger.storage.memory import MemoryStore
    from tests.ledger.builders import ORIGIN, seeded

    empty = Ledger(MemoryStore(), log=LogIdentity(origin=ORIGIN, log_key=seeded(1).public))
    api = Api(create_app(Settings(run_checkpointer=False), empty))
    try:
        assert_problem(api.get("/v1/log/checkpoint"), 404, "not_found")
        assert_problem(api.get("/v1/log/proof/inclusion?index=0"), 404, "not_found")
    finally:
        api.close()


def test_vkey(api, world):
    r = api.get("/v1/log/vkey")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == build_vkey(world.ledger.log.origin, world.log_signer.public) + "\n"


def test_log_info(api, grown):
    body = api.get("/v1/log").json()
    assert body == {
        "origin": grown.ledger.log.origin,
        "tree_size": 12,
        "checkpoint_size": 12,
        "vkey": build_vkey(grown.ledger.log.origin, grown.log_signer.public),
    }


def test_entries_as_json_lines_are_the_exact_bytes(api, grown):
    r = api.get("/v1/log/entries", params={"start": 0, "end": 12})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/jsonl"
    assert r.headers["mandi-tree-size"] == "12"
    lines = r.content.splitlines()
    assert lines == [e.to_bytes() for e in grown.store.entries(0, 12)]
    assert [Entry.from_bytes(line).index for line in lines] == list(range(12))
    assert r.content.endswith(b"\n")


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"format": "json"}, {}), ({}, {"accept": "application/json"})],
)
def test_entries_as_json(api, grown, params, headers):
    r = api.get("/v1/log/entries", params={"start": 3, "end": 5, **params}, headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert (body["start"], body["end"], body["tree_size"]) == (3, 5, 12)
    assert [e["index"] for e in body["entries"]] == [3, 4]
    assert body["entries"][0]["event_id"] == grown.ledger.entry(3).event_id.hex()


def test_format_parameter_wins_over_accept(api, grown):
    r = api.get(
        "/v1/log/entries", params={"format": "jsonl"}, headers={"accept": "application/json"}
    )
    assert r.headers["content-type"] == "application/jsonl"


def test_entries_end_is_clamped_and_defaults_to_a_page(grown):
    api = Api(create_app(Settings(max_page_size=5, run_checkpointer=False), grown.ledger))
    try:
        default = api.get("/v1/log/entries", params={"start": 2})
        assert [Entry.from_bytes(x).index for x in default.content.splitlines()] == [2, 3, 4, 5, 6]
        tail = api.get("/v1/log/entries", params={"start": 10, "end": 15})
        assert len(tail.content.splitlines()) == 2
        at_end = api.get("/v1/log/entries", params={"start": 12})
        assert at_end.status_code == 200
        assert at_end.content == b""
        assert_problem(
            api.get("/v1/log/entries", params={"start": 0, "end": 6}), 400, "page_too_large", "end"
        )
    finally:
        api.close()


@pytest.mark.parametrize(
    ("params", "status", "code", "field"),
    [
        ({"start": 13}, 400, "out_of_range", "start"),
        ({"start": 5, "end": 4}, 400, "out_of_range", "end"),
        ({"start": 0, "end": 1001}, 400, "page_too_large", "end"),
        ({"start": -1}, 422, "validation_failed", "start"),
        ({"start": 2**60}, 422, "validation_failed", "start"),
        ({"format": "xml"}, 422, "validation_failed", "format"),
    ],
)
def test_entries_refusals(api, grown, params, status, code, field):
    assert_problem(api.get("/v1/log/entries", params=params), status, code, field)


def test_inclusion_proof_by_index_and_by_event_id(api, grown):
    checkpoint = open_checkpoint(grown.store.latest_checkpoint().note, grown.verifier).checkpoint
    entry = grown.ledger.entry(5)
    by_index = api.get("/v1/log/proof/inclusion", params={"index": 5}).json()
    by_event = api.get("/v1/log/proof/inclusion", params={"event_id": entry.event_id.hex()}).json()
    assert by_index == by_event
    assert by_index["tree_size"] == checkpoint.size
    assert by_index["root_hash"] == checkpoint.root_hash.hex()
    assert by_index["leaf_hash"] == entry.leaf_hash.hex()
    verify_inclusion(
        entry.leaf_hash,
        5,
        checkpoint.size,
        [bytes.fromhex(p) for p in by_index["proof"]],
        checkpoint.root_hash,
    )
    small = api.get("/v1/log/proof/inclusion", params={"index": 1, "tree_size": 3}).json()
    assert small["tree_size"] == 3
    assert small["root_hash"] == grown.ledger.root_hash(3).hex()


@pytest.mark.parametrize(
    ("params", "status", "code", "field"),
    [
        ({}, 400, "bad_proof_request", "index"),
        ({"index": 1, "event_id": "ab" * 32}, 400, "bad_proof_request", "event_id"),
        ({"index": 12}, 400, "bad_proof_request", "index"),
        ({"index": 3, "tree_size": 3}, 400, "bad_proof_request", "index"),
        ({"index": 0, "tree_size": 0}, 400, "bad_proof_request", "index"),
        ({"index": 0, "tree_size": 13}, 400, "bad_proof_request", "tree_size"),
        ({"index": 0, "tree_size": 2**53 - 1}, 400, "bad_proof_request", "tree_size"),
        ({"index": -1}, 422, "validation_failed", "index"),
        ({"index": 0, "tree_size": -5}, 422, "validation_failed", "tree_size"),
        ({"event_id": "ab" * 32}, 404, "not_found", None),
        ({"event_id": "XY"}, 422, "validation_failed", "event_id"),
    ],
)
def test_inclusion_proof_refusals(api, grown, params, status, code, field):
    assert_problem(api.get("/v1/log/proof/inclusion", params=params), status, code, field)


def test_consistency_proof(api, grown):
    for first, second in [(0, 12), (1, 12), (3, 7), (7, 7), (4, 8)]:
        body = api.get(
            "/v1/log/proof/consistency", params={"first": first, "second": second}
        ).json()
        assert body["first_root"] == grown.ledger.root_hash(first).hex()
        assert body["second_root"] == grown.ledger.root_hash(second).hex()
        verify_consistency(
            first,
            second,
            [bytes.fromhex(p) for p in body["proof"]],
            bytes.fromhex(body["first_root"]),
            bytes.fromhex(body["second_root"]),
        )
    default = api.get("/v1/log/proof/consistency", params={"first": 2}).json()
    assert default["second"] == 12


@pytest.mark.parametrize(
    ("params", "status", "code", "field"),
    [
        ({"first": 5, "second": 4}, 400, "bad_proof_request", "first"),
        ({"first": 1, "second": 13}, 400, "bad_proof_request", "second"),
        ({"first": 13}, 400, "bad_proof_request", "first"),
        ({"second": 3}, 422, "validation_failed", "first"),
        ({"first": -1}, 422, "validation_failed", "first"),
    ],
)
def test_consistency_proof_refusals(api, grown, params, status, code, field):
    assert_problem(api.get("/v1/log/proof/consistency", params=params), status, code, field)


def test_root(api, grown):
    assert api.get("/v1/log/root").json() == {
        "tree_size": 12,
        "root_hash": grown.ledger.root_hash(12).hex(),
    }
    assert api.get("/v1/log/root", params={"tree_size": 0}).json()["root_hash"] == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert_problem(
        api.get("/v1/log/root", params={"tree_size": 13}), 400, "bad_proof_request", "tree_size"
    )


def test_reads_change_nothing_and_are_json_where_documented(api, grown):
    size = grown.ledger.size()
    for path in ("/v1/log", "/v1/log/root", "/v1/registry", "/v1/participants"):
        r = api.get(path)
        assert r.status_code == 200
        json.loads(r.text)
    assert grown.ledger.size() == size
