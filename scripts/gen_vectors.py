"""Regenerate the Mandi protocol test vectors in tests/vectors/mandi/.

Every value is derived with the ``ledger`` package from fixed Ed25519 seeds and
a fixed clock, so the output is byte-for-byte stable (Ed25519 signatures are
deterministic). The vectors back the worked examples of docs/protocol.md and
are re-derived by tests/independent_verifier.py, which shares no code with
``ledger``.

Usage::

    .venv/bin/python scripts/gen_vectors.py          # write the files
    .venv/bin/python scripts/gen_vectors.py --check  # exit 1 if they would change

The example log (origin ``mandi.example/log``), every entry accepted at
``ACCEPTED_MS``:

    0  genesis   signed by the log key, enrolling the operator
    1  enrol     the operator enrols participant ``farm-1``
    2  harvest   ``farm-1`` records a harvest (creates lot ``lot:farm-1:2026-11-28-A``)
    3  rotate    ``farm-1`` rotates to a new key (request signed by old and new key)
    4  store     ``farm-1`` records cold storage of the lot, signed with its new key
    5  revoke    the operator revokes ``farm-1``'s new key (lost device)

Checkpoints are signed at sizes 1 (initialisation), 3 and 6; the size-6
checkpoint is also shown with a witness cosignature. Two statements the log
refuses at index 6 (signed by the rotated-away key and by the revoked key) show
the key validity rule.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledger.audit import audit_log
from ledger.checkpoint import (
    SIG_TYPE_COSIGNATURE_V1,
    NoteVerifier,
    SignedNote,
    build_vkey,
    build_witness_vkey,
    cosign_checkpoint,
    note_key_hash,
)
from ledger.datadir import write_private_key
from ledger.encoding import canonical_bytes, decode_canonical, decode_json
from ledger.errors import EncodingError, LedgerError
from ledger.hashing import EMPTY_ROOT
from ledger.keys import Signer
from ledger.registry import (
    REQUEST_DOMAIN,
    SignedRequest,
    build_enrolment,
    build_enrolment_request,
    build_revocation,
    build_rotation,
    build_rotation_request,
)
from ledger.service import Ledger
from ledger.statements import (
    STATEMENT_DOMAIN,
    Entry,
    SignedStatement,
    Statement,
    sign_statement,
)
from ledger.storage.memory import MemoryStore

__all__ = ["VECTOR_DIR", "build_vectors", "main", "render_files"]

PROTOCOL_DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
VECTOR_DIR = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "mandi"

ORIGIN = "mandi.example/log"
ACCEPTED_MS = 1795843800000
"""2026-11-28T04:30:00Z, i.e. 2026-11-28T09:30:00+05:00: the fixed clock."""

LOG_SEED = bytes(range(0, 32))
OPERATOR_SEED = bytes(range(32, 64))
FARM_SEED = bytes(range(64, 96))
FARM_NEW_SEED = bytes(range(96, 128))
WITNESS_SEED = bytes(range(128, 160))

OPERATOR_ID = "operator"
FARM_ID = "farm-1"
WITNESS_NAME = "witness.example/w1"
WITNESS_TIMESTAMP = ACCEPTED_MS // 1000

T_GENESIS = "2026-11-28T08:00:00+05:00"
T_FARM_REQUEST = "2026-11-28T08:15:00+05:00"
T_ENROL = "2026-11-28T08:20:00+05:00"
T_HARVEST = "2026-11-28T09:30:00+05:00"
T_ROTATE = "2026-11-28T09:30:00+05:00"
T_COOLING = "2026-11-28T09:30:00.250+05:00"
T_REVOKE = "2026-11-28T04:30:00Z"
T_LATE = "2026-11-28T09:30:00+05:00"

OPERATOR_PROFILE = {"name": "Mandi Federation", "role": "operator"}
FARM_PROFILE = {
    "local_id": "farm-1",
    "location": {"district": "Sheikhupura", "province": "Punjab"},
    "name": "Farm One",
    "role": "producer",
}
HARVEST_BODY: dict[str, Any] = {
    "crop": "rice",
    "harvest_date": "2026-11-27",
    "lot": "lot:farm-1:2026-11-28-A",
    "plot": "Sheikhupura, پنجاب",
    "quantity": {"amount": 1200, "unit": "kg"},
    "variety": "basmati",
}
COOLING_BODY: dict[str, Any] = {
    "facility": "farm-1 cold room",
    "lot": "lot:farm-1:2026-11-28-A",
    "temperature_dc": 40,
}
LATE_BODY: dict[str, Any] = {
    "crop": "rice",
    "harvest_date": "2026-11-27",
    "lot": "lot:farm-1:2026-11-28-B",
    "plot": "Sheikhupura",
    "quantity": {"amount": 1, "unit": "kg"},
}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


def _pretty(raw: bytes) -> str:
    return json.dumps(json.loads(raw), indent=2, sort_keys=True, ensure_ascii=False)


def _key_case(signer: Signer, seed: bytes, who: str, seed_recipe: str) -> dict[str, Any]:
    public = signer.public
    return {
        "desc": f"{who}: Ed25519 key from a fixed seed, and its key id",
        "recipe": f"seed = {seed_recipe}; public_key = RFC 8032 public key of seed; "
        "key_id = SHA-256(public_key)",
        "seed": seed.hex(),
        "public_key": public.raw.hex(),
        "public_key_b64": public.to_base64(),
        "key_id": public.key_id.hex(),
    }


def _statement_case(
    signed: SignedStatement, desc: str, recipe: str, signer: Signer
) -> dict[str, Any]:
    statement = signed.statement
    return {
        "desc": desc,
        "recipe": recipe,
        "object": json.loads(statement.raw),
        "canonical": _text(statement.raw),
        "pretty": _pretty(statement.raw),
        "signing_input_hex": statement.signing_input().hex(),
        "event_id": statement.event_id.hex(),
        "signer_public_key_b64": signer.public.to_base64(),
        "signature": _b64(signed.signature),
    }


def _request_case(request: SignedRequest, desc: str, recipe: str) -> dict[str, Any]:
    raw = request.request_bytes()
    return {
        "desc": desc,
        "recipe": recipe,
        "object": request.request,
        "canonical": _text(raw),
        "pretty": _pretty(raw),
        "signing_input_hex": (REQUEST_DOMAIN + raw).hex(),
        "signatures": dict(sorted(request.signatures.items())),
        "carrier": _text(canonical_bytes(request.to_json())),
    }


def _canonical_vectors() -> dict[str, Any]:
    accepted = {
        "key_order": (
            "members are sorted by key, recursively",
            '{"origin":"x","body":{"b":2,"a":1},"kind":"k"}',
        ),
        "whitespace": (
            "insignificant whitespace is dropped",
            '{ "a" : [ 1 , 2 ] ,\n  "b" : { } }',
        ),
        "literals": (
            "true, false, null, empty string, empty array and object",
            '{"t":true,"f":false,"n":null,"s":"","a":[],"o":{}}',
        ),
        "integers": (
            "integers are written in shortest decimal form; -0 is 0; +/-(2^53-1) is the limit",
            '{"max":9007199254740991,"min":-9007199254740991,"neg_zero":-0,"small":-7}',
        ),
        "string_escapes": (
            "only '\"', '\\\\' and U+0000..U+001F are escaped (\\b \\t \\n \\f \\r, else "
            "\\u00xx lowercase); '/', U+007F, U+2028 and all non-ASCII are written as UTF-8",
            '{"s":"\\u0022 \\\\ \\/ \\b\\f\\n\\r\\t \\u0001 \\u001F \\u007f \\u00e9 '
            '\\u2028 \\ud83c\\udf3e \\u0645\\u0646\\u0688\\u06cc"}',
        ),
        "utf16_key_order": (
            "keys sort by UTF-16 code units, not code points: U+1F33E (D83C DF3E) sorts "
            "before U+E000",
            '{"\\ue000":1,"\\ud83c\\udf3e":2,"a":3,"\\u00e9":4}',
        ),
    }
    rejected = {
        "float": ("a fraction is not an integer", '{"q":1.5}'),
        "float_integral": ("1.0 is a float even if integral", '{"q":1.0}'),
        "exponent": ("exponent notation is a float", '{"q":1e2}'),
        "nan": ("NaN is not JSON", '{"q":NaN}'),
        "infinity": ("Infinity is not JSON", '{"q":-Infinity}'),
        "duplicate_key": ("a name may occur once per object", '{"a":1,"a":1}'),
        "integer_too_large": ("2^53 is beyond the I-JSON range", '{"q":9007199254740992}'),
        "integer_too_small": ("-2^53 is beyond the I-JSON range", '{"q":-9007199254740992}'),
        "lone_surrogate": ("an unpaired UTF-16 surrogate", '{"s":"\\ud800"}'),
        "lone_surrogate_key": ("an unpaired surrogate in a key", '{"\\udc00":1}'),
    }
    not_canonical = {
        "unsorted": ("parses, but keys are not sorted", '{"b":1,"a":2}'),
        "spaces": ("parses, but has whitespace", '{"a": 1}'),
        "escaped_non_ascii": ("parses, but escapes a non-ASCII character", '{"a":"\\u00e9"}'),
        "escaped_solidus": ("parses, but escapes '/'", '{"a":"\\/"}'),
        "uppercase_hex_escape": ("parses, but uses uppercase hex", '{"a":"\\u001F"}'),
    }
    cases: dict[str, Any] = {}
    for name, (desc, text) in accepted.items():
        value = decode_json(text.encode("utf-8"))
        canonical = canonical_bytes(value)
        decode_canonical(canonical)  # the output is itself canonical
        cases[name] = {
            "desc": desc,
            "recipe": "canonical = RFC 8785(strict_parse(input))",
            "input": text,
            "canonical": _text(canonical),
            "canonical_hex": canonical.hex(),
            "want_error": False,
        }
    for name, (desc, text) in rejected.items():
        try:
            decode_json(text.encode("utf-8"))
        except EncodingError as exc:
            error = exc.code
        else:  # pragma: no cover - the generator must not emit a wrong vector
            raise SystemExit(f"canonical.{name}: expected the strict parser to reject {text!r}")
        cases[name] = {
            "desc": desc,
            "recipe": "strict_parse(input) must fail",
            "input": text,
            "want_error": True,
            "error": error,
        }
    for name, (desc, text) in not_canonical.items():
        try:
            decode_canonical(text.encode("utf-8"))
        except EncodingError as exc:
            error = exc.code
        else:  # pragma: no cover
            raise SystemExit(f"canonical.{name}: expected {text!r} to be non-canonical")
        cases[f"not_canonical_{name}"] = {
            "desc": desc,
            "recipe": "RFC 8785(strict_parse(input)) != input, so it is refused where "
            "canonical bytes are required (statements, entries)",
            "input": text,
            "want_error": True,
            "error": error,
        }
    return {
        "desc": "Canonical JSON: RFC 8785 over the I-JSON subset Mandi admits",
        "cases": cases,
    }


def build_vectors() -> dict[str, dict[str, Any]]:
    """Build every vector group: file stem -> ``{"desc": ..., "cases": {...}}``."""
    log = Signer.from_seed(LOG_SEED)
    operator = Signer.from_seed(OPERATOR_SEED)
    farm = Signer.from_seed(FARM_SEED)
    farm_new = Signer.from_seed(FARM_NEW_SEED)
    witness = Signer.from_seed(WITNESS_SEED)

    # -- the registry statements and their requests -------------------------------
    operator_request = build_enrolment_request(
        origin=ORIGIN,
        participant_id=OPERATOR_ID,
        signer=operator,
        time=T_GENESIS,
        profile=OPERATOR_PROFILE,
    )
    store = MemoryStore()
    ledger = Ledger.initialise(
        store,
        origin=ORIGIN,
        log_signer=log,
        operator_request=operator_request,
        time=T_GENESIS,
        clock=lambda: ACCEPTED_MS,
    )
    genesis_entry = ledger.entry(0)
    genesis = genesis_entry.signed_statement()

    farm_request = build_enrolment_request(
        origin=ORIGIN,
        participant_id=FARM_ID,
        signer=farm,
        time=T_FARM_REQUEST,
        profile=FARM_PROFILE,
    )
    enrol = build_enrolment(origin=ORIGIN, operator=operator, request=farm_request, time=T_ENROL)
    harvest = sign_statement(
        farm,
        Statement.build(
            origin=ORIGIN, kind="harvest", signer=farm.key_id, time=T_HARVEST, body=HARVEST_BODY
        ),
    )
    for signed in (enrol, harvest):
        ledger.append(signed)
    checkpoint_3 = ledger.flush_checkpoint()
    if checkpoint_3 is None or checkpoint_3.size != 3:  # pragma: no cover
        raise SystemExit("expected a checkpoint at size 3")

    rotation_request = build_rotation_request(
        origin=ORIGIN, participant_id=FARM_ID, old=farm, new=farm_new, time=T_ROTATE
    )
    rotate = build_rotation(
        origin=ORIGIN, operator=operator, request=rotation_request, time=T_ROTATE
    )
    revoke = build_revocation(
        origin=ORIGIN,
        operator=operator,
        participant_id=FARM_ID,
        key_id=farm_new.key_id,
        reason="device lost",
        time=T_REVOKE,
    )
    cooling = sign_statement(
        farm_new,
        Statement.build(
            origin=ORIGIN, kind="store", signer=farm_new.key_id, time=T_COOLING, body=COOLING_BODY
        ),
    )
    for signed in (rotate, cooling, revoke):
        ledger.append(signed)
    checkpoint_6 = ledger.flush_checkpoint()
    if checkpoint_6 is None or checkpoint_6.size != 6:  # pragma: no cover
        raise SystemExit("expected a checkpoint at size 6")
    refused = _refused_cases(ledger, {"rotated_away_key": farm, "revoked_key": farm_new})

    log_verifier = NoteVerifier.from_key(ORIGIN, log.public)
    entries = list(store.entries(0, ledger.size()))
    report = audit_log(entries, [cp.note for cp in store.checkpoints()], log_verifier=log_verifier)
    if not report.ok:  # pragma: no cover - the example log must be valid
        raise SystemExit(f"the example log does not audit:\n{report.to_text()}")

    keys = _keys_group(log, operator, farm, farm_new, witness)
    statements = _statements_group(
        signers=(log, operator, farm, farm_new),
        requests=(operator_request, farm_request, rotation_request),
        statements=(genesis, enrol, harvest, rotate, cooling, revoke),
    )
    entries_group = _entries_group(entries)
    registry_group = _registry_group(ledger, store, refused)
    merkle = _merkle_group(ledger, entries)
    checkpoint = _checkpoint_group(checkpoint_3.note, checkpoint_6.note, witness)
    return {
        "canonical": _canonical_vectors(),
        "keys": keys,
        "statements": statements,
        "entries": entries_group,
        "registry": registry_group,
        "merkle": merkle,
        "checkpoint": checkpoint,
    }


def _keys_group(
    log: Signer, operator: Signer, farm: Signer, farm_new: Signer, witness: Signer
) -> dict[str, Any]:
    log_case = _key_case(log, LOG_SEED, "the log key", "bytes(range(0, 32))")
    key_hash = note_key_hash(ORIGIN, log.public.raw)
    vkey = build_vkey(ORIGIN, log.public)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.key"
        write_private_key(path, ORIGIN, log)
        key_file = path.read_text(encoding="ascii")
    log_case.update(
        {
            "name": ORIGIN,
            "note_key_hash": key_hash.hex(),
            "note_key_hash_input_hex": (ORIGIN.encode() + b"\n\x01" + log.public.raw).hex(),
            "vkey": vkey,
            "vkey_file": vkey + "\n",
            "key_file": key_file,
        }
    )
    log_case["recipe"] += (
        "; note_key_hash = SHA-256(name || 0x0A || 0x01 || public_key)[:4]; "
        "vkey = name + '+' + hex(note_key_hash) + '+' + base64(0x01 || public_key); "
        "key_file = 'PRIVATE+KEY+' + name + '+' + hex(note_key_hash) + '+' "
        "+ base64(0x01 || seed) + LF"
    )
    witness_case = _key_case(witness, WITNESS_SEED, "a witness key", "bytes(range(128, 160))")
    witness_case.update(
        {
            "name": WITNESS_NAME,
            "note_key_hash": note_key_hash(
                WITNESS_NAME, witness.public.raw, SIG_TYPE_COSIGNATURE_V1
            ).hex(),
            "vkey": build_witness_vkey(WITNESS_NAME, witness.public),
        }
    )
    witness_case["recipe"] += (
        "; note_key_hash = SHA-256(name || 0x0A || 0x04 || public_key)[:4]; "
        "vkey = name + '+' + hex(note_key_hash) + '+' + base64(0x04 || public_key)"
    )
    return {
        "desc": "Fixed Ed25519 keys of the example log. Test keys only: never use these seeds",
        "cases": {
            "log": log_case,
            "operator": _key_case(
                operator, OPERATOR_SEED, "the operator participant", "bytes(range(32, 64))"
            ),
            "farm_1": _key_case(farm, FARM_SEED, "participant farm-1", "bytes(range(64, 96))"),
            "farm_1_rotated": _key_case(
                farm_new, FARM_NEW_SEED, "farm-1's key after rotation", "bytes(range(96, 128))"
            ),
            "witness": witness_case,
        },
    }


def _statements_group(
    *,
    signers: tuple[Signer, Signer, Signer, Signer],
    requests: tuple[SignedRequest, SignedRequest, SignedRequest],
    statements: tuple[SignedStatement, ...],
) -> dict[str, Any]:
    log, operator, farm, farm_new = signers
    operator_request, farm_request, rotation_request = requests
    genesis, enrol, harvest, rotate, cooling, revoke = statements
    stmt_recipe = (
        "canonical = RFC 8785(object); signature = Ed25519(signer seed, "
        "STATEMENT_DOMAIN || canonical); event_id = SHA-256(canonical)"
    )
    req_recipe = (
        "canonical = RFC 8785(object); signature = Ed25519(seed, REQUEST_DOMAIN || canonical)"
    )
    cases: dict[str, Any] = {
        "domains": {
            "desc": "domain-separation prefixes of statement and request signatures",
            "recipe": "ASCII text, ending in one LF (0x0a)",
            "statement_domain": _text(STATEMENT_DOMAIN),
            "statement_domain_hex": STATEMENT_DOMAIN.hex(),
            "request_domain": _text(REQUEST_DOMAIN),
            "request_domain_hex": REQUEST_DOMAIN.hex(),
        },
        "operator_request": _request_case(
            operator_request,
            "the operator's enrolment request inside the genesis body, signed by the operator key",
            req_recipe + "; seed = bytes(range(32, 64)) (the operator)",
        ),
        "genesis": _statement_case(
            genesis,
            "entry 0: the genesis statement, signed by the log key",
            stmt_recipe + "; signer = the log key",
            log,
        ),
        "farm_1_request": _request_case(
            farm_request,
            "farm-1's enrolment request, signed by farm-1's key",
            req_recipe + "; seed = bytes(range(64, 96)) (farm-1)",
        ),
        "enrol": _statement_case(
            enrol,
            "entry 1: the operator enrols farm-1 (body = farm-1's signed request)",
            stmt_recipe + "; signer = the operator key",
            operator,
        ),
        "harvest": _statement_case(
            harvest,
            "entry 2: farm-1 (a producer) harvests 1200 kg of basmati rice, creating "
            "lot lot:farm-1:2026-11-28-A",
            stmt_recipe + "; signer = farm-1's key",
            farm,
        ),
        "rotation_request": _request_case(
            rotation_request,
            "farm-1's rotation request, signed by both the old and the new key",
            "canonical = RFC 8785(object); signatures.old = Ed25519(farm-1 seed, "
            "REQUEST_DOMAIN || canonical); signatures.new = Ed25519(bytes(range(96, 128)), "
            "REQUEST_DOMAIN || canonical)",
        ),
        "rotate": _statement_case(
            rotate,
            "entry 3: the operator commits farm-1's key rotation",
            stmt_recipe + "; signer = the operator key",
            operator,
        ),
        "cooling": _statement_case(
            cooling,
            "entry 4: farm-1 signs with its new key (valid from index 4 = rotation index + 1); "
            "the time carries a fraction of a second",
            stmt_recipe + "; signer = farm-1's rotated key",
            farm_new,
        ),
        "revoke": _statement_case(
            revoke,
            "entry 5: the operator revokes farm-1's rotated key (effective from index 5); "
            "the time is in UTC with 'Z'",
            stmt_recipe + "; signer = the operator key",
            operator,
        ),
    }
    return {
        "desc": "Statements (what participants sign) and registry requests of the example log",
        "cases": cases,
    }


def _entries_group(entries: list[Entry]) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    for entry in entries:
        raw = entry.to_bytes()
        if canonical_bytes(decode_json(raw)) != raw:  # pragma: no cover - Entry.to_bytes contract
            raise SystemExit(f"entry {entry.index}: to_bytes is not RFC 8785")
        cases[f"entry_{entry.index}"] = {
            "desc": f"entry {entry.index} of the example log",
            "recipe": "bytes = RFC 8785({accepted_ms, index, prev: hex, signature: base64, "
            "statement: base64}); leaf_hash = SHA-256(0x00 || bytes); "
            "prev = leaf_hash of entry index-1 (32 zero bytes for entry 0)",
            "index": entry.index,
            "accepted_ms": entry.accepted_ms,
            "prev": entry.prev.hex(),
            "statement": _b64(entry.statement),
            "signature": _b64(entry.signature),
            "event_id": entry.event_id.hex(),
            "bytes": _text(raw),
            "leaf_hash": entry.leaf_hash.hex(),
        }
    return {
        "desc": "Entries of the example log: canonical bytes, leaf hashes, chain",
        "cases": cases,
    }


def _refused_cases(ledger: Ledger, signers: Mapping[str, Signer]) -> dict[str, Any]:
    """Statements the log must refuse at the next index, with the ledger's error code."""
    cases: dict[str, Any] = {}
    index = ledger.size()
    prev = ledger.entry(index - 1).leaf_hash
    for name, signer in signers.items():
        signed = sign_statement(
            signer,
            Statement.build(
                origin=ORIGIN, kind="harvest", signer=signer.key_id, time=T_LATE, body=LATE_BODY
            ),
        )
        try:
            ledger.append(signed)
        except LedgerError as exc:
            error = exc.code
        else:  # pragma: no cover - the example must be refused
            raise SystemExit(f"registry.{name}: the ledger accepted a statement by a dead key")
        if ledger.size() != index:  # pragma: no cover
            raise SystemExit("a refused append changed the log")
        entry = Entry(
            index=index,
            accepted_ms=ACCEPTED_MS,
            prev=prev,
            statement=signed.statement.raw,
            signature=signed.signature,
        )
        cases[f"refused_{name}"] = {
            "desc": f"a well-signed statement by farm-1's {name.replace('_', ' ')}, refused "
            f"at index {index}: the key is not valid there",
            "recipe": "the entry the log would have written; replaying entries 0..5 and then "
            "this one must fail, because the signer's key has revoked_at <= index",
            "index": index,
            "canonical": _text(signed.statement.raw),
            "signature": _b64(signed.signature),
            "entry_bytes": _text(entry.to_bytes()),
            "want_error": True,
            "error": error,
        }
    return cases


