"""The ledger service: where the pure rules meet a :class:`~ledger.storage.Store`.

:class:`Ledger` appends signed statements (one, or a batch in one transaction),
answers reads, builds inclusion and consistency proofs from stored nodes, and
signs checkpoints with the log key. It is the only module that combines the
admission rules, the Merkle arithmetic and storage. It owns no HTTP, no CLI and
no file layout (that is :mod:`ledger.datadir`); time comes from an injected clock.

It also keeps personal data off the log: a clear value is stored (outside the
append transaction, never in an entry) only once it opens the salted commitment
the participant's signed profile carries, and erasing it leaves the log as it was.

Witness cosignatures (c2sp.org/tlog-cosignature) are off the log as well: a
line is stored only after it verifies, with the witness's key, over a stored
checkpoint's body (:meth:`Ledger.add_cosignature`); reads hand out each
checkpoint's note with every stored cosignature appended. Asking witnesses to
cosign (HTTP) is the server's business, not this module's.
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ledger.admission import LogIdentity, admit
from ledger.checkpoint import (
    SIG_TYPE_COSIGNATURE_V1,
    Checkpoint,
    NoteVerifier,
    SignedNote,
    open_cosignature,
    sign_checkpoint,
)
from ledger.domain.personal import PERSONAL_FIELDS, PersonalRecord, verify_commitment
from ledger.domain.rules import LotState
from ledger.domain.trace import (
    MAX_TRACE_DEPTH,
    Trace,
    recalled_upstream,
    trace_back,
    trace_forward,
)
from ledger.errors import (
    EncodingError,
    LedgerError,
    NotFoundError,
    ProofError,
    StorageError,
    VerificationError,
)
from ledger.hashing import Digest, KeyId
from ledger.keys import Signer, VerifyingKey, libsodium_accepts
from ledger.merkle import (
    consistency_proof_node_ids,
    inclusion_proof_node_ids,
    new_nodes_for_append,
    root_from_nodes,
    root_node_ids,
)
from ledger.registry import SignedRequest, build_genesis
from ledger.statements import Entry, SignedStatement, Statement
from ledger.storage import NodeId, Store, StoredCheckpoint, StoredCosignature, WriteTx

__all__ = [
    "DEFAULT_CHECKPOINT_DELAY_MS",
    "MAX_BATCH",
    "AppendResult",
    "HistoryItem",
    "Ledger",
    "wall_clock_ms",
]

DEFAULT_CHECKPOINT_DELAY_MS = 1000
MAX_BATCH = 500
"""Most statements one append transaction takes (documented batch limit)."""


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, UTC."""
    return _time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryItem:
    """One statement in a lot's history, decoded from its stored signed bytes."""

    index: int
    event_id: Digest
    kind: str
    participant: str
    time: str
    accepted_ms: int
    body: dict[str, Any]
    corrected_by: int | None
    statement: bytes = b""
    """The exact stored statement bytes (what the signature covers)."""
    signature: bytes = b""
    """The statement's Ed25519 signature, as submitted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResult:
    """The entry holding a submitted statement, and whether this call created it."""

    entry: Entry
    created: bool


class Ledger:
    """Append, read and prove over one log.

    Args:
        store: where the log lives.
        log: the log's origin and public key.
        log_signer: the log's private key; needed to sign checkpoints (a
            read-only ledger may pass None).
        clock: milliseconds since the epoch; injected so tests control time.
        checkpoint_delay_ms: the longest an append waits for a checkpoint.
    """

    def __init__(
        self,
        store: Store,
        *,
        log: LogIdentity,
        log_signer: Signer | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        checkpoint_delay_ms: int = DEFAULT_CHECKPOINT_DELAY_MS,
    ) -> None:
        if log_signer is not None and log_signer.public.raw != log.log_key.raw:
            raise ValueError("log_signer does not match the log key")
        self.store = store
        self.log = log
        self._signer = log_signer
        self._clock = clock
        self.checkpoint_delay_ms = checkpoint_delay_ms
        # key id -> raw key, for keys that signed an admitted statement. A key id is
        # the SHA-256 of its key, so an entry never goes stale (revocation is a
        # question admit() answers, not this map).
        self._signer_keys: dict[KeyId, bytes] = {}

    @classmethod
    def initialise(
        cls,
        store: Store,
        *,
        origin: str,
        log_signer: Signer,
        operator_request: SignedRequest,
        time: str,
        clock: Callable[[], int] = wall_clock_ms,
        checkpoint_delay_ms: int = DEFAULT_CHECKPOINT_DELAY_MS,
    ) -> Ledger:
        """Append the genesis entry to an empty store and sign the first checkpoint."""
        log = LogIdentity(origin=origin, log_key=log_signer.public)
        ledger = cls(
            store,
            log=log,
            log_signer=log_signer,
            clock=clock,
            checkpoint_delay_ms=checkpoint_delay_ms,
        )
        genesis = build_genesis(
            origin=origin, log_signer=log_signer, operator_request=operator_request, time=time
        )
        ledger.append(genesis)
        ledger.flush_checkpoint()
        return ledger

    @classmethod
    def reader(cls, store: Store) -> Ledger:
        """A read-only ledger over ``store``, naming the log as its genesis entry does.

        For queries and proofs only: the identity comes from the data itself, so
        it is no trust anchor (an auditor passes the vkey it was given instead).

        Raises:
            NotFoundError: the store holds no genesis entry.
        """
        genesis = Statement.from_bytes(store.entry(0).statement)
        log_key = VerifyingKey.from_base64(str(genesis.body.get("log_key", "")))
        return cls(store, log=LogIdentity(origin=genesis.origin, log_key=log_key))

    # -- appending -----------------------------------------------------------

    def append(self, signed: SignedStatement) -> AppendResult:
        """Append one statement (idempotent: a known statement returns its entry).

        Raises:
            StatementError, SignatureError, EncodingError, RuleError: refused; nothing changed.
            StorageError: the store failed; nothing changed.
        """
        return self.append_batch([signed])[0]

    def append_batch(
        self,
        items: Sequence[SignedStatement],
        *,
        verified_with: Sequence[bytes | None] | None = None,
    ) -> list[AppendResult]:
        """Append statements in order in one transaction: all of them or none.

        A statement already in the log (or earlier in the same batch) returns
        the existing entry with ``created=False``. ``verified_with`` is as for
        :meth:`append_each`.

        Raises:
            ValueError: more than :data:`MAX_BATCH` items.
            LedgerError: the first refusal; nothing of the batch is stored.
        """
        if len(items) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} statements")
        slots = _verified_slots(items, verified_with)
        now = self._clock()
        with self.store.write() as tx:
            tail = _Tail(size=tx.size(), prev=tx.last_leaf_hash())
            results = [
                self._append_one(tx, tail, signed, now, verified)
                for signed, verified in zip(items, slots, strict=True)
            ]
            if self._checkpoint_due(tx, tail.size, now):
                self._put_checkpoint(tx, tail.size, now)
        return results

    def signer_key(self, key_id: KeyId) -> bytes | None:
        """The raw key behind ``key_id`` if it signed a statement this ledger admitted.

        A submitter may verify a signature with it before :meth:`append_each`
        (outside the write transaction) and pass the key as ``verified_with``.
        """
        return self._signer_keys.get(key_id)

    def verify_ahead(self, signed: SignedStatement) -> bytes | None:
        """Verify ``signed`` outside the write transaction, if its signer's key is known here.

        Returns the raw key it verified with, to pass as ``verified_with`` to
        :meth:`append_each` or :meth:`append_batch`, so the writer, which
        holds the write lock, need not verify it again; None when the key is
        not known yet or libsodium refused the signature. A refusal is left to
        the writer, whose answer (from ``cryptography``) is the one every path
        gives. libsodium releases the GIL, so a caller may run this in a thread.
        """
        public = self._signer_keys.get(signed.statement.signer)
        if public is None or not libsodium_accepts(
            public, signed.signature, signed.statement.signing_input()
        ):
            return None
        return public

    def append_each(
        self,
        items: Sequence[SignedStatement],
        *,
        verified_with: Sequence[bytes | None] | None = None,
    ) -> list[AppendResult | LedgerError]:
        """Append statements in order in one transaction, each on its own merits.

        Each item is admitted against the log as the items accepted before it
        left it (a later item may use a key an earlier one enrolled). A refused
        item is skipped: its slot holds the refusal, and it changes nothing. A
        statement already in the log (or accepted earlier in the call) returns
        the existing entry with ``created=False``. Nothing is acknowledged before
        the transaction commits: the results exist only once it has.

        This is the group commit: many independent submissions, one commit
        (one fsync) between them. :class:`ledger.commit.GroupCommitter` feeds it.

        ``verified_with[i]``, when given and not None, is a raw key the caller
        has already verified item ``i``'s signature with; admission skips the
        signature check only if that is the key the registry resolves.

        Returns:
            One slot per item, in order: its :class:`AppendResult` or its
            :class:`~ledger.errors.LedgerError`.

        Raises:
            ValueError: more than :data:`MAX_BATCH` items.
            StorageError: the store failed or the commit was refused; nothing
                of the call is stored.
        """
        if len(items) > MAX_BATCH:
            raise ValueError(f"a call holds at most {MAX_BATCH} statements")
        slots = _verified_slots(items, verified_with)
        now = self._clock()
        results: list[AppendResult | LedgerError] = []
        with self.store.write() as tx:
            tail = _Tail(size=tx.size(), prev=tx.last_leaf_hash())
            for signed, verified in zip(items, slots, strict=True):
                try:
                    results.append(self._append_one(tx, tail, signed, now, verified))
                except StorageError:
                    raise  # the transaction itself failed: no item can stand
                except LedgerError as exc:
                    results.append(exc)
            if self._checkpoint_due(tx, tail.size, now):
                self._put_checkpoint(tx, tail.size, now)
        return results

    def _append_one(
        self,
        tx: WriteTx,
        tail: _Tail,
        signed: SignedStatement,
        now: int,
        verified_with: bytes | None = None,
    ) -> AppendResult:
        """Admit and stage one statement at ``tail`` (writes nothing if refused)."""
        existing = tx.entry_by_event_id(signed.event_id)
        if existing is not None:
            return AppendResult(entry=existing, created=False)
        # admit() is pure: a refusal raises before anything is written.
        admission = admit(
            signed,
            index=tail.size,
            accepted_ms=now,
            log=self.log,
            view=tx,
            verified_with=verified_with,
        )
        self._signer_keys[signed.statement.signer] = admission.signer_key.raw
        entry = Entry(
            index=tail.size,
            accepted_ms=now,
            prev=tail.prev,
            statement=signed.statement.raw,
            signature=signed.signature,
        )
        leaf = entry.leaf_hash
        tx.put_entry(entry, leaf)
        parents = new_nodes_for_append(tail.size, leaf, _lookup(tx))
        parents.pop((0, tail.size), None)
        tx.put_nodes(parents)
        tx.apply_registry(admission.changes)
        tx.apply_domain(admission.domain)
        tail.prev = leaf
        tail.size += 1
        return AppendResult(entry=entry, created=True)

    def flush_checkpoint(self) -> StoredCheckpoint | None:
        """Sign a checkpoint for the current size if the newest one is older.

        A server calls this on a timer (every ``checkpoint_delay_ms``) so that
        no append waits longer than the delay for a checkpoint covering it.

        Returns:
            The newest checkpoint after the call (None for an empty log).
        """
        with self.store.write() as tx:
            size = tx.size()
            latest = tx.latest_checkpoint()
            if size > 0 and (latest is None or latest.size < size):
                return self._put_checkpoint(tx, size, self._clock())
            return latest

    def _checkpoint_due(self, tx: WriteTx, size: int, now: int) -> bool:
        if self._signer is None:
            return False
        latest = tx.latest_checkpoint()
        if latest is None:
            return True
        return latest.size < size and now - latest.created_ms >= self.checkpoint_delay_ms

    def _put_checkpoint(self, tx: WriteTx, size: int, now: int) -> StoredCheckpoint:
        if self._signer is None:
            raise ValueError("this ledger has no log key to sign checkpoints with")
        ids = root_node_ids(size)
        root = root_from_nodes(size, tx.nodes(ids))
        note = sign_checkpoint(
            Checkpoint(origin=self.log.origin, size=size, root_hash=root),
            name=self.log.origin,
            signer=self._signer,
        )
        stored = StoredCheckpoint(size=size, note=note.to_text(), created_ms=now)
        tx.put_checkpoint(stored)
        return stored

    # -- reading and proving ---------------------------------------------------

    def size(self) -> int:
        """Number of entries."""
        return self.store.size()

    def entry(self, index: int) -> Entry:
        """The entry at ``index``. Raises NotFoundError."""
        return self.store.entry(index)

    def entry_by_event_id(self, event_id: Digest) -> Entry:
        """The entry holding the statement with this event id. Raises NotFoundError."""
        entry = self.store.entry_by_event_id(event_id)
        if entry is None:
            raise NotFoundError(f"no event {event_id.hex()} in the log")
        return entry

    def latest_checkpoint(self) -> StoredCheckpoint:
        """The newest signed checkpoint. Raises NotFoundError for an empty log."""
        latest = self.store.latest_checkpoint()
        if latest is None:
            raise NotFoundError("the log has no checkpoint yet")
        return latest

    # -- witness cosignatures (off the log) -------------------------------------

    def add_cosignature(self, size: int, line: str, witness: NoteVerifier) -> StoredCosignature:
        """Verify a witness's cosignature line over the checkpoint of ``size``, then store it.

        A line is stored only once :func:`~ledger.checkpoint.open_cosignature`
        accepts it with ``witness``'s key; a second line by the same key for the
        same checkpoint replaces the first.

        Args:
            size: the tree size of a stored checkpoint.
            line: one signature line (``— name base64``), with or without its LF.
            witness: the witness's ``cosignature/v1`` key (type ``0x04``).

        Returns:
            The stored cosignature (its line ends in LF).

        Raises:
            NotFoundError: no checkpoint of ``size`` is stored.
            EncodingError: the line is malformed (``bad_note``).
            SignatureError: the line is another key's (``missing_signature``) or
                does not verify.
            ValueError: ``witness`` is not a ``cosignature/v1`` key.
        """
        if witness.sig_type != SIG_TYPE_COSIGNATURE_V1:
            raise ValueError("witness must be a cosignature/v1 (type 0x04) verifier")
        stored = self._checkpoint(size)
        line = line if line.endswith("\n") else line + "\n"
        body = SignedNote.from_text(stored.note).text
        cosignature = open_cosignature(body, line, witness)
        row = StoredCosignature(
            size=size,
            name=cosignature.name,
            key_hash=cosignature.key_hash,
            line=line,
            timestamp=cosignature.timestamp,
        )
        self.store.put_cosignatures([row])
        return row

    def cosigned_checkpoint(self, min_cosignatures: int = 0) -> StoredCheckpoint:
        """The newest checkpoint with at least ``min_cosignatures``, every cosignature appended.

        ``min_cosignatures == 0`` means the newest checkpoint, whatever it carries.

        Raises:
            NotFoundError: no checkpoint yet, or none with that many cosignatures
                (code ``no_cosigned_checkpoint``).
            ValueError: ``min_cosignatures < 0``.
        """
        if min_cosignatures < 0:
            raise ValueError("min_cosignatures must be >= 0")
        if min_cosignatures == 0:
            return self.with_cosignatures(self.latest_checkpoint())
        found = self.store.latest_cosigned_checkpoint(min_cosignatures)
        if found is None:
            raise NotFoundError(
                f"no checkpoint carries {min_cosignatures} witness cosignatures yet",
                code="no_cosigned_checkpoint",
                field="min_cosignatures",
            )
        return self.with_cosignatures(found)

    def with_cosignatures(self, checkpoint: StoredCheckpoint) -> StoredCheckpoint:
        """``checkpoint`` with its stored cosignatures appended to the note (signed-note)."""
        return _cosigned(checkpoint, self.store.cosignatures(checkpoint.size))

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint by ascending size, each with its cosignatures, streamed."""
        cosignatures = iter(self.store.all_cosignatures())
        pending = next(cosignatures, None)
        for checkpoint in self.store.checkpoints():
            lines: list[StoredCosignature] = []
            while pending is not None and pending.size <= checkpoint.size:
                if pending.size == checkpoint.size:
                    lines.append(pending)
                pending = next(cosignatures, None)
            yield _cosigned(checkpoint, lines)

    def _checkpoint(self, size: int) -> StoredCheckpoint:
        # The store reads checkpoints by range only; the newest is the common case.
        latest = self.store.latest_checkpoint()
        if latest is not None and latest.size == size:
            return latest
        for stored in self.store.checkpoints():
            if stored.size == size:
                return stored
            if stored.size > size:
                break
        raise NotFoundError(f"no checkpoint of size {size} is stored", field="size")

    def root_hash(self, tree_size: int) -> Digest:
        """Merkle root of the first ``tree_size`` entries, from O(log n) stored nodes."""
        self._check_size(tree_size)
        return root_from_nodes(tree_size, self.store.nodes(root_node_ids(tree_size)))

    def inclusion_proof(self, leaf_index: int, tree_size: int) -> list[Digest]:
        """RFC 9162 inclusion proof; requires 0 <= leaf_index < tree_size <= size.

        Raises:
            ProofError: the indices are out of range.
        """
        self._check_size(tree_size)
        if not 0 <= leaf_index < tree_size:
            raise ProofError(
                f"leaf_index must satisfy 0 <= leaf_index < tree_size ({tree_size})",
                code="bad_proof_request",
                field="leaf_index",
            )
        plan = inclusion_proof_node_ids(leaf_index, tree_size)
        return plan.build(self.store.nodes(plan.node_ids()))

    def consistency_proof(self, size1: int, size2: int) -> list[Digest]:
        """RFC 9162 consistency proof; requires 0 <= size1 <= size2 <= size.

        Raises:
            ProofError: the sizes are out of range.
        """
        self._check_size(size2)
        if not 0 <= size1 <= size2:
            raise ProofError(
                f"sizes must satisfy 0 <= size1 <= size2 ({size2})",
                code="bad_proof_request",
                field="size1",
            )
        plan = consistency_proof_node_ids(size1, size2)
        return plan.build(self.store.nodes(plan.node_ids()))

    # -- supply-chain queries (answered from indexed state, never by scanning the log)

    def lot(self, lot_id: str) -> LotState:
        """A lot's current state. Raises NotFoundError (``unknown_lot``)."""
        state = self.store.lot(lot_id)
        if state is None:
            raise NotFoundError(f"lot {lot_id} does not exist", code="unknown_lot", field="lot")
        return state

    def history(self, lot_id: str) -> list[HistoryItem]:
        """Every statement on a lot in log order, corrections and corrected ones included.

        One read of the store (:meth:`Store.history_entries`: the lot's lines
        with each statement's entry and event record), none of the registry:
        the event record names the signing participant.

        Raises:
            NotFoundError: ``unknown_lot``.
        """
        lines = self.store.history_entries(lot_id)
        if not lines:
            self.lot(lot_id)  # every lot's history holds its creation: unknown_lot
        items: list[HistoryItem] = []
        for line in lines:
            entry = line.entry
            kind, time, body = _stored_statement_fields(entry.statement)
            if line.has_record:
                participant, corrected_by = line.participant or "", line.corrected_by
            else:  # pragma: no cover - every statement in a history has a record
                signer = self.store.key(Statement.from_bytes(entry.statement).signer)
                participant, corrected_by = (signer.participant if signer else ""), None
            items.append(
                HistoryItem(
                    index=entry.index,
                    event_id=entry.event_id,
                    kind=kind,
                    participant=participant,
                    time=time,
                    accepted_ms=entry.accepted_ms,
                    body=body,
                    corrected_by=corrected_by,
                    statement=entry.statement,
                    signature=entry.signature,
                )
            )
        return items

    def trace_back(self, lot_id: str, *, max_depth: int = MAX_TRACE_DEPTH) -> Trace:
        """Every upstream lot, to the farms (through transforms and packs)."""
        return trace_back(lot_id, self.store, max_depth=max_depth)

    def trace_forward(self, lot_id: str, *, max_depth: int = MAX_TRACE_DEPTH) -> Trace:
        """Every downstream lot and so who holds it now: the recall list."""
        return trace_forward(lot_id, self.store, max_depth=max_depth)

    def recalled_upstream(self, lot_id: str) -> tuple[LotState, ...]:
        """The recalled lots among this lot and its inputs (for the recall banner)."""
        return recalled_upstream(lot_id, self.store)

    def held_by(self, participant: str) -> list[LotState]:
        """What a participant holds now."""
        return self.store.held_by(participant)

    # -- personal data, kept off the log ---------------------------------------

    def put_personal(
        self, participant_id: str, field: str, value: str, salt: bytes, public: bool = False
    ) -> None:
        """Keep one personal value off the log, once it opens the profile's commitment.

        The participant's enrolment profile (signed, in the log) carries
        ``personal.<field>`` = ``commit(value, salt)``; only a value and salt
        that reproduce it are stored, so the table never holds a value the
        participant did not commit to. A second call for the same field
        replaces the first (e.g. to change ``public``).

        Args:
            participant_id: the enrolled participant.
            field: ``name``, ``national_id`` or ``phone``.
            value: the clear value, exactly the committed string.
            salt: the 16-byte salt of that commitment.
            public: the participant allows the value on the public page.

        Raises:
            EncodingError: a bad field, value or salt (see :class:`PersonalRecord`).
            NotFoundError: ``unknown_participant``.
            VerificationError: ``not_committed`` (the profile commits to no such
                field) or ``commitment_mismatch``, naming ``personal.<field>``.
        """
        record = PersonalRecord(
            participant=participant_id, field=field, value=value, salt=salt, public=public
        )
        commitments = self._participant_profile(participant_id).get("personal")
        expected = commitments.get(field) if isinstance(commitments, Mapping) else None
        if not isinstance(expected, str):
            raise VerificationError(
                f"personal.{field}: the profile of {participant_id} commits to no {field}",
                code="not_committed",
                field=f"personal.{field}",
            )
        try:
            verify_commitment(expected, value, salt)
        except VerificationError as exc:
            raise VerificationError(
                f"personal.{field}: value and salt do not open the commitment in the profile "
                f"of {participant_id}",
                code="commitment_mismatch",
                field=f"personal.{field}",
            ) from exc
        self.store.put_personal(record)

    def erase_personal(self, participant_id: str, field: str | None = None) -> int:
        """Erase a participant's off-log personal values: one field, or all of them.

        The log is untouched and still verifies; its commitments no longer
        reveal or confirm anything once the salt is gone.

        Returns:
            How many values were erased (0 when there was nothing to erase).

        Raises:
            EncodingError: ``bad_value``: ``field`` is not a personal field.
            NotFoundError: ``unknown_participant``.
        """
        if field is not None and field not in PERSONAL_FIELDS:
            raise EncodingError(
                f"field: must be one of {', '.join(PERSONAL_FIELDS)}",
                code="bad_value",
                field="field",
            )
        self._participant_profile(participant_id)
        return self.store.erase_personal(participant_id, field)

    def public_personal(self, participant_id: str) -> dict[str, str]:
        """The personal values the participant allowed on the public page: field -> value.

        Raises:
            NotFoundError: ``unknown_participant``.
        """
        self._participant_profile(participant_id)
        return {r.field: r.value for r in self.store.personal(participant_id) if r.public}

    def _participant_profile(self, participant_id: str) -> Mapping[str, Any]:
        participant = self.store.participant(participant_id)
        if participant is None:
            raise NotFoundError(
                f"participant {participant_id} is not enrolled",
                code="unknown_participant",
                field="participant",
            )
        return participant.profile

    def _check_size(self, tree_size: int) -> None:
        size = self.store.size()
        if not 0 <= tree_size <= size:
            raise ProofError(
                f"tree_size {tree_size} is beyond the log size {size}",
                code="bad_proof_request",
                field="tree_size",
            )


