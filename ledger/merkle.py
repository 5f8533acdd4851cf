"""RFC 9162 Merkle tree: which stored nodes a proof needs, how to build it, how to verify it.

This module owns the tree arithmetic of the log (RFC 9162 section 2.1), in the
style of transparency-dev/merkle:

* **Appending.** :func:`nodes_completed_by_append` and :func:`new_nodes_for_append`
  say which stored nodes a new leaf completes and compute their hashes.
* **Proving.** :func:`inclusion_proof_node_ids` and :func:`consistency_proof_node_ids`
  return a :class:`ProofPlan`: the ids of the stored nodes a proof needs. The
  caller fetches those hashes from its store and :meth:`ProofPlan.build`
  assembles the proof. A plan names O(log n) nodes; no leaf range is re-hashed.
* **Verifying.** :func:`verify_inclusion`, :func:`root_from_inclusion_proof` and
  :func:`verify_consistency` need only hashes. They return ``None`` or raise
  :class:`~ledger.errors.ProofError` (or its subclass
  :class:`~ledger.errors.RootMismatchError`).
* **Streaming.** :class:`CompactRange` recomputes the root of a log read leaf by
  leaf in O(log n) memory.

A *stored node* is a :data:`NodeId` ``(level, index)``: the root of the complete
subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``. Level 0 holds
leaf hashes. Only complete subtrees are stored; the hash of an incomplete
("ephemeral") subtree on the right border is always recomputed from the
complete subtrees that cover it.

This module deliberately does no I/O and knows nothing of entries, storage or
checkpoints: it hashes :class:`~ledger.hashing.Digest` values (leaf hashes come
from :func:`ledger.hashing.leaf_hash`), and the caller decides where node
hashes live and whether a root is signed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from ledger.errors import ProofError, RootMismatchError
from ledger.hashing import EMPTY_ROOT, HASH_SIZE, Digest, node_hash

__all__ = [
    "CompactRange",
    "NodeId",
    "ProofPlan",
    "consistency_proof_node_ids",
    "inclusion_proof_node_ids",
    "new_nodes_for_append",
    "nodes_completed_by_append",
    "root_from_inclusion_proof",
    "root_from_nodes",
    "root_node_ids",
    "subtree_node_ids",
    "verify_consistency",
    "verify_inclusion",
]

NodeId: TypeAlias = tuple[int, int]
"""``(level, index)``: complete subtree over leaves ``[index << level, (index+1) << level)``."""


# --------------------------------------------------------------------------- appending


def nodes_completed_by_append(leaf_index: int) -> list[NodeId]:
    """Parent nodes that become complete when leaf ``leaf_index`` is appended.

    Appending leaf ``i`` grows the tree to size ``i + 1``; the parent at level
    ``l >= 1`` completes exactly when ``2**l`` divides ``i + 1``.

    Args:
        leaf_index: index of the leaf being appended; requires ``leaf_index >= 0``.

    Returns:
        The completed node ids with ``level >= 1``, lowest level first
        (each one is the parent of the previous one).

    Raises:
        ValueError: ``leaf_index < 0``.
    """
    _require_non_negative("leaf_index", leaf_index)
    size = leaf_index + 1
    completed: list[NodeId] = []
    level = 1
    while size % (1 << level) == 0:
        completed.append((level, (size >> level) - 1))
        level += 1
    return completed


def new_nodes_for_append(
    leaf_index: int, leaf: Digest, lookup: Callable[[NodeId], Digest]
) -> dict[NodeId, Digest]:
    """Hashes of every node to store when ``leaf`` is appended at ``leaf_index``.

    Each completed parent ``(l, j)`` hashes its left child ``(l - 1, 2j)``,
    which was stored before this append, with its right child, computed here
    (RFC 9162 section 2.1.1: ``MTH = HASH(0x01 || left || right)``).

    Args:
        leaf_index: index of the new leaf; requires ``leaf_index >= 0`` and that
            leaves ``[0, leaf_index)`` are already stored.
        leaf: the leaf hash (``leaf_hash(entry_bytes)``), 32 bytes.
        lookup: returns the hash of an already stored node. It is only asked for
            left siblings. In a batch append, it must also see the nodes returned
            for earlier leaves of the same batch.

    Returns:
        The leaf node ``(0, leaf_index)`` and every parent it completes, mapped
        to their hashes.

    Raises:
        ValueError: ``leaf_index < 0`` or ``leaf`` is not 32 bytes.
    """
    _require_digest("leaf", leaf)
    new: dict[NodeId, Digest] = {(0, leaf_index): leaf}
    current = leaf
    for level, index in nodes_completed_by_append(leaf_index):
        current = node_hash(lookup((level - 1, 2 * index)), current)
        new[(level, index)] = current
    return new


# --------------------------------------------------------------------------- ranges and roots


def subtree_node_ids(begin: int, end: int) -> list[NodeId]:
    """Decompose ``[begin, end)`` into maximal complete aligned subtrees (a compact range).

    Greedily takes, at each position, the largest subtree that starts there
    (aligned) and fits in the range. Sizes first grow, then shrink; at most
    about ``2 * log2(end - begin)`` nodes.

    Args:
        begin: first leaf index; requires ``0 <= begin <= end``.
        end: one past the last leaf index.

    Returns:
        The node ids covering the range, left to right (empty if ``begin == end``).

    Raises:
        ValueError: ``begin < 0`` or ``begin > end``.
    """
    _require_non_negative("begin", begin)
    if begin > end:
        raise ValueError(f"a range needs begin <= end, got [{begin}, {end})")
    ids: list[NodeId] = []
    while begin < end:
        # Alignment bound: 2**level must divide begin (any level divides 0).
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        ids.append((level, begin >> level))
        begin += 1 << level
    return ids


def root_node_ids(tree_size: int) -> list[NodeId]:
    """Stored nodes whose hashes determine the root of a tree of ``tree_size`` leaves.

    One node per set bit of ``tree_size``, largest first: at most
    ``log2(tree_size) + 1`` ids.

    Args:
        tree_size: requires ``tree_size >= 0``.

    Returns:
        ``subtree_node_ids(0, tree_size)``.

    Raises:
        ValueError: ``tree_size < 0``.
    """
    _require_non_negative("tree_size", tree_size)
    return subtree_node_ids(0, tree_size)


def root_from_nodes(tree_size: int, hashes: Mapping[NodeId, Digest]) -> Digest:
    """Root hash (RFC 9162 section 2.1.1, MTH) of a tree from its stored nodes.

    Args:
        tree_size: requires ``tree_size >= 0``.
        hashes: must contain every id of ``root_node_ids(tree_size)``; other
            entries are ignored.

    Returns:
        :data:`~ledger.hashing.EMPTY_ROOT` for ``tree_size == 0``, else the root.

    Raises:
        ValueError: ``tree_size < 0``, or a needed hash is missing or not 32 bytes.
    """
    ids = root_node_ids(tree_size)
    if not ids:
        return EMPTY_ROOT
    return _fold_right([_fetch(hashes, node) for node in ids])


# --------------------------------------------------------------------------- proof plans


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofPlan:
    """Which stored nodes a proof needs, and how to combine them.

    A proof is a list of hashes. Each one is the Merkle tree hash (MTH) of a
    leaf range; the plan gives that range as a *part*: the node ids of its
    compact range, left to right. A complete subtree is a part of one id. A range
    on the right border of the tree (an ephemeral node) has several ids, whose
    hashes fold right to left: ``HASH(0x01 || h1 || HASH(0x01 || h2 || ...))``.

    Attributes:
        parts: one tuple of node ids per proof hash, in proof order (leaf to root).
    """

    parts: tuple[tuple[NodeId, ...], ...]

    def __post_init__(self) -> None:
        """Reject an empty part, which would describe no hash."""
        if any(not part for part in self.parts):
            raise ValueError("every proof part needs at least one node id")

    def node_ids(self) -> list[NodeId]:
        """The distinct node ids to fetch, in order of first use.

        Returns:
            The ids, each listed once.
        """
        return list(dict.fromkeys(node for part in self.parts for node in part))

    def build(self, hashes: Mapping[NodeId, Digest]) -> list[Digest]:
        """Assemble the proof from fetched node hashes.

        Args:
            hashes: must contain every id of :meth:`node_ids`; others are ignored.

        Returns:
            One hash per part, in proof order.

        Raises:
            ValueError: a needed hash is missing or not 32 bytes.
        """
        return [_fold_right([_fetch(hashes, node) for node in part]) for part in self.parts]


def inclusion_proof_node_ids(leaf_index: int, tree_size: int) -> ProofPlan:
    """Plan the inclusion proof of leaf ``leaf_index`` in a tree of ``tree_size`` leaves.

    Follows RFC 9162 section 2.1.3.1: ``PATH(m, D[n])`` is ``PATH(m, D[0:k]) :
    MTH(D[k:n])`` if ``m < k`` and ``PATH(m - k, D[k:n]) : MTH(D[0:k])``
    otherwise, with ``k`` the largest power of two smaller than ``n``. The plan
    walks that recursion over leaf ranges and turns each MTH into a part.

    Args:
        leaf_index: requires ``0 <= leaf_index < tree_size``.
        tree_size: the size of the tree the proof is for.

    Returns:
        The plan; its :meth:`ProofPlan.build` equals ``PATH(leaf_index, D[tree_size])``.

    Raises:
        ValueError: ``leaf_index < 0`` or ``leaf_index >= tree_size``.
    """
    _require_non_negative("leaf_index", leaf_index)
    if leaf_index >= tree_size:
        raise ValueError(f"leaf_index {leaf_index} is not below tree_size {tree_size}")
    ranges: list[tuple[int, int]] = []  # top-down; the proof lists them bottom-up
    begin, end = 0, tree_size
    while end - begin > 1:
        split = begin + _largest_power_of_two_below(end - begin)
        if leaf_index < split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((begin, split))
            begin = split
    return _plan_from_ranges(ranges)


def consistency_proof_node_ids(size1: int, size2: int) -> ProofPlan:
    """Plan the consistency proof between tree sizes ``size1`` and ``size2``.

    Follows RFC 9162 section 2.1.4.1: ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)``,
    where ``SUBPROOF(m, D[m], b)`` is empty if ``b`` and ``[MTH(D[m])]`` otherwise;
    for ``m < n``, with ``k`` the largest power of two smaller than ``n``, it is
    ``SUBPROOF(m, D[0:k], b) : MTH(D[k:n])`` if ``m <= k`` and
    ``SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])`` otherwise.

    Args:
        size1: the older size; requires ``0 <= size1 <= size2``.
        size2: the newer size.

    Returns:
        The plan; its :meth:`ProofPlan.build` equals ``PROOF(size1, D[size2])``.
        It is empty when ``size1 == size2`` and, since any tree extends the
        empty tree, when ``size1 == 0``.

    Raises:
        ValueError: ``size1 < 0`` or ``size1 > size2``.
    """
    _require_non_negative("size1", size1)
    if size1 > size2:
        raise ValueError(f"size1 {size1} is greater than size2 {size2}")
    if size1 == 0:
        return ProofPlan(parts=())
    ranges: list[tuple[int, int]] = []  # top-down; the proof lists them bottom-up
    begin, end = 0, size2
    whole_old_tree = True  # the b flag of SUBPROOF
    while size1 != end:
        split = begin + _largest_power_of_two_below(end - begin)
        if size1 <= split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((begin, split))
            begin = split
            whole_old_tree = False
    if not whole_old_tree:
        ranges.append((begin, end))
    return _plan_from_ranges(ranges)


# --------------------------------------------------------------------------- verification


def root_from_inclusion_proof(
    leaf: Digest, leaf_index: int, tree_size: int, proof: Sequence[bytes]
) -> Digest:
    """Recompute the root a leaf's inclusion proof commits to (RFC 9162 section 2.1.3.2).

    Equivalent to the RFC's ``fn``/``sn`` loop, split as transparency-dev/merkle
    does: the first ``inner`` hashes are siblings below the level where the
    paths to ``leaf_index`` and ``tree_size - 1`` part (left or right by the bits
    of ``leaf_index``); the remaining ``border`` hashes are left siblings on the
    right border. The proof length must be exactly ``inner + border``.

    Args:
        leaf: the leaf hash, 32 bytes.
        leaf_index: requires ``0 <= leaf_index < tree_size``.
        tree_size: the size of the tree the proof is for.
        proof: the audit path, leaf to root, each hash 32 bytes.

    Returns:
        The root hash the proof leads to.

    Raises:
        ProofError: the index is out of range, a hash is not 32 bytes, or the
            proof has the wrong length.
    """
    if leaf_index < 0 or leaf_index >= tree_size:
        raise ProofError(f"leaf_index {leaf_index} is out of range for tree_size {tree_size}")
    _check_proof_hash("leaf hash", leaf)
    _check_proof_hashes(proof)
    inner, border = _decompose_inclusion(leaf_index, tree_size)
    if len(proof) != inner + border:
        raise ProofError(
            f"inclusion proof has {len(proof)} hashes, want {inner + border} "
            f"for leaf_index {leaf_index} in tree_size {tree_size}"
        )
    root = _chain_inner(leaf, proof[:inner], leaf_index)
    return _chain_border(root, proof[inner:])


def verify_inclusion(
    leaf: Digest, leaf_index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is at ``leaf_index`` in the tree with root ``root`` (RFC 9162 2.1.3.2).

    Args:
        leaf: the leaf hash, 32 bytes.
        leaf_index: requires ``0 <= leaf_index < tree_size``.
        tree_size: the size of the tree ``root`` belongs to.
        proof: the audit path, leaf to root, each hash 32 bytes.
        root: the trusted root hash of that tree, 32 bytes.

    Raises:
        ProofError: malformed input (see :func:`root_from_inclusion_proof`, and
            ``root`` not 32 bytes).
        RootMismatchError: the proof leads to a different root.
    """
    _check_proof_hash("root hash", root)
    calculated = root_from_inclusion_proof(leaf, leaf_index, tree_size, proof)
    _check_match(root, calculated, f"inclusion proof for tree_size {tree_size}")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``(size2, root2)`` extends the tree ``(size1, root1)``.

    RFC 9162 section 2.1.4.2, with the length of the proof checked up front.
    The first hash (``root1`` itself when ``size1`` is a power of two) is the
    largest complete subtree ending at ``size1``; the rest are exactly the upper
    part of the inclusion proof of that subtree in the tree of ``size2``. Using
    only left siblings gives ``root1``; using all of them gives ``root2``.

    Edge cases:

    * ``size1 > size2`` fails.
    * ``size1 == 0``: any tree extends the empty tree, so the proof must be empty;
      ``root1`` must be :data:`~ledger.hashing.EMPTY_ROOT` (the only root of size
      0), and ``root2`` must be 32 bytes (equal to ``EMPTY_ROOT`` if ``size2 == 0``).
    * ``size1 == size2 > 0``: the proof must be empty and ``root1 == root2``.
      The roots are then compared as opaque bytes and need not be 32 bytes, as
      transparency-dev/merkle (and its vectors) do.

    Args:
        size1: the older tree size.
        size2: the newer tree size.
        proof: the consistency proof, each hash 32 bytes.
        root1: the root hash at ``size1``.
        root2: the root hash at ``size2``.

    Raises:
        ProofError: malformed input: a negative size, ``size1 > size2``, a hash
            that is not 32 bytes, or a proof of the wrong length.
        RootMismatchError: a recomputed root differs from ``root1`` or ``root2``.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes must be non-negative, got {size1} and {size2}")
    if size1 > size2:
        raise ProofError(f"size1 {size1} is greater than size2 {size2}")
    if size1 == 0:
        _verify_consistency_from_empty(size2, proof, root1, root2)
        return
    if size1 == size2:
        if proof:
            raise ProofError(
                f"consistency proof between equal sizes must be empty, got {len(proof)}"
            )
        _check_match(root2, root1, f"roots at equal tree_size {size1}")
        return
    _check_proof_hash("root1", root1)
    _check_proof_hash("root2", root2)
    _check_proof_hashes(proof)

    # The largest complete subtree ending at size1 is at level `shift`.
    shift = (size1 & -size1).bit_length() - 1
    inner, border = _decompose_inclusion(size1 - 1, size2)
    inner -= shift  # chaining starts at level `shift`; shift < inner since size1 < size2
    seed_given = size1 != 1 << shift  # otherwise the seed is root1, known to the verifier
    want = int(seed_given) + inner + border
    if len(proof) != want:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, want {want} "
            f"between sizes {size1} and {size2}"
        )
    seed = Digest(bytes(proof[0])) if seed_given else Digest(bytes(root1))
    path = proof[1:] if seed_given else proof
    index = (size1 - 1) >> shift

    calculated1 = _chain_border(_chain_inner_left_only(seed, path[:inner], index), path[inner:])
    _check_match(root1, calculated1, f"consistency proof at size1 {size1}")
    calculated2 = _chain_border(_chain_inner(seed, path[:inner], index), path[inner:])
    _check_match(root2, calculated2, f"consistency proof at size2 {size2}")