def _registry_group(
    ledger: Ledger, store: MemoryStore, refused: Mapping[str, Any]
) -> dict[str, Any]:
    size = ledger.size()
    keys = []
    records = store.keys()  # registry key records, not dict keys
    for record in records:
        keys.append(
            {
                "key_id": record.key_id.hex(),
                "participant": record.participant,
                "added_at": record.added_at,
                "revoked_at": record.revoked_at,
                "valid_at": [i for i in range(size + 2) if record.valid_at(i)],
            }
        )
    participants = [
        {
            "participant": p.participant_id,
            "enrolled_at": p.enrolled_at,
            "operator": p.operator,
            "profile": dict(p.profile),
        }
        for p in store.participants()
    ]
    return {
        "desc": "The participant registry replayed from the example log",
        "cases": {
            "after_6": {
                "desc": f"keys and participants after all {size} entries; valid_at lists the "
                f"indices in [0, {size + 2}) at which each key may sign",
                "recipe": "replay genesis/enrol/rotate/revoke in index order; a key may sign "
                "index i iff added_at < i and (revoked_at is null or i < revoked_at)",
                "keys": keys,
                "participants": participants,
            },
            **refused,
        },
    }


def _merkle_group(ledger: Ledger, entries: list[Entry]) -> dict[str, Any]:
    size = ledger.size()
    leaves = [entry.leaf_hash.hex() for entry in entries]
    roots = [ledger.root_hash(n).hex() for n in range(size + 1)]
    if roots[0] != EMPTY_ROOT.hex():  # pragma: no cover
        raise SystemExit("root of the empty tree is not SHA-256('')")

    def inclusion(leaf_index: int, tree_size: int) -> dict[str, Any]:
        return {
            "desc": f"inclusion proof of leaf {leaf_index} in the tree of size {tree_size}",
            "recipe": "RFC 9162 section 2.1.3.1 PATH(m, D[n]); verify with section 2.1.3.2",
            "leaf_index": leaf_index,
            "tree_size": tree_size,
            "leaf_hash": leaves[leaf_index],
            "proof": [h.hex() for h in ledger.inclusion_proof(leaf_index, tree_size)],
            "root": roots[tree_size],
        }

    def consistency(size1: int, size2: int) -> dict[str, Any]:
        return {
            "desc": f"consistency proof from size {size1} to size {size2}",
            "recipe": "RFC 9162 section 2.1.4.1 PROOF(m, D[n]); verify with section 2.1.4.2",
            "size1": size1,
            "size2": size2,
            "root1": roots[size1],
            "root2": roots[size2],
            "proof": [h.hex() for h in ledger.consistency_proof(size1, size2)],
        }

    return {
        "desc": "RFC 9162 Merkle tree of the example log: roots and proofs",
        "cases": {
            "roots": {
                "desc": f"leaf hashes and the root at every size 0..{size}",
                "recipe": "MTH of RFC 9162 section 2.1.1 over the leaf hashes; "
                "roots[n] = MTH(D[n]); roots[0] = SHA-256('')",
                "leaf_hashes": leaves,
                "roots": roots,
            },
            "root_3": {
                "desc": "the root at size 3",
                "recipe": "node_hash(node_hash(leaf0, leaf1), leaf2), "
                "node_hash(l, r) = SHA-256(0x01 || l || r)",
                "tree_size": 3,
                "root": roots[3],
            },
            "inclusion_1_3": inclusion(1, 3),
            "inclusion_5_6": inclusion(5, 6),
            "consistency_2_3": consistency(2, 3),
            "consistency_3_6": consistency(3, 6),
        },
    }


