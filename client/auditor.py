"""The client as an auditor: it trusts the log's key, and checks everything else it is shown.

What it checks, with the ledger's own verifiers (:func:`ledger.open_checkpoint`,
:func:`ledger.verify_consistency`, :func:`ledger.verify_inclusion`):

* **The log key is pinned.** The vkey comes from the configuration (out of
  band, best) or, failing that, is fetched from the server once and remembered
  in the outbox (trust on first use, said out loud). A server that later shows
  another vkey, or checkpoints the pinned key did not sign, is refused.
* **Submitted bytes.** Every entry returned for a submission must carry exactly
  the statement and signature sent (:func:`client.http.entry_for_submission`).
* **Checkpoints only grow.** The newest verified checkpoint is kept in the
  outbox. A newer one is accepted only with a consistency proof from the old
  size to the new, checked against both signed roots. A smaller size, or the
  same size with another root, is a fork or a rollback.
* **Our statements are in the tree.** Each accepted statement's leaf hash is
  computed locally from the entry bytes; runs of consecutive leaves are proven
  with one inclusion proof per aligned subtree (``O(log n)`` requests for a run
  of ``n``, instead of ``n``), each checked against a verified checkpoint.

Every failure raises :class:`~client.errors.AuditError`: never retried, never
silenced. This module holds no state of its own; the outbox keeps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from client.errors import AuditError, ProblemError
from client.http import MandiClient
from client.outbox import Outbox, OutboxItem
from ledger.checkpoint import NoteVerifier, VerifiedCheckpoint, open_checkpoint
from ledger.errors import LedgerError
from ledger.hashing import Digest, node_hash
from ledger.merkle import verify_consistency, verify_inclusion

__all__ = ["AuditOutcome", "Auditor", "subtree_root"]

_VKEY = "log_vkey"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditOutcome:
    """What one audit round established."""

    tree_size: int
    """Size of the newest verified checkpoint."""
    proven: int
    """Our statements whose inclusion this round verified."""
    unproven: int
    """Accepted statements still waiting for a checkpoint that covers them."""
    proof_requests: int


def subtree_root(leaves: Sequence[bytes]) -> Digest:
    """RFC 9162 root of ``2**k`` leaf hashes (a complete subtree)."""
    level = list(leaves)
    if not level or len(level) & (len(level) - 1):
        raise ValueError("a complete subtree has a power-of-two number of leaves")
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return Digest(bytes(level[0]))


class Auditor:
    """Checks a server's log against what this client has seen and sent.

    Args:
        client: the server.
        outbox: where the pinned vkey, the checkpoints seen and the proven
            statements are remembered.
        verifier: the configured log vkey (the trust anchor); None to use the
            pinned one, or to pin the server's on first use.
        warn: told when a vkey is pinned on first use.
    """

    def __init__(
        self,
        client: MandiClient,
        outbox: Outbox,
        verifier: NoteVerifier | None = None,
        *,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self._configured = verifier
        self._warn = warn
        self._verifier: NoteVerifier | None = None

    # -- the trust anchor --------------------------------------------------------

    def verifier(self) -> NoteVerifier:
        """The log's verifier key: configured, else pinned, else fetched and pinned now.

        Raises:
            AuditError: ``vkey_changed``: the configured (or served) vkey differs
                from the one this outbox pinned.
        """
        if self._verifier is not None:
            return self._verifier
        pinned = self.outbox.meta(_VKEY)
        if self._configured is not None:
            vkey = self._configured.to_vkey()
            if pinned is not None and pinned != vkey:
                raise AuditError(
                    f"the configured log vkey {vkey} differs from the one this outbox "
                    f"pinned, {pinned}: use another --outbox for another log",
                    code="vkey_changed",
                )
            if pinned is None:
                self.outbox.set_meta(_VKEY, vkey)
            self._verifier = self._configured
            return self._configured
        served = self.client.vkey()
        if pinned is not None and served != pinned:
            raise AuditError(
                f"the server now shows the log vkey {served}, but this outbox pinned "
                f"{pinned}: the server is not the log it was",
                code="vkey_changed",
            )
        try:
            verifier = NoteVerifier.from_vkey(served)
        except LedgerError as exc:
            raise AuditError(
                f"the server's vkey is malformed: {exc.message}", code="bad_vkey"
            ) from exc
        if pinned is None:
            self.outbox.set_meta(_VKEY, served)
            if self._warn is not None:
                self._warn(
                    f"pinned the log vkey {served} as the server showed it (trust on first "
                    "use); configure MANDI_LOG_VKEY from a source you trust to check it"
                )
        self._verifier = verifier
        return verifier

    # -- checkpoints ---------------------------------------------------------------

    def refresh_checkpoint(self) -> VerifiedCheckpoint:
        """Fetch the newest checkpoint, verify it, and prove it extends the newest seen.

        Returns:
            The verified checkpoint (remembered in the outbox when it is new).

        Raises:
            AuditError: a bad signature, a smaller log (``log_shrank``), a fork
                (``log_forked``) or a consistency proof that fails
                (``inconsistent_log``).
        """
        verifier = self.verifier()
        note = self.client.checkpoint()
        try:
            verified = open_checkpoint(note, verifier)
        except LedgerError as exc:
            raise AuditError(
                f"the server's checkpoint does not verify with the pinned log key: "
                f"{exc.code}: {exc.message}",
                code="bad_checkpoint",
            ) from exc
        checkpoint = verified.checkpoint
        previous = self.outbox.newest_checkpoint()
        if previous is not None:
            if checkpoint.size < previous.tree_size:
                raise AuditError(
                    f"the log shrank: the server shows a checkpoint of size {checkpoint.size}, "
                    f"but signed one of size {previous.tree_size} before",
                    code="log_shrank",
                )
            if checkpoint.size == previous.tree_size:
                if checkpoint.root_hash != previous.root_hash:
                    raise AuditError(
                        f"the log forked: two signed checkpoints of size {checkpoint.size} "
                        "with different roots",
                        code="log_forked",
                    )
            else:
                self._prove_consistency(
                    previous.tree_size, previous.root_hash, checkpoint.size, checkpoint.root_hash
                )
        known = self.outbox.checkpoint_at(checkpoint.size)
        if known is not None and known.root_hash != checkpoint.root_hash:
            raise AuditError(
                f"the log forked: two signed checkpoints of size {checkpoint.size} "
                "with different roots",
                code="log_forked",
            )
        self.outbox.save_checkpoint(checkpoint.size, checkpoint.root_hash, note)
        return verified

    def _prove_consistency(self, size1: int, root1: bytes, size2: int, root2: bytes) -> None:
        try:
            proof = self.client.consistency_proof(size1, size2)
        except ProblemError as exc:
            raise AuditError(
                f"the server will not prove that the log of size {size2} extends the one "
                f"of size {size1} it signed before: {exc.code}: {exc.message}",
                code="inconsistent_log",
            ) from exc
        if (proof.first, proof.second) != (size1, size2):
            raise AuditError(
                f"asked for a consistency proof {size1} -> {size2}, got "
                f"{proof.first} -> {proof.second}",
                code="inconsistent_log",
            )
        try:
            # The roots are the signed ones, never the server's unsigned claim.
            verify_consistency(size1, size2, list(proof.proof), root1, root2)
        except LedgerError as exc:
            raise AuditError(
                f"the log of size {size2} is not an extension of the log of size {size1} "
                f"signed before: {exc.message}",
                code="inconsistent_log",
            ) from exc

    def wait_for_checkpoint(
        self, size: int, *, timeout_s: float, poll_s: float = 0.1
    ) -> VerifiedCheckpoint:
        """Refresh until a checkpoint covers ``size`` entries or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        verified = self.refresh_checkpoint()
        while verified.checkpoint.size < size and time.monotonic() < deadline:
            time.sleep(poll_s)
            verified = self.refresh_checkpoint()
        return verified

    # -- inclusion -------------------------------------------------------------------

    def prove_included(self, checkpoint: VerifiedCheckpoint) -> tuple[int, int]:
        """Verify the inclusion of every accepted, unproven statement the checkpoint covers.

        Returns:
            ``(statements proven, proof requests made)``.

        Raises:
            AuditError: ``not_included``: a proof fails or is refused.
        """
        size = checkpoint.checkpoint.size
        root = checkpoint.checkpoint.root_hash
        items = self.outbox.unproven(size)
        requests = 0
        for run in _runs(items):
            begin = run[0].log_index
            assert begin is not None
            offset = 0
            while offset < len(run):
                width = _aligned_width(begin + offset, len(run) - offset)
                part = run[offset : offset + width]
                self._prove_subtree(part, begin + offset, size, root)
                requests += 1
                offset += width
            self.outbox.mark_proven([item.seq for item in run], size)
        return len(items), requests

    def _prove_subtree(
        self, part: Sequence[OutboxItem], start: int, size: int, root: bytes
    ) -> None:
        leaves = [item.leaf_hash for item in part]
        if any(leaf is None for leaf in leaves):  # pragma: no cover - accepted items have one
            raise AuditError("an accepted statement has no leaf hash", code="not_included")
        ours = subtree_root([leaf for leaf in leaves if leaf is not None])
        levels = len(part).bit_length() - 1
        try:
            served = self.client.inclusion_proof(index=start, tree_size=size)
        except ProblemError as exc:
            raise AuditError(
                f"the server will not prove that entry {start} is in the log of size {size}: "
                f"{exc.code}: {exc.message}",
                code="not_included",
            ) from exc
        proof = list(served.proof)
        first = part[0].leaf_hash
        assert first is not None
        # The first `levels` hashes of the leaf's path must rebuild our subtree
        # (the leaf is its leftmost, so each sibling is on the right) ...
        node: bytes = first
        for sibling in proof[:levels]:
            node = node_hash(node, sibling)
        if len(proof) < levels or node != ours:
            raise AuditError(
                f"entries {start}..{start + len(part) - 1} are not the statements this client "
                f"had accepted (subtree root differs)",
                code="not_included",
            )
        # ... and the whole path must lead to the signed root.
        try:
            verify_inclusion(first, start, size, proof, root)
        except LedgerError as exc:
            raise AuditError(
                f"entry {start} is not in the signed log of size {size}: {exc.message}",
                code="not_included",
            ) from exc

    # -- one round ---------------------------------------------------------------------

    def audit(self, *, wait_s: float = 0.0) -> AuditOutcome:
        """Refresh the checkpoint (waiting up to ``wait_s`` for one that covers every
        accepted statement), then prove what it covers."""
        newest = self.outbox.max_accepted_index()
        if newest is not None:
            size = self.client.log_info().get("tree_size")
            if not isinstance(size, int) or size <= newest:
                raise AuditError(
                    f"the log shrank: the server reports {size} entries, but accepted this "
                    f"client's statement at index {newest}",
                    code="log_shrank",
                )
        if newest is not None and wait_s > 0:
            verified = self.wait_for_checkpoint(newest + 1, timeout_s=wait_s)
        else:
            verified = self.refresh_checkpoint()
        proven, requests = self.prove_included(verified)
        return AuditOutcome(
            tree_size=verified.checkpoint.size,
            proven=proven,
            unproven=self.outbox.count_unproven(),
            proof_requests=requests,
        )


def _runs(items: Sequence[OutboxItem]) -> list[list[OutboxItem]]:
    """Items (sorted by index) cut into runs of consecutive log indices."""
    runs: list[list[OutboxItem]] = []
    for item in items:
        if (
            runs
            and runs[-1][-1].log_index is not None
            and item.log_index == (runs[-1][-1].log_index + 1)
        ):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _aligned_width(start: int, available: int) -> int:
    """The largest ``2**k <= available`` with ``start`` a multiple of ``2**k``."""
    width = 1
    while width * 2 <= available and start % (width * 2) == 0:
        width *= 2
    return width
