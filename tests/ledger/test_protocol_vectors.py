"""The protocol vectors: re-derived independently, regenerated without drift, quoted exactly.

(a) tests/independent_verifier.py (no ``ledger`` import) re-derives every value
    in tests/vectors/mandi/*.json;
(b) scripts/gen_vectors.py, run in-process with the ledger code, reproduces the
    files on disk byte for byte;
(c) every fenced block in docs/protocol.md tagged ``vector=<file>.<case>.<field>``
    equals that vector value, and every untagged block is a grammar/pseudocode block;
(d) a one-byte mutation of a signature, entry, proof or note makes the
    independent verifier reject the vectors.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests import independent_verifier as iv

ROOT = Path(__file__).resolve().parents[2]
VECTOR_DIR = ROOT / "tests" / "vectors" / "mandi"
PROTOCOL_MD = ROOT / "docs" / "protocol.md"
GROUPS = ("canonical", "keys", "statements", "entries", "registry", "merkle", "checkpoint")
UNTAGGED_BLOCK_LANGUAGES = frozenset({"abnf", "pseudocode"})

Vectors = dict[str, dict[str, Any]]


def load_vectors() -> Vectors:
    return {
        stem: json.loads((VECTOR_DIR / f"{stem}.json").read_text(encoding="utf-8"))
        for stem in GROUPS
    }


@pytest.fixture(scope="module")
def vectors() -> Vectors:
    return load_vectors()


def _cases(vectors: Vectors, group: str) -> dict[str, Any]:
    cases: dict[str, Any] = vectors[group]["cases"]
    return cases


def _same(found: object, expected: object, what: str) -> None:
    """A re-derived value must equal the vector; a difference is a verification failure."""
    if found != expected:
        raise iv.VerifyError(f"{what}: re-derived {found!r}, vector says {expected!r}")


def _public(vectors: Vectors, who: str) -> bytes:
    return bytes.fromhex(_cases(vectors, "keys")[who]["public_key"])


# --------------------------------------------------------------------------- (a) checks


def check_canonical(vectors: Vectors) -> None:
    for name, case in _cases(vectors, "canonical").items():
        data = case["input"].encode("utf-8")
        if not case["want_error"]:
            canonical = iv.canonical_json(iv.parse_json(data))
            _same(canonical.decode("utf-8"), case["canonical"], f"canonical.{name}")
            _same(canonical.hex(), case["canonical_hex"], f"canonical.{name}.canonical_hex")
            iv.parse_canonical(canonical)
        elif name.startswith("not_canonical_"):
            iv.parse_json(data)  # parses fine ...
            with pytest.raises(iv.VerifyError):
                iv.parse_canonical(data)  # ... but is not canonical
        else:
            with pytest.raises(iv.VerifyError):
                iv.parse_json(data)


def check_keys(vectors: Vectors) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for name, case in _cases(vectors, "keys").items():
        private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["seed"]))
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        _same(public.hex(), case["public_key"], f"keys.{name}.public_key")
        _same(iv.b64encode(public), case["public_key_b64"], f"keys.{name}.public_key_b64")
        _same(iv.key_id(public).hex(), case["key_id"], f"keys.{name}.key_id")
    log = _cases(vectors, "keys")["log"]
    public = bytes.fromhex(log["public_key"])
    name = log["name"]
    hash_input = name.encode() + b"\n\x01" + public
    _same(hash_input.hex(), log["note_key_hash_input_hex"], "keys.log.note_key_hash_input_hex")
    key_hash = iv.note_key_hash(name, iv.SIG_TYPE_ED25519, public)
    _same(key_hash.hex(), log["note_key_hash"], "keys.log.note_key_hash")
    _same(iv.build_vkey(name, iv.SIG_TYPE_ED25519, public), log["vkey"], "keys.log.vkey")
    _same(log["vkey"] + "\n", log["vkey_file"], "keys.log.vkey_file")
    seed_b64 = iv.b64encode(b"\x01" + bytes.fromhex(log["seed"]))
    key_file = f"PRIVATE+KEY+{name}+{key_hash.hex()}+{seed_b64}\n"
    _same(key_file, log["key_file"], "keys.log.key_file")
    iv.parse_vkey(log["vkey"])
    witness = _cases(vectors, "keys")["witness"]
    w_public = bytes.fromhex(witness["public_key"])
    w_name = witness["name"]
    w_hash = iv.note_key_hash(w_name, iv.SIG_TYPE_COSIGNATURE, w_public)
    _same(w_hash.hex(), witness["note_key_hash"], "keys.witness.note_key_hash")
    _same(iv.build_vkey(w_name, iv.SIG_TYPE_COSIGNATURE, w_public), witness["vkey"], "witness vkey")


_STATEMENT_SIGNERS = {
    "genesis": "log",
    "enrol": "operator",
    "harvest": "farm_1",
    "rotate": "operator",
    "cooling": "farm_1_rotated",
    "revoke": "operator",
}
_REQUEST_SIGNERS = {
    "operator_request": {"key": "operator"},
    "farm_1_request": {"key": "farm_1"},
    "rotation_request": {"old": "farm_1", "new": "farm_1_rotated"},
}


def _check_pretty(case: dict[str, Any], what: str) -> None:
    pretty = json.dumps(json.loads(case["canonical"]), indent=2, sort_keys=True, ensure_ascii=False)
    _same(pretty, case["pretty"], f"{what}.pretty")


def check_statements(vectors: Vectors) -> None:
    cases = _cases(vectors, "statements")
    domains = cases["domains"]
    _same(iv.STATEMENT_DOMAIN.decode(), domains["statement_domain"], "statement_domain")
    _same(iv.STATEMENT_DOMAIN.hex(), domains["statement_domain_hex"], "statement_domain_hex")
    _same(iv.REQUEST_DOMAIN.decode(), domains["request_domain"], "request_domain")
    _same(iv.REQUEST_DOMAIN.hex(), domains["request_domain_hex"], "request_domain_hex")
    for name, who in _STATEMENT_SIGNERS.items():
        case = cases[name]
        raw = iv.canonical_json(case["object"])
        _same(raw.decode("utf-8"), case["canonical"], f"statements.{name}.canonical")
        _check_pretty(case, f"statements.{name}")
        _same((iv.STATEMENT_DOMAIN + raw).hex(), case["signing_input_hex"], f"{name}.signing_input")
        _same(iv.event_id(raw).hex(), case["event_id"], f"statements.{name}.event_id")
        public = _public(vectors, who)
        _same(iv.b64encode(public), case["signer_public_key_b64"], f"{name}.signer key")
        iv.verify_statement(raw, iv.b64decode(case["signature"]), public)
    for name, signers in _REQUEST_SIGNERS.items():
        case = cases[name]
        raw = iv.canonical_json(case["object"])
        _same(raw.decode("utf-8"), case["canonical"], f"statements.{name}.canonical")
        _check_pretty(case, f"statements.{name}")
        message = iv.REQUEST_DOMAIN + raw
        _same(message.hex(), case["signing_input_hex"], f"statements.{name}.signing_input")
        _same(sorted(case["signatures"]), sorted(signers), f"statements.{name}.signatures")
        for slot, who in signers.items():
            signature = iv.b64decode(case["signatures"][slot])
            iv.verify_ed25519(_public(vectors, who), signature, message)
        carrier = {"request": case["object"], "signatures": case["signatures"]}
        _same(iv.canonical_json(carrier).decode(), case["carrier"], f"{name}.carrier")
    # The requests are carried verbatim inside the registry statements.
    genesis_body = cases["genesis"]["object"]["body"]
    _same(genesis_body["operator"], json.loads(cases["operator_request"]["carrier"]), "genesis")
    _same(cases["enrol"]["object"]["body"], json.loads(cases["farm_1_request"]["carrier"]), "enrol")
    rotate_body = cases["rotate"]["object"]["body"]
    _same(rotate_body, json.loads(cases["rotation_request"]["carrier"]), "rotate body")


def _entry_list(vectors: Vectors) -> list[dict[str, Any]]:
    cases = _cases(vectors, "entries")
    return [cases[f"entry_{i}"] for i in range(len(cases))]


def check_entries(vectors: Vectors) -> list[bytes]:
    entries = _entry_list(vectors)
    statements = _cases(vectors, "statements")
    order = ["genesis", "enrol", "harvest", "rotate", "cooling", "revoke"]
    prev = iv.ZERO_HASH
    for i, case in enumerate(entries):
        raw = iv.entry_bytes(
            index=case["index"],
            accepted_ms=case["accepted_ms"],
            prev=iv.hex32(case["prev"]),
            statement=iv.b64decode(case["statement"]),
            signature=iv.b64decode(case["signature"]),
        )
        _same(raw.decode("ascii"), case["bytes"], f"entries.entry_{i}.bytes")
        _same(case["index"], i, f"entries.entry_{i}.index")
        _same(case["prev"], prev.hex(), f"entries.entry_{i}.prev")
        statement = statements[order[i]]
        _same(iv.b64decode(case["statement"]).decode(), statement["canonical"], f"entry_{i}")
        _same(case["signature"], statement["signature"], f"entries.entry_{i}.signature")
        _same(case["event_id"], iv.event_id(iv.b64decode(case["statement"])).hex(), "event id")
        prev = iv.leaf_hash(raw)
        _same(prev.hex(), case["leaf_hash"], f"entries.entry_{i}.leaf_hash")
    log = _cases(vectors, "keys")["log"]
    leaves, _keys, _participants = iv.replay(
        [case["bytes"].encode("ascii") for case in entries],
        origin=log["name"],
        log_public_key=bytes.fromhex(log["public_key"]),
    )
    return leaves


def check_registry(vectors: Vectors) -> None:
    entries = [case["bytes"].encode("ascii") for case in _entry_list(vectors)]
    log = _cases(vectors, "keys")["log"]
    origin, log_key = log["name"], bytes.fromhex(log["public_key"])
    _leaves, keys, participants = iv.replay(entries, origin=origin, log_public_key=log_key)
    cases = _cases(vectors, "registry")
    after = cases[f"after_{len(entries)}"]
    derived_keys = [
        {
            "key_id": kid.hex(),
            "participant": state.participant,
            "added_at": state.added_at,
            "revoked_at": state.revoked_at,
            "valid_at": [i for i in range(len(entries) + 2) if state.valid_at(i)],
        }
        for kid, state in keys.items()
    ]
    _same(derived_keys, after["keys"], "registry keys")
    derived_participants = [{"participant": pid, **p} for pid, p in participants.items()]
    _same(
        sorted(derived_participants, key=lambda p: p["enrolled_at"]),
        [
            {k: p[k] for k in ("participant", "enrolled_at", "operator", "profile")}
            for p in after["participants"]
        ],
        "registry participants",
    )
    for name, case in cases.items():
        if not name.startswith("refused_"):
            continue
        entry = iv.parse_entry(case["entry_bytes"].encode("ascii"))
        _same(entry["index"], len(entries), f"registry.{name}.index")
        _same(entry["statement"].decode("utf-8"), case["canonical"], f"registry.{name}.statement")
        _same(iv.b64encode(entry["signature"]), case["signature"], f"registry.{name}.signature")
        # The signature itself is good; only the key's validity at this index fails.
        obj = iv.check_statement(entry["statement"])
        signer = keys[bytes.fromhex(obj["signer"])]
        iv.verify_statement(entry["statement"], entry["signature"], signer.public)
        _same(signer.valid_at(case["index"]), False, f"registry.{name}: key is valid")
        with pytest.raises(iv.VerifyError, match="not valid"):
            iv.replay(
                [*entries, case["entry_bytes"].encode("ascii")],
                origin=origin,
                log_public_key=log_key,
            )


def check_merkle(vectors: Vectors) -> None:
    cases = _cases(vectors, "merkle")
    leaves = [bytes.fromhex(h) for h in cases["roots"]["leaf_hashes"]]
    entry_leaves = [bytes.fromhex(case["leaf_hash"]) for case in _entry_list(vectors)]
    _same(leaves, entry_leaves, "merkle leaf hashes")
    roots = [iv.merkle_root(leaves[:n]).hex() for n in range(len(leaves) + 1)]
    _same(roots, cases["roots"]["roots"], "merkle.roots")
    _same(roots[cases["root_3"]["tree_size"]], cases["root_3"]["root"], "merkle.root_3")
    for name, case in cases.items():
        if name.startswith("inclusion_"):
            _same(case["leaf_hash"], leaves[case["leaf_index"]].hex(), f"merkle.{name}.leaf")
            _same(case["root"], roots[case["tree_size"]], f"merkle.{name}.root")
            iv.verify_inclusion(
                bytes.fromhex(case["leaf_hash"]),
                case["leaf_index"],
                case["tree_size"],
                [bytes.fromhex(h) for h in case["proof"]],
                bytes.fromhex(case["root"]),
            )
        elif name.startswith("consistency_"):
            _same(case["root1"], roots[case["size1"]], f"merkle.{name}.root1")
            _same(case["root2"], roots[case["size2"]], f"merkle.{name}.root2")
            iv.verify_consistency(
                case["size1"],
                case["size2"],
                [bytes.fromhex(h) for h in case["proof"]],
                bytes.fromhex(case["root1"]),
                bytes.fromhex(case["root2"]),
            )


def check_checkpoint(vectors: Vectors) -> None:
    keys = _cases(vectors, "keys")
    vkey = keys["log"]["vkey"]
    roots = _cases(vectors, "merkle")["roots"]["roots"]
    for name, case in _cases(vectors, "checkpoint").items():
        origin, size, root = iv.verify_checkpoint(case["note"], vkey)
        if name.endswith("_cosigned"):
            timestamp = iv.verify_cosignature(case["note"], keys["witness"]["vkey"])
            _same(timestamp, case["timestamp"], f"checkpoint.{name}.timestamp")
            body, _lines = iv.split_note(case["note"])
            message = iv.cosignature_message(body, timestamp)
            _same(message.decode(), case["cosignature_message"], f"{name}.cosignature_message")
            _same(case["note"].endswith(case["cosignature_line"]), True, f"{name}.line")
            continue
        _same(origin, case["origin"], f"checkpoint.{name}.origin")
        _same(size, case["tree_size"], f"checkpoint.{name}.tree_size")
        _same(root.hex(), case["root_hash"], f"checkpoint.{name}.root_hash")
        _same(root.hex(), roots[size], f"checkpoint.{name}: root is not the Merkle root")
        body = f"{origin}\n{size}\n{iv.b64encode(root)}\n"
        _same(body, case["body"], f"checkpoint.{name}.body")
        _same(body + "\n" + case["signature_line"], case["note"], f"checkpoint.{name}.note")


CHECKS: dict[str, Callable[[Vectors], object]] = {
    "canonical": check_canonical,
    "keys": check_keys,
    "statements": check_statements,
    "entries": check_entries,
    "registry": check_registry,
    "merkle": check_merkle,
    "checkpoint": check_checkpoint,
}


def check_all(vectors: Vectors) -> None:
    for check in CHECKS.values():
        check(vectors)


@pytest.mark.parametrize("group", GROUPS)
def test_independent_verifier_rederives_vectors(vectors: Vectors, group: str) -> None:
    CHECKS[group](vectors)


def test_every_case_has_desc_and_recipe(vectors: Vectors) -> None:
    for group, data in vectors.items():
        assert data["desc"], group
        for name, case in data["cases"].items():
            assert case.get("desc"), f"{group}.{name}"
            assert case.get("recipe"), f"{group}.{name}"
            assert "\n" not in case["recipe"], f"{group}.{name}: recipe must be one line"


# --------------------------------------------------------------------------- (b) drift


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_vectors.py"
    spec = importlib.util.spec_from_file_location("mandi_gen_vectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_vectors_gives_the_files_on_disk() -> None:
    gen = _generator()
    files = gen.render_files(gen.build_vectors())
    on_disk = {p.name for p in VECTOR_DIR.glob("*.json")}
    assert on_disk == set(files), "vector files differ from what gen_vectors.py writes"
    assert sorted(files) == sorted(f"{g}.json" for g in GROUPS)
    for name, text in files.items():
        assert (VECTOR_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} drifted: run .venv/bin/python scripts/gen_vectors.py"
        )


def test_generator_check_mode_reports_drift(tmp_path: Path) -> None:
    gen = _generator()
    assert gen.main(["--out", str(tmp_path)]) == 0
    assert gen.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "merkle.json").write_text("{}\n", encoding="utf-8")
    assert gen.main(["--check", "--out", str(tmp_path)]) == 1


# --------------------------------------------------------------------------- (c) docs


_FENCE = re.compile(r"^```(.*)$")
_VECTOR_TAG = re.compile(r"^([a-z_]+)\.([a-z0-9_]+)((?:\.[a-z0-9_]+)*)$")


def doc_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, info string, content) of every fenced block; content without final LF."""
    blocks: list[tuple[int, str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start, info = i + 1, match.group(1).strip()
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"protocol.md:{start}: unterminated fenced block"
        blocks.append((start, info, "\n".join(body)))
        i += 1
    return blocks


def resolve_vector(vectors: Vectors, tag: str) -> str:
    """The text a block tagged ``vector=<file>.<case>[.<field>...]`` must hold.

    A string is shown as is (without its final LF, which the block's last line
    implies); a list of strings one per line; an integer in decimal; any other
    JSON value as ``json.dumps(value, indent=2, ensure_ascii=False)``.
    """
    match = _VECTOR_TAG.match(tag)
    assert match is not None, f"malformed tag {tag!r}"
    group, case, rest = match.group(1), match.group(2), match.group(3)
    assert group in vectors, f"no vector file {group}.json"
    value: Any = vectors[group]["cases"].get(case)
    assert value is not None, f"no case {group}.{case}"
    for part in rest.split(".")[1:]:
        if isinstance(value, list):
            value = value[int(part)]
        else:
            assert isinstance(value, dict)
            assert part in value, f"no field {part!r} in {tag}"
            value = value[part]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return "\n".join(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        return json.dumps(value, indent=2, ensure_ascii=False)
    # A fenced block always ends its last line; a value's own final LF is implied by it.
    return value[:-1] if value.endswith("\n") else value


def test_protocol_md_blocks_equal_vectors(vectors: Vectors) -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    blocks = doc_blocks(text)
    tagged = 0
    for line, info, content in blocks:
        words = info.split()
        tags = [w for w in words if w.startswith("vector=")]
        if not tags:
            language = words[0] if words else ""
            assert language in UNTAGGED_BLOCK_LANGUAGES, (
                f"protocol.md:{line}: a fenced block must carry vector=... "
                f"or be one of {sorted(UNTAGGED_BLOCK_LANGUAGES)}"
            )
            continue
        assert len(tags) == 1, f"protocol.md:{line}: one vector per block"
        expected = resolve_vector(vectors, tags[0][len("vector=") :])
        assert content == expected, f"protocol.md:{line}: block differs from {tags[0]}"
        tagged += 1
    assert tagged >= 20, "protocol.md should quote the worked examples from the vectors"


REQUIRED_DOC_VECTORS = (
    "statements.domains.statement_domain_hex",
    "statements.genesis.canonical",
    "statements.genesis.event_id",
    "statements.genesis.signature",
    "statements.enrol.canonical",
    "statements.harvest.canonical",
    "entries.entry_0.bytes",
    "entries.entry_2.leaf_hash",
    "merkle.root_3.root",
    "merkle.inclusion_1_3.proof",
    "merkle.consistency_2_3.proof",
    "checkpoint.size_3.note",
    "keys.log.vkey",
)


def test_protocol_md_quotes_the_required_examples() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    infos = {info for _line, info, _content in doc_blocks(text)}
    tags = {w[len("vector=") :] for info in infos for w in info.split() if w.startswith("vector=")}
    missing = [name for name in REQUIRED_DOC_VECTORS if name not in tags]
    assert not missing, f"protocol.md does not show {missing}"


def test_doc_block_parser_and_resolver(vectors: Vectors) -> None:
    text = "a\n```text vector=merkle.root_3.root\nabc\n```\n```abnf\nx = y\n```\n"
    assert doc_blocks(text) == [(2, "text vector=merkle.root_3.root", "abc"), (5, "abnf", "x = y")]
    assert resolve_vector(vectors, "merkle.inclusion_1_3.proof").count("\n") == 1
    assert resolve_vector(vectors, "checkpoint.size_3.note").endswith("=")
    with pytest.raises(AssertionError):
        resolve_vector(vectors, "merkle.no_such_case.root")
    with pytest.raises(AssertionError):
        resolve_vector(vectors, "nosuchfile.case.field")


# --------------------------------------------------------------------------- (d) mutations


def _flip_b64(text: str, at: int = 10) -> str:
    raw = bytearray(iv.b64decode(text))
    raw[at % len(raw)] ^= 0x01
    return iv.b64encode(bytes(raw))


def _flip_hex(text: str, at: int = 3) -> str:
    raw = bytearray(bytes.fromhex(text))
    raw[at % len(raw)] ^= 0x01
    return raw.hex()


def _flip_text(text: str, at: int) -> str:
    raw = bytearray(text.encode("utf-8"))
    raw[at % len(raw)] ^= 0x01
    return raw.decode("utf-8", errors="replace")


def _flip_note_signature(note: str) -> str:
    body, _, sig_line = note.rpartition("\n\u2014 ")
    name, _, encoded = sig_line.rstrip("\n").partition(" ")
    return f"{body}\n\u2014 {name} {_flip_b64(encoded, at=20)}\n"


def _flip_vkey_hash(vkey: str) -> str:
    name, key_hash, key = vkey.split("+", 2)
    return f"{name}+{_flip_hex(key_hash, at=0)}+{key}"


def _set(path: str, mutate: Callable[[Any], Any]) -> Callable[[Vectors], None]:
    group, case, *fields = path.split(".")

    def apply(vectors: Vectors) -> None:
        target: Any = vectors[group]["cases"][case]
        for field in fields[:-1]:
            target = target[int(field)] if isinstance(target, list) else target[field]
        last: Any = int(fields[-1]) if isinstance(target, list) else fields[-1]
        target[last] = mutate(target[last])

    return apply


MUTATIONS: dict[str, tuple[str, Callable[[Vectors], None]]] = {
    "genesis_signature_bit_flip": (
        "statements",
        _set("statements.genesis.signature", _flip_b64),
    ),
    "harvest_signature_bit_flip": (
        "statements",
        _set("statements.harvest.signature", lambda s: _flip_b64(s, at=63)),
    ),
    "request_signature_bit_flip": (
        "statements",
        _set("statements.rotation_request.signatures.new", _flip_b64),
    ),
    "statement_body_changed": (
        "statements",
        _set("statements.harvest.object.body.quantity.amount", lambda q: q + 1),
    ),
    "entry_signature_bit_flip": ("entries", _set("entries.entry_2.signature", _flip_b64)),
    "entry_bytes_bit_flip": ("entries", _set("entries.entry_1.bytes", lambda t: _flip_text(t, 40))),
    "entry_prev_bit_flip": ("entries", _set("entries.entry_3.prev", _flip_hex)),
    "entry_accepted_ms_plus_one": ("entries", _set("entries.entry_0.accepted_ms", lambda v: v + 1)),
    "leaf_hash_bit_flip": ("entries", _set("entries.entry_4.leaf_hash", _flip_hex)),
    "inclusion_proof_bit_flip": ("merkle", _set("merkle.inclusion_1_3.proof.0", _flip_hex)),
    "inclusion_index_plus_one": (
        "merkle",
        _set("merkle.inclusion_1_3.leaf_index", lambda i: i + 1),
    ),
    "inclusion_proof_truncated": ("merkle", _set("merkle.inclusion_5_6.proof", lambda p: p[:-1])),
    "consistency_proof_bit_flip": ("merkle", _set("merkle.consistency_2_3.proof.0", _flip_hex)),
    "consistency_proof_extra_hash": (
        "merkle",
        _set("merkle.consistency_3_6.proof", lambda p: [*p, p[0]]),
    ),
    "root_bit_flip": ("merkle", _set("merkle.root_3.root", _flip_hex)),
    "checkpoint_signature_bit_flip": (
        "checkpoint",
        _set("checkpoint.size_3.note", _flip_note_signature),
    ),
    "checkpoint_size_changed": (
        "checkpoint",
        _set("checkpoint.size_3.note", lambda n: n.replace("\n3\n", "\n4\n", 1)),
    ),
    "cosignature_bit_flip": (
        "checkpoint",
        _set("checkpoint.size_6_cosigned.note", _flip_note_signature),
    ),
    "vkey_key_hash_changed": ("keys", _set("keys.log.vkey", _flip_vkey_hash)),
    "canonical_output_changed": (
        "canonical",
        _set("canonical.utf16_key_order.canonical", lambda t: t.replace('"a":3,', "", 1)),
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutated_vectors_are_rejected(vectors: Vectors, mutation: str) -> None:
    group, mutate = MUTATIONS[mutation]
    mutated = copy.deepcopy(vectors)
    mutate(mutated)
    assert mutated != vectors, "the mutation changed nothing"
    with pytest.raises(iv.VerifyError):
        CHECKS[group](mutated)
    with pytest.raises(iv.VerifyError):
        check_all(mutated)


def test_unmutated_vectors_pass_every_check(vectors: Vectors) -> None:
    check_all(copy.deepcopy(vectors))


# --------------------------------------------------------------------------- cross-check

RFC6962_DIR = ROOT / "tests" / "vectors" / "rfc6962-merkle" / "testdata"


def _b64_list(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


@pytest.mark.parametrize(
    "path",
    sorted(RFC6962_DIR.rglob("*.json")),
    ids=lambda p: str(p.relative_to(RFC6962_DIR)),
)
def test_independent_merkle_agrees_with_transparency_dev_vectors(path: Path) -> None:
    """The independent RFC 9162 verifier gives transparency-dev/merkle's answers."""
    case = json.loads(path.read_text(encoding="utf-8"))
    if "leafIdx" in case:
        run: Callable[[], None] = lambda: iv.verify_inclusion(  # noqa: E731
            base64.b64decode(case["leafHash"] or ""),
            case["leafIdx"],
            case["treeSize"],
            _b64_list(case["proof"]),
            base64.b64decode(case["root"] or ""),
        )
    else:
        run = lambda: iv.verify_consistency(  # noqa: E731
            case["size1"],
            case["size2"],
            _b64_list(case["proof"]),
            base64.b64decode(case["root1"] or ""),
            base64.b64decode(case["root2"] or ""),
        )
    if case["wantErr"]:
        with pytest.raises(iv.VerifyError):
            run()
    else:
        run()


JCS_DIR = ROOT / "tests" / "vectors" / "rfc8785-jcs" / "testdata"


@pytest.mark.parametrize("path", sorted((JCS_DIR / "input").glob("*.json")), ids=lambda p: p.stem)
def test_independent_canonical_json_agrees_with_rfc8785_vectors(path: Path) -> None:
    """The independent encoder gives RFC 8785's published bytes; it refuses the float cases."""
    raw = path.read_bytes()
    expected = (JCS_DIR / "output" / path.name).read_bytes()
    try:
        value = iv.parse_json(raw)
    except iv.VerifyError:
        assert re.search(rb"\d[.eE]", raw), f"{path.name}: rejected although float-free"
        return
    assert iv.canonical_json(value) == expected