def _checkpoint_case(note_text: str, desc: str) -> dict[str, Any]:
    note = SignedNote.from_text(note_text)
    lines = note.text.split("\n")
    sig = note.signatures[0]
    return {
        "desc": desc,
        "recipe": "body = origin LF size LF base64(root) LF; note = body LF '\u2014 ' name SP "
        "base64(note_key_hash || Ed25519(log seed, UTF-8(body))) LF",
        "origin": lines[0],
        "tree_size": int(lines[1]),
        "root_hash": base64.b64decode(lines[2]).hex(),
        "body": note.text,
        "signature_line": sig.line,
        "note": note_text,
    }


def _checkpoint_group(note_3: str, note_6: str, witness: Signer) -> dict[str, Any]:
    case_6 = _checkpoint_case(note_6, "the log's checkpoint at size 6")
    cosig_line = cosign_checkpoint(witness, WITNESS_NAME, case_6["body"], WITNESS_TIMESTAMP)
    cosigned = note_6 + cosig_line
    SignedNote.from_text(cosigned)
    return {
        "desc": "C2SP tlog-checkpoint signed notes of the example log",
        "cases": {
            "size_3": _checkpoint_case(note_3, "the log's checkpoint at size 3"),
            "size_6": case_6,
            "size_6_cosigned": {
                "desc": "the size-6 checkpoint with a witness cosignature (tlog-cosignature "
                "cosignature/v1) appended",
                "recipe": "line = '\u2014 ' name SP base64(witness key hash || u64be(timestamp) "
                "|| Ed25519(witness seed, 'cosignature/v1' LF 'time ' timestamp LF body)) LF",
                "witness_name": WITNESS_NAME,
                "timestamp": WITNESS_TIMESTAMP,
                "cosignature_message": f"cosignature/v1\ntime {WITNESS_TIMESTAMP}\n"
                + case_6["body"],
                "cosignature_line": cosig_line,
                "note": cosigned,
            },
        },
    }