def _stored_statement_fields(data: bytes) -> tuple[str, str, dict[str, Any]]:
    """The kind, time and body of a stored statement.

    A stored statement passed :meth:`Statement.from_bytes` when it was admitted,
    so it is canonical JSON with a well-formed envelope: a plain parse gives the
    same values as that check, at a fraction of its cost (which re-encodes the
    statement to compare). Bytes that do not parse as such an envelope are
    handed to :meth:`Statement.from_bytes`, which raises the precise error.
    """
    try:
        obj = json.loads(data)
        kind, time, body = obj["kind"], obj["time"], obj["body"]
    except (ValueError, TypeError, KeyError):
        obj = kind = time = body = None
    if isinstance(kind, str) and isinstance(time, str) and isinstance(body, dict):
        return kind, time, body
    statement = Statement.from_bytes(data)  # raises EncodingError for what cannot be admitted
    return statement.kind, statement.time, statement.body


def _verified_slots(
    items: Sequence[SignedStatement], verified_with: Sequence[bytes | None] | None
) -> Sequence[bytes | None]:
    """One ``verified_with`` slot per item (all None when none was given)."""
    if verified_with is None:
        return [None] * len(items)
    if len(verified_with) != len(items):
        raise ValueError("verified_with must hold one slot per item")
    return verified_with


@dataclass(slots=True, kw_only=True)
class _Tail:
    """The end of the log inside one append transaction: its size and last leaf hash."""

    size: int
    prev: Digest


def _cosigned(
    checkpoint: StoredCheckpoint, cosignatures: Iterable[StoredCosignature]
) -> StoredCheckpoint:
    # Appending whole lines keeps the note byte-exact signed-note text; the
    # lines verified before they were stored, and a reader verifies them again.
    lines = "".join(c.line for c in cosignatures)
    return replace(checkpoint, note=checkpoint.note + lines) if lines else checkpoint


def _lookup(tx: WriteTx) -> Callable[[NodeId], Digest]:
    def lookup(node_id: NodeId) -> Digest:
        return tx.nodes([node_id])[node_id]

    return lookup
