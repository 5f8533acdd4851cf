"""The one gate every statement passes, at append and again in the audit.

:func:`admit` decides whether a signed statement may take log index ``index``
given the registry before it: right origin, a signer registered before that
index and not revoked at it, a valid signature, and the rules of its kind. The
server's append path and the auditor's replay both call it, so a rule lives in
exactly one place.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

from ledger.domain.participants import ROLE_OPERATOR, role_of, validate_profile
from ledger.domain.rules import DomainChange, DomainView, domain_changes
from ledger.errors import SignatureError, StatementError
from ledger.keys import VerifyingKey
from ledger.registry import (
    KIND_GENESIS,
    AddParticipant,
    KeyRecord,
    RegistryChange,
    RegistryView,
    registry_changes,
)
from ledger.statements import SignedStatement

__all__ = ["Admission", "LedgerView", "LogIdentity", "admit", "resolve_signer"]


class LedgerView(RegistryView, DomainView, Protocol):
    """The state a statement is checked against: the registry and the domain."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogIdentity:
    """What a log is: its origin and its public key (the auditor's trust anchor)."""

    origin: str
    log_key: VerifyingKey


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """The outcome of admitting a statement: its signing key and registry changes."""

    signer_key: VerifyingKey
    signer: KeyRecord | None
    changes: list[RegistryChange]
    domain: list[DomainChange]


def resolve_signer(
    signed: SignedStatement, *, index: int, log: LogIdentity, view: RegistryView
) -> tuple[VerifyingKey, KeyRecord | None]:
    """Find the key that must have signed the statement at ``index``.

    Raises:
        StatementError: wrong origin, genesis out of place, unknown or revoked signer.
    """
    statement = signed.statement
    if statement.origin != log.origin:
        raise StatementError(
            f"origin {statement.origin!r} is not this log's origin {log.origin!r}",
            code="wrong_origin",
            field="origin",
        )
    if index == 0:
        if statement.kind != KIND_GENESIS:
            raise StatementError(
                "entry 0 must be the genesis statement", code="genesis_missing", field="kind"
            )
        if statement.signer != log.log_key.key_id:
            raise StatementError(
                "genesis must be signed by the log key", code="genesis_signer", field="signer"
            )
        return log.log_key, None
    if statement.kind == KIND_GENESIS:
        raise StatementError(
            "only entry 0 may be a genesis statement", code="genesis_not_first", field="kind"
        )
    record = view.key(statement.signer)
    if record is None:
        raise StatementError(
            f"signer {statement.signer.hex()} is not a registered key",
            code="unknown_signer",
            field="signer",
        )
    if record.revoked_at is not None and index >= record.revoked_at:
        raise StatementError(
            f"signer key was revoked at index {record.revoked_at}",
            code="key_revoked",
            field="signer",
        )
    if index <= record.added_at:  # pragma: no cover - keys are added before later indices
        raise StatementError("signer key is not yet registered", code="unknown_signer")
    return _verifying_key(record.public), record


@functools.lru_cache(maxsize=4096)
def _verifying_key(public: bytes) -> VerifyingKey:
    # Loading a key costs about as much as a third of a verification; a log has few
    # keys and every statement looks its signer's up. VerifyingKey is immutable.
    return VerifyingKey.from_bytes(public)


def admit(
    signed: SignedStatement,
    *,
    index: int,
    accepted_ms: int,
    log: LogIdentity,
    view: LedgerView,
    signature_checked: bool = False,
    verified_with: bytes | None = None,
) -> Admission:
    """Decide whether ``signed`` may be appended at ``index``.

    Args:
        signed: the parsed statement and its signature.
        index: the log index it would take.
        accepted_ms: the acceptance time the entry records (the domain's time rules
            compare the claimed time with it).
        log: the log's origin and key.
        view: the registry and domain state as of index ``index`` (before this
            statement).
        signature_checked: the caller (a parallel auditor) has already verified
            the signature with the key :func:`resolve_signer` returns.
        verified_with: a raw key the caller has already verified the signature
            with (a server, before the write transaction); the check is skipped
            only when it is the key :func:`resolve_signer` returns.

    Returns:
        The signer and the registry changes the statement makes.

    Raises:
        StatementError, SignatureError, EncodingError: naming the field and rule.
    """
    key, record = resolve_signer(signed, index=index, log=log, view=view)
    if not signature_checked and verified_with != key.raw:
        try:
            key.verify(signed.signature, signed.statement.signing_input())
        except SignatureError as exc:
            raise SignatureError(
                "statement signature does not verify with the signer's key",
                code="bad_signature",
                field="signature",
            ) from exc
    if index == 0 and signed.statement.body.get("log_key") != log.log_key.to_base64():
        raise StatementError(
            "genesis names a different log key", code="genesis_log_key", field="body.log_key"
        )
    changes = registry_changes(signed, index=index, view=view, signer=record)
    for change in changes:
        if isinstance(change, AddParticipant):
            _check_new_profile(change, genesis=index == 0)
    domain: list[DomainChange] = []
    if record is not None:
        participant = view.participant(record.participant)
        if participant is None:  # pragma: no cover - a registered key has a participant
            raise StatementError("signer has no participant record", code="unknown_signer")

        def participant_role(participant_id: str) -> str | None:
            found = view.participant(participant_id)
            return None if found is None else role_of(found)

        domain = domain_changes(
            signed.statement,
            event_id=signed.event_id,
            index=index,
            accepted_ms=accepted_ms,
            participant=participant,
            view=view,
            participant_role=participant_role,
        )
    return Admission(signer_key=key, signer=record, changes=changes, domain=domain)


def _check_new_profile(change: AddParticipant, *, genesis: bool) -> None:
    path = "body.operator.request.profile" if genesis else "body.request.profile"
    profile = validate_profile(change.profile, path)
    if genesis and profile.role != ROLE_OPERATOR:
        raise StatementError(
            f"{path}.role: the genesis enrols the operator, role must be 'operator'",
            code="genesis_role",
            field=f"{path}.role",
        )
    if not genesis and profile.role == ROLE_OPERATOR:
        raise StatementError(
            f"{path}.role: there is one operator, enrolled by the genesis",
            code="operator_role_reserved",
            field=f"{path}.role",
        )