def render_files(vectors: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """File name -> exact file text (2-space indented JSON, UTF-8, final newline)."""
    return {
        f"{stem}.json": json.dumps(group, indent=2, ensure_ascii=False) + "\n"
        for stem, group in vectors.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Write the vectors, or with ``--check`` report whether the files on disk differ."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files on disk differ; write nothing"
    )
    parser.add_argument("--out", type=Path, default=VECTOR_DIR, help="vector directory")
    parser.add_argument(
        "--docs",
        action="store_true",
        help="after writing, refresh every vector-tagged example block in docs/protocol.md",
    )
    args = parser.parse_args(argv)
    files = render_files(build_vectors())
    out: Path = args.out
    stale = sorted(
        name
        for name, text in files.items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    )
    extra = sorted(p.name for p in out.glob("*.json") if p.name not in files)
    if args.check:
        for name in stale:
            print(f"stale: {out / name}", file=sys.stderr)
        for name in extra:
            print(f"not generated: {out / name}", file=sys.stderr)
        return 1 if stale or extra else 0
    out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (out / name).write_text(files[name], encoding="utf-8")
        print(f"wrote {out / name}")
    if args.docs:
        _refresh_docs(out)
    return 0


def _refresh_docs(vector_dir: Path) -> None:
    """Rewrite the content of every ``vector=...`` block of docs/protocol.md from the vectors.

    The blocks are the worked examples of the protocol; the drift test in
    tests/ledger/test_protocol_vectors.py holds them equal to the vectors.
    """
    from tests.ledger.test_protocol_vectors import doc_blocks, resolve_vector

    vectors = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in vector_dir.glob("*.json")}
    doc = PROTOCOL_DOC.read_text(encoding="utf-8")
    lines = doc.split("\n")
    for start, info, content in reversed(doc_blocks(doc)):
        tags = [w for w in info.split() if w.startswith("vector=")]
        if not tags:
            continue
        new = resolve_vector(vectors, tags[0][len("vector=") :]).split("\n")
        old_len = len(content.split("\n")) if content else 0
        lines[start : start + old_len] = new
    PROTOCOL_DOC.write_text("\n".join(lines), encoding="utf-8")
    print(f"refreshed the examples in {PROTOCOL_DOC}")


if __name__ == "__main__":
    sys.exit(main())
