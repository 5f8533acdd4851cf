"""ledger.merkle against the transparency-dev/merkle golden proof vectors.

The vectors live in tests/vectors/rfc6962-merkle (copied unchanged from
transparency-dev/merkle; see its README.md for source, commit and licence).
Every happy path must verify, every mutation must raise ProofError, and each
happy-path proof must equal the one our stored-node builder produces for the
8-leaf reference tree behind the vectors.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import ProofError
from ledger.hashing import Digest, leaf_hash
from ledger.merkle import (
    NodeId,
    consistency_proof_node_ids,
    inclusion_proof_node_ids,
    new_nodes_for_append,
    root_from_nodes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rfc6962-merkle"
TESTDATA = VECTORS / "testdata"
INCLUSION_FILES = sorted((TESTDATA / "inclusion").rglob("*.json"))
CONSISTENCY_FILES = sorted((TESTDATA / "consistency").rglob("*.json"))

# The leaf data of upstream testonly/constants.go, as listed in the vectors' README.
REFERENCE_LEAF_DATA = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]

# Root hash by tree size, from the README table (recompute: sha256 MTH of
# leaf_hash(bytes.fromhex(d)) over the first `size` entries of REFERENCE_LEAF_DATA).
README_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _reference_store() -> dict[NodeId, Digest]:
    nodes: dict[NodeId, Digest] = {}
    for index, data in enumerate(REFERENCE_LEAF_DATA):
        nodes.update(new_nodes_for_append(index, leaf_hash(bytes.fromhex(data)), nodes.__getitem__))
    return nodes


REFERENCE_NODES = _reference_store()


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def proof_of(case: dict[str, Any]) -> list[bytes]:
    return [b64(item) for item in case["proof"] or []]  # upstream writes null for []


def case_id(path: Path) -> str:
    return path.relative_to(TESTDATA).as_posix()


def test_all_vectors_are_found():
    # 196 = the inclusion/** and consistency/** files of upstream testdata (subtree* not copied).
    assert len(INCLUSION_FILES) + len(CONSISTENCY_FILES) == 196
    want_err = [load(path)["wantErr"] for path in INCLUSION_FILES + CONSISTENCY_FILES]
    # Happy: 5 + 1 single-entry inclusion, 5 + 1 additional consistency.
    assert want_err.count(False) == 12
    assert want_err.count(True) == 184
    assert len(INCLUSION_FILES) == 98
    assert len(CONSISTENCY_FILES) == 98


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=case_id)
def test_inclusion_vector(path):
    case = load(path)
    args = (
        Digest(b64(case["leafHash"])),
        case["leafIdx"],
        case["treeSize"],
        proof_of(case),
        b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=case_id)
def test_consistency_vector(path):
    case = load(path)
    args = (
        case["size1"],
        case["size2"],
        proof_of(case),
        b64(case["root1"]),
        b64(case["root2"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_reference_tree_roots_match_the_readme():
    for size, root_hex in enumerate(README_ROOTS):
        assert root_from_nodes(size, REFERENCE_NODES).hex() == root_hex


HAPPY_INCLUSION = [p for p in INCLUSION_FILES if p.name == "happy-path.json"]
HAPPY_CONSISTENCY = [p for p in CONSISTENCY_FILES if p.name == "happy-path.json"]


def test_happy_paths_are_found():
    assert len(HAPPY_INCLUSION) == 5
    assert len(HAPPY_CONSISTENCY) == 5


@pytest.mark.parametrize("path", HAPPY_INCLUSION, ids=case_id)
def test_inclusion_happy_path_equals_our_stored_node_proof(path):
    case = load(path)
    plan = inclusion_proof_node_ids(case["leafIdx"], case["treeSize"])
    assert plan.build(REFERENCE_NODES) == proof_of(case)
    assert root_from_nodes(case["treeSize"], REFERENCE_NODES) == b64(case["root"])
    assert REFERENCE_NODES[(0, case["leafIdx"])] == b64(case["leafHash"])


@pytest.mark.parametrize("path", HAPPY_CONSISTENCY, ids=case_id)
def test_consistency_happy_path_equals_our_stored_node_proof(path):
    case = load(path)
    plan = consistency_proof_node_ids(case["size1"], case["size2"])
    assert plan.build(REFERENCE_NODES) == proof_of(case)
    assert root_from_nodes(case["size1"], REFERENCE_NODES) == b64(case["root1"])
    assert root_from_nodes(case["size2"], REFERENCE_NODES) == b64(case["root2"])
