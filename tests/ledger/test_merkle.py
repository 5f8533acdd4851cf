"""Tests for ledger.merkle against the naive RFC 9162 reference in merkle_reference.

Proofs are built the way the service builds them: from a store of nodes filled
by new_nodes_for_append, through a ProofPlan. Sizes up to 64 are checked
exhaustively; larger sizes (up to 5000) are sampled by Hypothesis.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections import ChainMap
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import ProofError, RootMismatchError
from ledger.hashing import EMPTY_ROOT, Digest, leaf_hash, node_hash
from ledger.merkle import (
    CompactRange,
    NodeId,
    ProofPlan,
    consistency_proof_node_ids,
    inclusion_proof_node_ids,
    new_nodes_for_append,
    nodes_completed_by_append,
    root_from_inclusion_proof,
    root_from_nodes,
    root_node_ids,
    subtree_node_ids,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger import merkle_reference as ref

SMALL = 64
BIG = 5000

# Leaf i is the leaf hash of i as 4 big-endian bytes: arbitrary but fixed.
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(BIG)]
SOME_HASH = Digest(bytes(range(32)))


class MemoryStore:
    """The smallest node store: filled only through new_nodes_for_append."""

    def __init__(self) -> None:
        self.nodes: dict[NodeId, Digest] = {}
        self.size = 0
        self.lookups: list[NodeId] = []

    def lookup(self, node: NodeId) -> Digest:
        self.lookups.append(node)
        return self.nodes[node]

    def append(self, leaf: Digest) -> None:
        self.nodes.update(new_nodes_for_append(self.size, leaf, self.lookup))
        self.size += 1

    def fetch(self, plan: ProofPlan) -> dict[NodeId, Digest]:
        """What a service does: fetch exactly the ids the plan names."""
        return {node: self.nodes[node] for node in plan.node_ids()}


@functools.cache
def store_of(size: int) -> MemoryStore:
    store = MemoryStore()
    for leaf in LEAVES[:size]:
        store.append(leaf)
    return store


@functools.cache
def ref_root(size: int) -> Digest:
    return ref.mth(LEAVES[:size])


def complete_node_ids(size: int) -> set[NodeId]:
    """Every complete subtree of [0, size), straight from the definition."""
    return {
        (level, index)
        for level in range(size.bit_length())
        for index in range(size >> level)
        if (index + 1) << level <= size
    }


def max_fetch(size: int) -> int:
    """The O(log n) bound on node ids a proof may fetch: 2 * ceil(log2 n) + 2."""
    return 2 * (size - 1).bit_length() + 2


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def proof_built_from_store(plan: ProofPlan, store: MemoryStore, size: int) -> list[Digest]:
    ids = plan.node_ids()
    assert len(ids) <= max_fetch(size)
    assert len(set(ids)) == len(ids)
    # Only complete subtrees of the tree being proven exist in a store of that size.
    assert all((index + 1) << level <= size for level, index in ids)
    return plan.build(store.fetch(plan))


# ----------------------------------------------------------------------------- appending


@pytest.mark.parametrize(
    ("leaf_index", "expected"),
    [
        (0, []),
        (1, [(1, 0)]),
        (2, []),
        (3, [(1, 1), (2, 0)]),
        (5, [(1, 2)]),
        (7, [(1, 3), (2, 1), (3, 0)]),
        (11, [(1, 5), (2, 2)]),
        (2**20 - 1, [(level, (2**20 >> level) - 1) for level in range(1, 21)]),
    ],
)
def test_nodes_completed_by_append(leaf_index, expected):
    assert nodes_completed_by_append(leaf_index) == expected


def test_nodes_completed_by_append_rejects_negative_index():
    with pytest.raises(ValueError, match="leaf_index"):
        nodes_completed_by_append(-1)


def test_store_holds_exactly_the_complete_subtrees_at_every_size():
    store = MemoryStore()
    for size in range(SMALL + 1):
        assert set(store.nodes) == complete_node_ids(size)
        if size < SMALL:
            store.append(LEAVES[size])


def test_stored_node_hashes_are_subtree_roots():
    store = store_of(SMALL)
    for (level, index), value in store.nodes.items():
        assert value == ref.mth(LEAVES[index << level : (index + 1) << level])


def test_append_looks_up_only_stored_left_siblings():
    store = MemoryStore()
    for leaf_index in range(SMALL):
        store.lookups.clear()
        before = set(store.nodes)
        store.append(LEAVES[leaf_index])
        expected = [
            (level - 1, 2 * index) for level, index in nodes_completed_by_append(leaf_index)
        ]
        assert store.lookups == expected
        assert set(store.lookups) <= before


def test_new_nodes_for_append_rejects_bad_leaf():
    with pytest.raises(ValueError, match="32 bytes"):
        new_nodes_for_append(0, Digest(b"short"), lambda node: SOME_HASH)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=12))
def test_batch_append_with_overlay_lookup_equals_one_by_one(batch_sizes):
    committed: dict[NodeId, Digest] = {}
    size = 0
    for batch_size in batch_sizes:
        batch: dict[NodeId, Digest] = {}
        view = ChainMap(batch, committed)  # the lookup sees this batch's earlier nodes
        for leaf in LEAVES[size : size + batch_size]:
            batch.update(new_nodes_for_append(size, leaf, view.__getitem__))
            size += 1
        committed.update(batch)  # commit the batch at once
    assert committed == store_of(size).nodes


# ----------------------------------------------------------------------------- ranges and roots


@pytest.mark.parametrize(
    ("begin", "end", "expected"),
    [
        (0, 0, []),
        (5, 5, []),
        (0, 1, [(0, 0)]),
        (0, 8, [(3, 0)]),
        (0, 7, [(2, 0), (1, 2), (0, 6)]),
        (3, 13, [(0, 3), (2, 1), (2, 2), (0, 12)]),
        (1, 16, [(0, 1), (1, 1), (2, 1), (3, 1)]),
        (4, 6, [(1, 2)]),
    ],
)
def test_subtree_node_ids_examples(begin, end, expected):
    assert subtree_node_ids(begin, end) == expected


def test_subtree_node_ids_is_the_maximal_aligned_cover_of_every_small_range():
    for begin in range(SMALL + 1):
        for end in range(begin, SMALL + 1):
            ids = subtree_node_ids(begin, end)
            position = begin
            for level, index in ids:
                assert index << level == position  # contiguous and aligned
                position += 1 << level
            assert position == end
            # Maximal: no two neighbours are the two halves of one subtree.
            for (level1, index1), (level2, index2) in itertools.pairwise(ids):
                assert not (level1 == level2 and index1 % 2 == 0 and index2 == index1 + 1)
            assert len(ids) <= max_fetch(end - begin)


@pytest.mark.parametrize(("begin", "end"), [(-1, 3), (4, 3)])
def test_subtree_node_ids_rejects_bad_ranges(begin, end):
    with pytest.raises(ValueError, match=r"must be >= 0|begin <= end"):
        subtree_node_ids(begin, end)


@pytest.mark.parametrize("size", range(SMALL + 1))
def test_root_from_nodes_equals_reference_for_small_sizes(size):
    ids = root_node_ids(size)
    assert len(ids) == size.bit_count()
    assert root_from_nodes(size, store_of(SMALL).nodes) == ref_root(size)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=SMALL + 1, max_value=BIG))
def test_root_from_nodes_equals_reference_for_large_sizes(size):
    hashes = {node: store_of(BIG).nodes[node] for node in root_node_ids(size)}
    assert root_from_nodes(size, hashes) == ref.mth(LEAVES[:size])


def test_root_from_nodes_of_empty_tree_is_empty_root():
    assert root_node_ids(0) == []
    assert root_from_nodes(0, {}) == EMPTY_ROOT


def test_root_from_nodes_rejects_missing_or_bad_hashes():
    with pytest.raises(ValueError, match="missing hash"):
        root_from_nodes(3, {(1, 0): SOME_HASH})
    with pytest.raises(ValueError, match="32 bytes"):
        root_from_nodes(1, {(0, 0): Digest(b"x")})
    with pytest.raises(ValueError, match="must be >= 0"):
        root_node_ids(-1)


# ----------------------------------------------------------------------------- proof plans


def test_proof_plan_is_frozen_kw_only_and_validated():
    plan = ProofPlan(parts=(((0, 1),), ((1, 1), (0, 4))))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.parts = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        ProofPlan(())  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="at least one node id"):
        ProofPlan(parts=((),))


def test_proof_plan_build_folds_each_part_right_to_left():
    a, b, c = (Digest(bytes([i]) * 32) for i in (1, 2, 3))
    plan = ProofPlan(parts=(((0, 0),), ((2, 1), (1, 4), (0, 10))))
    hashes = {(0, 0): a, (2, 1): b, (1, 4): c, (0, 10): a}
    assert plan.node_ids() == [(0, 0), (2, 1), (1, 4), (0, 10)]
    assert plan.build(hashes) == [a, node_hash(b, node_hash(c, a))]


def test_proof_plan_node_ids_are_distinct():
    plan = ProofPlan(parts=(((0, 0),), ((0, 0), (0, 1))))
    assert plan.node_ids() == [(0, 0), (0, 1)]


def test_proof_plan_build_rejects_missing_hash():
    with pytest.raises(ValueError, match="missing hash for node"):
        inclusion_proof_node_ids(0, 2).build({})


@pytest.mark.parametrize(("leaf_index", "tree_size"), [(-1, 4), (4, 4), (0, 0)])
def test_inclusion_plan_rejects_bad_arguments(leaf_index, tree_size):
    with pytest.raises(ValueError, match="leaf_index"):
        inclusion_proof_node_ids(leaf_index, tree_size)


@pytest.mark.parametrize(("size1", "size2"), [(-1, 4), (5, 4)])
def test_consistency_plan_rejects_bad_arguments(size1, size2):
    with pytest.raises(ValueError, match="size1"):
        consistency_proof_node_ids(size1, size2)


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 9), (9, 9)])
def test_consistency_plan_is_empty_for_trivial_sizes(size1, size2):
    plan = consistency_proof_node_ids(size1, size2)
    assert plan.parts == ()
    assert plan.build({}) == []


def test_plans_name_stored_nodes_not_leaves_of_the_whole_tree():
    # Leaf 0 of a 4096-leaf tree: 12 siblings, one per level.
    plan = inclusion_proof_node_ids(0, 4096)
    assert plan.node_ids() == [(level, 1) for level in range(12)]
    # A right-border sibling is one part made of the compact range [4096, 4103).
    plan = inclusion_proof_node_ids(0, 4103)
    assert plan.parts[-1] == ((2, 1024), (1, 2050), (0, 4102))


# ----------------------------------------------------------------------------- inclusion


def inclusion_mutations(
    leaf: bytes, leaf_index: int, tree_size: int, proof: list[Digest], root: bytes
) -> Iterator[tuple[str, tuple[Any, ...], bool]]:
    """(description, args for verify_inclusion, must always fail?)."""
    n = tree_size
    yield "leaf_index - 1", (leaf, leaf_index - 1, n, proof, root), True
    yield "leaf_index + 1", (leaf, leaf_index + 1, n, proof, root), True
    yield "leaf_index ^ 2", (leaf, leaf_index ^ 2, n, proof, root), True
    yield "tree_size * 2", (leaf, leaf_index, 2 * n, proof, root), True
    yield "tree_size // 2", (leaf, leaf_index, n // 2, proof, root), True
    # RFC 9162 proofs bind tree_size only through their shape (the signed checkpoint binds
    # it for real): n +- 1 fails exactly when the shape of the path changes.
    yield "tree_size - 1", (leaf, leaf_index, n - 1, proof, root), False
    yield "tree_size + 1", (leaf, leaf_index, n + 1, proof, root), False
    yield "wrong leaf", (flip_bit(leaf, 0), leaf_index, n, proof, root), True
    yield "root bit flip", (leaf, leaf_index, n, proof, flip_bit(root, 255)), True
    yield "empty root", (leaf, leaf_index, n, proof, EMPTY_ROOT), True
    yield "short root", (leaf, leaf_index, n, proof, root[:31]), True
    yield "trailing root", (leaf, leaf_index, n, [*proof, root], root), True
    yield "trailing garbage", (leaf, leaf_index, n, [*proof, b""], root), True
    yield "preceding root", (leaf, leaf_index, n, [root, *proof], root), True
    if proof:
        yield "truncated proof", (leaf, leaf_index, n, proof[:-1], root), True
        yield "dropped first", (leaf, leaf_index, n, proof[1:], root), True
        yield "inserted hash", (leaf, leaf_index, n, [proof[0], SOME_HASH, *proof[1:]], root), True
    for position in range(len(proof)):
        bit = (7 * leaf_index + 3 * n + position) % 256  # spread bits across positions
        wrong: list[bytes] = list(proof)
        wrong[position] = flip_bit(wrong[position], bit)
        yield f"proof[{position}] bit {bit}", (leaf, leaf_index, n, wrong, root), True


def inclusion_shape_kept(
    leaf_index: int, tree_size: int, mutated_index: int, mutated_size: int
) -> bool:
    if not 0 <= mutated_index < mutated_size:
        return False
    return ref.path_shape(mutated_index, mutated_size) == ref.path_shape(leaf_index, tree_size)


def check_inclusion(store: MemoryStore, leaf_index: int, tree_size: int) -> None:
    root = ref_root(tree_size)
    leaf = LEAVES[leaf_index]
    proof = proof_built_from_store(
        inclusion_proof_node_ids(leaf_index, tree_size), store, tree_size
    )
    assert proof == ref.path(leaf_index, LEAVES[:tree_size])
    verify_inclusion(leaf, leaf_index, tree_size, proof, root)
    assert root_from_inclusion_proof(leaf, leaf_index, tree_size, proof) == root

    for desc, args, always_fails in inclusion_mutations(leaf, leaf_index, tree_size, proof, root):
        kept = (args[1], args[2]) != (leaf_index, tree_size) and inclusion_shape_kept(
            leaf_index, tree_size, args[1], args[2]
        )
        assert not (always_fails and kept), desc
        if kept:
            verify_inclusion(*args)  # same shape, same arithmetic, same root
        else:
            with pytest.raises(ProofError):
                verify_inclusion(*args)
    for other_size in (tree_size - 1, tree_size + 1):
        if leaf_index < other_size <= store.size:
            # Against the real root of a neighbouring size, the proof always fails.
            with pytest.raises(ProofError):
                verify_inclusion(
                    leaf, leaf_index, other_size, proof, root_from_nodes(other_size, store.nodes)
                )


@pytest.mark.parametrize("tree_size", range(1, SMALL + 1))
def test_every_inclusion_proof_up_to_64(tree_size):
    store = store_of(SMALL)
    for leaf_index in range(tree_size):
        check_inclusion(store, leaf_index, tree_size)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_sampled_inclusion_proofs_up_to_5000(data):
    tree_size = data.draw(st.integers(min_value=SMALL + 1, max_value=BIG), label="tree_size")
    leaf_index = data.draw(st.integers(min_value=0, max_value=tree_size - 1), label="leaf_index")
    check_inclusion(store_of(BIG), leaf_index, tree_size)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_bit_flip_of_an_inclusion_proof_fails(data):
    tree_size = data.draw(st.integers(min_value=2, max_value=BIG), label="tree_size")
    leaf_index = data.draw(st.integers(min_value=0, max_value=tree_size - 1), label="leaf_index")
    store = store_of(BIG)
    proof = inclusion_proof_node_ids(leaf_index, tree_size).build(store.nodes)
    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="position")
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    proof[position] = Digest(flip_bit(proof[position], bit))
    root = root_from_nodes(tree_size, store.nodes)
    with pytest.raises(RootMismatchError):
        verify_inclusion(LEAVES[leaf_index], leaf_index, tree_size, proof, root)


@pytest.mark.parametrize(
    ("leaf", "leaf_index", "tree_size", "proof", "root", "match"),
    [
        (LEAVES[0], 0, 0, [], EMPTY_ROOT, "out of range"),
        (LEAVES[0], -1, 4, [], EMPTY_ROOT, "out of range"),
        (LEAVES[4], 4, 4, [], EMPTY_ROOT, "out of range"),
        (LEAVES[0], 0, 1, [], b"", "root hash must be 32 bytes"),
        (b"", 0, 1, [], LEAVES[0], "leaf hash must be 32 bytes"),
        (LEAVES[0], 0, 2, [b"\x00" * 33], LEAVES[0], "proof hash 0 must be 32 bytes"),
        (LEAVES[0], 0, 2, [], LEAVES[0], "has 0 hashes, want 1"),
        (LEAVES[0], 0, 1, [LEAVES[1]], LEAVES[0], "has 1 hashes, want 0"),
    ],
    ids=[
        "empty tree",
        "negative index",
        "index equals size",
        "bad root length",
        "bad leaf length",
        "bad proof hash length",
        "proof too short",
        "proof too long",
    ],
)
def test_verify_inclusion_rejects_malformed_input(leaf, leaf_index, tree_size, proof, root, match):
    with pytest.raises(ProofError, match=match) as info:
        verify_inclusion(leaf, leaf_index, tree_size, proof, root)
    assert not isinstance(info.value, RootMismatchError)


def test_verify_inclusion_reports_expected_and_calculated_roots():
    store = store_of(8)
    proof = inclusion_proof_node_ids(2, 8).build(store.nodes)
    with pytest.raises(RootMismatchError) as info:
        verify_inclusion(LEAVES[2], 2, 8, proof, SOME_HASH)
    assert info.value.expected == SOME_HASH
    assert info.value.calculated == root_from_nodes(8, store.nodes)


def test_single_leaf_tree_root_is_the_leaf():
    verify_inclusion(LEAVES[7], 0, 1, [], LEAVES[7])
    with pytest.raises(RootMismatchError):
        verify_inclusion(LEAVES[7], 0, 1, [], LEAVES[8])


# ----------------------------------------------------------------------------- consistency


def consistency_mutations(
    size1: int, size2: int, proof: list[Digest], root1: bytes, root2: bytes
) -> Iterator[tuple[str, tuple[Any, ...], bool]]:
    """(description, args for verify_consistency, must always fail?)."""
    m, n = size1, size2
    # As for inclusion, sizes are bound only through the proof's shape: +-1 may keep it.
    yield "size1 - 1", (m - 1, n, proof, root1, root2), False
    yield "size1 + 1", (m + 1, n, proof, root1, root2), False
    yield "size1 ^ 2", (m ^ 2, n, proof, root1, root2), False
    yield "size2 - 1", (m, n - 1, proof, root1, root2), False
    yield "size2 + 1", (m, n + 1, proof, root1, root2), False
    yield "size2 * 2", (m, 2 * n, proof, root1, root2), True
    yield "size2 // 2", (m, n // 2, proof, root1, root2), True
    yield "root1 bit flip", (m, n, proof, flip_bit(root1, 0), root2), True
    yield "root2 bit flip", (m, n, proof, root1, flip_bit(root2, 255)), True
    yield "swapped roots", (m, n, proof, root2, root1), True
    yield "wrong root1 length", (m, n, proof, b"WrongRoot", root2), True
    yield "empty proof", (m, n, [], root1, root2), True
    yield "trailing garbage", (m, n, [*proof, b""], root1, root2), True
    yield "trailing root2", (m, n, [*proof, root2], root1, root2), True
    yield "preceding root1", (m, n, [root1, *proof], root1, root2), True
    yield "preceding proof[0]", (m, n, [proof[0], *proof], root1, root2), True
    yield "truncated proof", (m, n, proof[:-1], root1, root2), True
    yield "dropped first", (m, n, proof[1:], root1, root2), True
    for position in range(len(proof)):
        bit = (5 * m + 3 * n + position) % 256
        wrong: list[bytes] = list(proof)
        wrong[position] = flip_bit(wrong[position], bit)
        yield f"proof[{position}] bit {bit}", (m, n, wrong, root1, root2), True


def consistency_shape_kept(size1: int, size2: int, mutated1: int, mutated2: int) -> bool:
    if not 0 < mutated1 < mutated2:
        return False
    return ref.proof_shape(mutated1, mutated2) == ref.proof_shape(size1, size2)


def check_consistency(store: MemoryStore, size1: int, size2: int) -> None:
    root1 = ref_root(size1)
    root2 = ref_root(size2)
    proof = proof_built_from_store(consistency_proof_node_ids(size1, size2), store, size2)
    assert proof == ref.proof(size1, LEAVES[:size2])
    verify_consistency(size1, size2, proof, root1, root2)
    if size1 == size2:
        assert proof == []
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, [root1], root1, root2)
        with pytest.raises(RootMismatchError):
            verify_consistency(size1, size2, [], root1, flip_bit(root2, 0))
        return

    for desc, args, always_fails in consistency_mutations(size1, size2, proof, root1, root2):
        kept = (args[0], args[1]) != (size1, size2) and consistency_shape_kept(
            size1, size2, args[0], args[1]
        )
        assert not (always_fails and kept), desc
        if kept:
            verify_consistency(*args)  # same shape, same arithmetic, same roots
        else:
            with pytest.raises(ProofError):
                verify_consistency(*args)
    for other_size in (size2 - 1, size2 + 1):
        if size1 < other_size <= store.size:
            # Against the real root of a neighbouring size, the proof always fails.
            other_root = root_from_nodes(other_size, store.nodes)
            with pytest.raises(ProofError):
                verify_consistency(size1, other_size, proof, root1, other_root)


@pytest.mark.parametrize("size2", range(1, SMALL + 1))
def test_every_consistency_proof_up_to_64(size2):
    store = store_of(SMALL)
    for size1 in range(1, size2 + 1):
        check_consistency(store, size1, size2)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_sampled_consistency_proofs_up_to_5000(data):
    size2 = data.draw(st.integers(min_value=SMALL + 1, max_value=BIG), label="size2")
    size1 = data.draw(st.integers(min_value=1, max_value=size2), label="size1")
    check_consistency(store_of(BIG), size1, size2)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_bit_flip_of_a_consistency_proof_fails(data):
    size2 = data.draw(st.integers(min_value=2, max_value=BIG), label="size2")
    size1 = data.draw(st.integers(min_value=1, max_value=size2 - 1), label="size1")
    store = store_of(BIG)
    proof = consistency_proof_node_ids(size1, size2).build(store.nodes)
    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="position")
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    proof[position] = Digest(flip_bit(proof[position], bit))
    root1 = root_from_nodes(size1, store.nodes)
    root2 = root_from_nodes(size2, store.nodes)
    with pytest.raises(RootMismatchError):
        verify_consistency(size1, size2, proof, root1, root2)


@pytest.mark.parametrize("size2", [0, 1, 2, 7, 64])
def test_consistency_from_the_empty_tree(size2):
    root2 = root_from_nodes(size2, store_of(SMALL).nodes)
    verify_consistency(0, size2, [], EMPTY_ROOT, root2)
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(0, size2, [EMPTY_ROOT], EMPTY_ROOT, root2)
    with pytest.raises(RootMismatchError):
        verify_consistency(0, size2, [], SOME_HASH, root2)


def test_consistency_from_the_empty_tree_checks_root2():
    with pytest.raises(RootMismatchError):
        verify_consistency(0, 0, [], EMPTY_ROOT, SOME_HASH)
    with pytest.raises(ProofError, match="root2 must be 32 bytes"):
        verify_consistency(0, 5, [], EMPTY_ROOT, b"short")


@pytest.mark.parametrize(
    ("size1", "size2", "proof", "root1", "root2", "match"),
    [
        (-1, 4, [], EMPTY_ROOT, EMPTY_ROOT, "non-negative"),
        (1, -4, [], EMPTY_ROOT, EMPTY_ROOT, "non-negative"),
        (5, 4, [], SOME_HASH, SOME_HASH, "greater than size2"),
        (4, 4, [SOME_HASH], SOME_HASH, SOME_HASH, "equal sizes must be empty"),
        (3, 4, [SOME_HASH, SOME_HASH], b"x", SOME_HASH, "root1 must be 32 bytes"),
        (3, 4, [SOME_HASH, SOME_HASH], SOME_HASH, b"x", "root2 must be 32 bytes"),
        (3, 4, [SOME_HASH, b"x"], SOME_HASH, SOME_HASH, "proof hash 1 must be 32 bytes"),
        (3, 4, [], SOME_HASH, SOME_HASH, "has 0 hashes, want 3"),
        (4, 8, [SOME_HASH, SOME_HASH], SOME_HASH, SOME_HASH, "has 2 hashes, want 1"),
    ],
    ids=[
        "negative size1",
        "negative size2",
        "size1 greater than size2",
        "equal sizes with proof",
        "bad root1 length",
        "bad root2 length",
        "bad proof hash length",
        "empty proof",
        "proof too long",
    ],
)
def test_verify_consistency_rejects_malformed_input(size1, size2, proof, root1, root2, match):
    with pytest.raises(ProofError, match=match) as info:
        verify_consistency(size1, size2, proof, root1, root2)
    assert not isinstance(info.value, RootMismatchError)


def test_verify_consistency_reports_which_root_mismatched():
    store = store_of(SMALL)
    proof = consistency_proof_node_ids(6, 13).build(store.nodes)
    root1 = root_from_nodes(6, store.nodes)
    root2 = root_from_nodes(13, store.nodes)
    with pytest.raises(RootMismatchError) as info:
        verify_consistency(6, 13, proof, SOME_HASH, root2)
    assert (info.value.expected, info.value.calculated) == (SOME_HASH, root1)
    with pytest.raises(RootMismatchError) as info:
        verify_consistency(6, 13, proof, root1, SOME_HASH)
    assert (info.value.expected, info.value.calculated) == (SOME_HASH, root2)


def test_equal_sizes_compare_roots_as_bytes():
    verify_consistency(3, 3, [], SOME_HASH, SOME_HASH)
    with pytest.raises(RootMismatchError):
        verify_consistency(3, 3, [], SOME_HASH, EMPTY_ROOT)


# ----------------------------------------------------------------------------- compact range


def test_compact_range_root_equals_reference_at_every_small_size():
    compact = CompactRange()
    for size in range(300 + 1):
        assert compact.size == size
        assert compact.root() == ref_root(size)
        assert len(compact.to_nodes()) == size.bit_count()  # O(log n) memory
        if size < 300:
            compact.append(LEAVES[size])


def test_compact_range_root_equals_stored_root_at_every_size_up_to_5000():
    store = store_of(BIG)
    compact = CompactRange()
    for size in range(BIG):
        compact.append(LEAVES[size])
        assert compact.root() == root_from_nodes(size + 1, store.nodes)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=BIG))
def test_compact_range_root_equals_reference_for_sampled_sizes(size):
    compact = CompactRange()
    for leaf in LEAVES[:size]:
        compact.append(leaf)
    assert compact.root() == ref.mth(LEAVES[:size])


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=BIG - 100), st.integers(min_value=0, max_value=100))
def test_compact_range_resumes_from_stored_nodes(size, more):
    store = store_of(BIG)
    compact = CompactRange.from_nodes(size, store.nodes)
    assert compact.size == size
    assert compact.to_nodes() == {node: store.nodes[node] for node in root_node_ids(size)}
    for leaf in LEAVES[size : size + more]:
        compact.append(leaf)
    assert compact.size == size + more
    assert compact.root() == root_from_nodes(size + more, store.nodes)


def test_empty_compact_range():
    assert CompactRange().root() == EMPTY_ROOT
    assert CompactRange().size == 0
    assert CompactRange.from_nodes(0, {}).root() == EMPTY_ROOT


def test_compact_range_rejects_bad_input():
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(Digest(b"short"))
    with pytest.raises(ValueError, match="missing hash"):
        CompactRange.from_nodes(3, {(1, 0): SOME_HASH})
    with pytest.raises(ValueError, match="must be >= 0"):
        CompactRange.from_nodes(-1, {})


def test_public_api_is_sorted_and_complete():
    assert merkle.__all__ == sorted(merkle.__all__)
    public = {name for name in vars(merkle) if not name.startswith("_")}
    imported = {
        "annotations",
        "Callable",
        "Mapping",
        "Sequence",
        "dataclass",
        "TypeAlias",
        "ProofError",
        "RootMismatchError",
        "EMPTY_ROOT",
        "HASH_SIZE",
        "Digest",
        "node_hash",
    }
    assert set(merkle.__all__) == public - imported