# --------------------------------------------------------------------------- streaming


class CompactRange:
    """Streaming root hasher over the leaves ``[0, size)``.

    Holds one hash per set bit of ``size``: the roots of ``root_node_ids(size)``,
    largest first, so memory is O(log n). Appending a leaf merges equal-sized
    subtrees like a binary counter. This is the one mutable type among the
    core values: it is an accumulator, meant for an auditor that replays a log
    and checks the root at every checkpoint size.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        """Start with the empty tree."""
        self._size = 0
        self._hashes: list[Digest] = []

    @classmethod
    def from_nodes(cls, size: int, hashes: Mapping[NodeId, Digest]) -> CompactRange:
        """Resume from the stored subtree roots of ``[0, size)``.

        Args:
            size: number of leaves already covered; requires ``size >= 0``.
            hashes: must contain every id of ``root_node_ids(size)``.

        Returns:
            A range equal to one that had ``size`` leaves appended.

        Raises:
            ValueError: ``size < 0``, or a needed hash is missing or not 32 bytes.
        """
        compact = cls()
        compact._hashes = [_fetch(hashes, node) for node in root_node_ids(size)]
        compact._size = size
        return compact

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: Digest) -> None:
        """Append one leaf hash.

        Args:
            leaf: the leaf hash, 32 bytes.

        Raises:
            ValueError: ``leaf`` is not 32 bytes.
        """
        _require_digest("leaf", leaf)
        current = leaf
        size = self._size
        while size & 1:  # each trailing one bit is a subtree the new one completes
            current = node_hash(self._hashes.pop(), current)
            size >>= 1
        self._hashes.append(current)
        self._size += 1

    def root(self) -> Digest:
        """Root hash of the leaves so far (RFC 9162 section 2.1.1).

        Returns:
            :data:`~ledger.hashing.EMPTY_ROOT` when no leaf was appended.
        """
        if not self._hashes:
            return EMPTY_ROOT
        return _fold_right(self._hashes)

    def to_nodes(self) -> dict[NodeId, Digest]:
        """The subtree roots held, keyed by node id (the inverse of :meth:`from_nodes`).

        Returns:
            ``root_node_ids(size)`` mapped to their hashes.
        """
        return dict(zip(root_node_ids(self._size), self._hashes, strict=True))


# --------------------------------------------------------------------------- helpers


def _largest_power_of_two_below(n: int) -> int:
    """The ``k`` of RFC 9162 section 2.1.1: largest power of two ``< n``; requires ``n >= 2``."""
    return 1 << ((n - 1).bit_length() - 1)


def _plan_from_ranges(top_down: list[tuple[int, int]]) -> ProofPlan:
    """Turn the MTH ranges of a proof, listed root first, into a leaf-first plan."""
    return ProofPlan(
        parts=tuple(tuple(subtree_node_ids(begin, end)) for begin, end in reversed(top_down))
    )


def _fold_right(hashes: Sequence[Digest]) -> Digest:
    """MTH of a right-border range from its compact range: fold right to left."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def _fetch(hashes: Mapping[NodeId, Digest], node: NodeId) -> Digest:
    """Look up a node hash that the caller was told to supply."""
    try:
        value = hashes[node]
    except KeyError:
        raise ValueError(f"missing hash for node {node}") from None
    _require_digest(f"hash of node {node}", value)
    return value


