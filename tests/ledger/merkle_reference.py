"""Naive recursive RFC 9162 Merkle tree over a list of leaf hashes, for tests only.

Transcribed from RFC 9162 section 2.1.1 (MTH), 2.1.3.1 (PATH) and 2.1.4.1
(PROOF/SUBPROOF), with no cleverness: every call re-hashes the leaves it covers,
so it is O(n) per proof. ``leaves`` are already leaf hashes (``leaf_hash(d)``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.hashing import EMPTY_ROOT, Digest, node_hash


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[Digest]) -> Digest:
    """MTH(D[n]) of RFC 9162 section 2.1.1."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = largest_power_of_two_below(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: Sequence[Digest]) -> list[Digest]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1; requires 0 <= m < n."""
    n = len(leaves)
    assert 0 <= m < n
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: Sequence[Digest], b: bool) -> list[Digest]:
    """SUBPROOF(m, D[n], b) of RFC 9162 section 2.1.4.1; requires 0 < m <= n."""
    n = len(leaves)
    assert 0 < m <= n
    if m == n:
        return [] if b else [mth(leaves)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def proof(m: int, leaves: Sequence[Digest]) -> list[Digest]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 section 2.1.4.1; 0 < m <= n."""
    return subproof(m, leaves, True)


def path_shape(m: int, n: int) -> tuple[str, ...]:
    """Side of each PATH(m, D[n]) sibling, leaf to root: "L" left of the path, "R" right.

    Follows the same recursion as :func:`path`. The RFC 9162 section 2.1.3.2
    verifier's arithmetic depends only on this shape, so a proof checked under
    another (m', n') with the same shape recomputes the very same root.
    """
    assert 0 <= m < n
    if n == 1:
        return ()
    k = largest_power_of_two_below(n)
    if m < k:
        return (*path_shape(m, k), "R")
    return (*path_shape(m - k, n - k), "L")


def proof_shape(m: int, n: int) -> tuple[bool, tuple[str, ...]]:
    """Shape of PROOF(m, D[n]): (is the seed root1 itself?, sides of the other hashes).

    Follows :func:`subproof`. "L" hashes sit left of the old tree's right edge and
    feed both roots; "R" hashes feed only the new root. The RFC 9162 section
    2.1.4.2 verifier's arithmetic depends only on this shape.
    """
    assert 0 < m <= n

    def walk(m: int, n: int, b: bool) -> tuple[bool, tuple[str, ...]]:
        if m == n:
            return b, ()
        k = largest_power_of_two_below(n)
        if m <= k:
            seed_is_root1, sides = walk(m, k, b)
            return seed_is_root1, (*sides, "R")
        seed_is_root1, sides = walk(m - k, n - k, False)
        return seed_is_root1, (*sides, "L")

    return walk(m, n, True)
