"""Storing and serving witness cosignatures (Ledger.add_cosignature and friends), and the
witness list parsers of ledger.cosigning. The push protocol itself is tested in
tests/api/test_witnessing.py against an in-process witness."""

from __future__ import annotations

import base64

import pytest

from ledger import (
    EncodingError,
    NoteVerifier,
    NotFoundError,
    SignatureError,
    SignedNote,
    build_vkey,
    build_witness_vkey,
    cosign_checkpoint,
    open_checkpoint,
)
from ledger.cosigning import WitnessEndpoint, parse_witness_list, parse_witness_spec
from tests.api.support import enrol
from tests.ledger.builders import new_world, seeded

NAME = "witness.example/w1"


@pytest.fixture
def world():
    w = new_world()
    enrol(w, "farm-1")
    enrol(w, "farm-2")
    return w


@pytest.fixture
def witness():
    signer = seeded(70)
    return signer, NoteVerifier.from_vkey(build_witness_vkey(NAME, signer.public))


def line_for(world, witness, size: int | None = None, timestamp: int = 5) -> tuple[int, str]:
    checkpoint = (
        world.store.latest_checkpoint()
        if size is None
        else next(c for c in world.store.checkpoints() if c.size == size)
    )
    body = SignedNote.from_text(checkpoint.note).text
    return checkpoint.size, cosign_checkpoint(witness[0], NAME, body, timestamp)


def test_a_verified_line_is_stored_and_appended_byte_for_byte(world, witness):
    size, line = line_for(world, witness)
    stored = world.ledger.add_cosignature(size, line.rstrip("\n"), witness[1])
    assert (stored.size, stored.name, stored.key_hash, stored.timestamp) == (
        size,
        NAME,
        witness[1].key_hash,
        5,
    )
    assert stored.line == line
    served = world.ledger.cosigned_checkpoint()
    assert served.note == world.store.latest_checkpoint().note + line
    assert world.ledger.cosigned_checkpoint(1) == served
    verified = open_checkpoint(served.note, world.verifier, [witness[1]], 1)
    assert verified.witnesses_verified == (NAME,)


def test_an_older_checkpoint_can_be_cosigned_and_listed(world, witness):
    sizes = [c.size for c in world.store.checkpoints()]
    older = sizes[-2]
    _, line = line_for(world, witness, older)
    world.ledger.add_cosignature(older, line, witness[1])
    listed = list(world.ledger.checkpoints())
    assert [c.size for c in listed] == sizes
    assert [c.note.endswith(line) for c in listed] == [s == older for s in sizes]
    assert world.ledger.cosigned_checkpoint(1).size == older
    assert world.ledger.cosigned_checkpoint().size == sizes[-1]
    with pytest.raises(NotFoundError) as info:
        world.ledger.cosigned_checkpoint(2)
    assert (info.value.code, info.value.field) == ("no_cosigned_checkpoint", "min_cosignatures")
    with pytest.raises(ValueError, match=">= 0"):
        world.ledger.cosigned_checkpoint(-1)


def test_a_line_that_does_not_verify_is_never_stored(world, witness):
    size, line = line_for(world, witness)
    head, data = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(data))
    raw[-1] ^= 1  # flip a bit of the signature
    flipped = f"{head} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(SignatureError):
        world.ledger.add_cosignature(size, flipped, witness[1])
    # Over another checkpoint's body.
    older = [c.size for c in world.store.checkpoints()][-2]
    with pytest.raises(SignatureError):
        world.ledger.add_cosignature(older, line, witness[1])
    # By another key.
    other = NoteVerifier.from_vkey(build_witness_vkey(NAME, seeded(71).public))
    with pytest.raises(SignatureError) as info:
        world.ledger.add_cosignature(size, line, other)
    assert info.value.code == "missing_signature"
    with pytest.raises(EncodingError):
        world.ledger.add_cosignature(size, "— not a line", witness[1])
    with pytest.raises(NotFoundError):
        world.ledger.add_cosignature(size + 100, line, witness[1])
    with pytest.raises(ValueError, match="cosignature/v1"):
        world.ledger.add_cosignature(size, line, world.verifier)
    assert list(world.store.all_cosignatures()) == []


def test_witness_specs_and_lists(witness):
    vkey = witness[1].to_vkey()
    assert parse_witness_spec(f"https://w.example/p/={vkey}") == ("https://w.example/p", vkey)
    assert parse_witness_spec(f"https://w.example {vkey}") == ("https://w.example", vkey)
    for bad in ("https://w.example", "=x", "https://w.example= "):
        with pytest.raises(ValueError, match="URL=VKEY"):
            parse_witness_spec(bad)
    text = f"# ours\n\nhttps://a.example {vkey}\nhttps://b.example={vkey}\n"
    assert parse_witness_list(text) == [("https://a.example", vkey), ("https://b.example", vkey)]
    assert parse_witness_list(f'[{{"url": "https://a.example/", "vkey": "{vkey}"}}]') == [
        ("https://a.example", vkey)
    ]
    for bad, match in [
        ("nonsense", "line 1"),
        ("[", "JSON"),
        ("[1]", r"\[0\]"),
        ('[{"url": "x"}]', r"\[0\]"),
        ('["x"]', r"\[0\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_witness_list(bad)


def test_witness_endpoints_are_checked(witness, world):
    WitnessEndpoint(url="https://w.example/p", verifier=witness[1])
    for url in ("ftp://w.example", "https://w.example/"):
        with pytest.raises(ValueError, match="witness URL"):
            WitnessEndpoint(url=url, verifier=witness[1])
    log_key = NoteVerifier.from_vkey(build_vkey(world.ledger.log.origin, world.log_signer.public))
    with pytest.raises(ValueError, match="type 0x04"):
        WitnessEndpoint(url="https://w.example", verifier=log_key)