def _decompose_inclusion(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof length into ``(inner, border)`` parts.

    ``inner`` counts levels below the point where the paths to ``index`` and
    ``size - 1`` part; ``border`` counts left siblings above it on the right border.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _chain_inner(seed: Digest, proof: Sequence[bytes], index: int) -> Digest:
    """Hash up from ``seed`` with siblings on either side, by the bits of ``index``."""
    for level, sibling in enumerate(proof):
        seed = node_hash(sibling, seed) if (index >> level) & 1 else node_hash(seed, sibling)
    return seed


def _chain_inner_left_only(seed: Digest, proof: Sequence[bytes], index: int) -> Digest:
    """Like :func:`_chain_inner` but skip right siblings: the older tree's view."""
    for level, sibling in enumerate(proof):
        if (index >> level) & 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border(seed: Digest, proof: Sequence[bytes]) -> Digest:
    """Hash up the right border, where every sibling is on the left."""
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed


def _verify_consistency_from_empty(
    size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """The ``size1 == 0`` case of :func:`verify_consistency`."""
    if proof:
        raise ProofError(f"consistency proof from the empty tree must be empty, got {len(proof)}")
    _check_match(root1, EMPTY_ROOT, "root1 of the empty tree")
    if size2 == 0:
        _check_match(root2, EMPTY_ROOT, "root2 of the empty tree")
    else:
        _check_proof_hash("root2", root2)


def _check_match(expected: bytes, calculated: bytes, what: str) -> None:
    """Raise :class:`RootMismatchError` unless the two roots are equal."""
    if bytes(expected) != bytes(calculated):
        raise RootMismatchError(
            f"{what}: calculated {bytes(calculated).hex()} != expected {bytes(expected).hex()}",
            expected=bytes(expected),
            calculated=bytes(calculated),
        )


def _check_proof_hash(what: str, value: bytes) -> None:
    """Verification input from the network: a wrong length is a :class:`ProofError`."""
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    """Check that every proof hash is 32 bytes."""
    for position, value in enumerate(proof):
        _check_proof_hash(f"proof hash {position}", value)


def _require_digest(what: str, value: bytes) -> None:
    """Caller-supplied hashes (not network input): a wrong length is a ``ValueError``."""
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _require_non_negative(what: str, value: int) -> None:
    """Sizes and indexes are 0-based ints."""
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
