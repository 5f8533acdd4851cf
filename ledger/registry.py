"""The participant registry: genesis, enrolment, key rotation and revocation.

The registry is replayed from the log alone. Entry 0 is the genesis statement,
signed by the log key, naming the origin, the log's public key and the
operator's own signed enrolment request. Every later change is a statement
signed by the operator that carries the participant's signed request (proof of
possession): ``enrol`` (request signed by the new key), ``rotate`` (request
signed by both the old and the new key) and ``revoke`` (the operator's word;
effective from the revocation's own log index, so earlier statements stay
valid).

This module holds the registry's value types, the builders for its statements
and requests, and the pure rules deciding what a registry statement changes. It
reads the current registry through :class:`RegistryView` and returns changes; it
never writes. :class:`Registry` is the in-memory implementation the auditor
replays into; the SQL store keeps the same state in tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.encoding import canonical_bytes
from ledger.errors import EncodingError, SignatureError, StatementError
from ledger.hashing import KeyId
from ledger.keys import Signer, VerifyingKey, b64decode, b64encode
from ledger.statements import (
    SignedStatement,
    Statement,
    check_hex_digest,
    check_origin,
    check_time,
    sign_statement,
)

__all__ = [
    "KIND_ENROL",
    "KIND_GENESIS",
    "KIND_REVOKE",
    "KIND_ROTATE",
    "REGISTRY_KINDS",
    "REQUEST_DOMAIN",
    "AddKey",
    "AddParticipant",
    "KeyRecord",
    "ParticipantRecord",
    "Registry",
    "RegistryChange",
    "RegistryView",
    "RevokeKey",
    "SignedRequest",
    "build_enrolment",
    "build_enrolment_request",
    "build_genesis",
    "build_revocation",
    "build_rotation",
    "build_rotation_request",
    "check_participant_id",
    "registry_changes",
]

KIND_GENESIS = "genesis"
KIND_ENROL = "enrol"
KIND_ROTATE = "rotate"
KIND_REVOKE = "revoke"
REGISTRY_KINDS = frozenset({KIND_GENESIS, KIND_ENROL, KIND_ROTATE, KIND_REVOKE})

REQUEST_DOMAIN = b"mandi-request-v1\n"
"""Domain-separation prefix of a participant's signed registry request."""

MAX_PROFILE_BYTES = 4096
MAX_REASON_CHARS = 500
_PARTICIPANT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_participant_id(value: Any, *, field: str = "participant") -> str:
    """A participant id: 1-64 of ``[a-z0-9._-]``, starting with a letter or digit.

    Raises:
        EncodingError: naming ``field``.
    """
    if not isinstance(value, str) or not _PARTICIPANT_RE.fullmatch(value):
        raise EncodingError(
            f"{field}: must match [a-z0-9][a-z0-9._-]{{0,63}}",
            code="bad_participant_id",
            field=field,
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """A participant key as the registry knows it at some log size.

    ``added_at`` is the index of the statement that registered the key; it may
    sign from ``added_at + 1``. ``revoked_at`` is the index of the revocation (or
    rotation away); it may not sign at that index or later.
    """

    key_id: KeyId
    participant: str
    public: bytes
    added_at: int
    revoked_at: int | None = None

    def valid_at(self, index: int) -> bool:
        """Whether this key may sign the statement at log index ``index``."""
        return self.added_at < index and (self.revoked_at is None or index < self.revoked_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantRecord:
    """A participant: its id, its public profile and where it was enrolled."""

    participant_id: str
    profile: Mapping[str, Any]
    enrolled_at: int
    operator: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AddParticipant:
    """Change: a new participant."""

    participant_id: str
    profile: Mapping[str, Any]
    index: int
    operator: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AddKey:
    """Change: a key that may sign for ``participant`` after ``index``."""

    key_id: KeyId
    participant: str
    public: bytes
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeKey:
    """Change: ``key_id`` may no longer sign from ``index`` on."""

    key_id: KeyId
    index: int
    reason: str


RegistryChange = AddParticipant | AddKey | RevokeKey


class RegistryView(Protocol):
    """Read access to the registry as of the entry being checked."""

    def key(self, key_id: KeyId) -> KeyRecord | None:
        """The key's record, or None when it was never registered."""
        ...

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        """The participant's record, or None when it was never enrolled."""
        ...


@dataclass(slots=True)
class Registry:
    """In-memory registry state, replayed from registry changes.

    Mutable on purpose: it is the state an audit or a batch accumulates.
    """

    keys: dict[KeyId, KeyRecord] = field(default_factory=dict)
    participants: dict[str, ParticipantRecord] = field(default_factory=dict)

    def key(self, key_id: KeyId) -> KeyRecord | None:
        """See :class:`RegistryView`."""
        return self.keys.get(key_id)

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        """See :class:`RegistryView`."""
        return self.participants.get(participant_id)

    def apply(self, changes: Sequence[RegistryChange]) -> None:
        """Apply changes returned by :func:`registry_changes`."""
        for change in changes:
            if isinstance(change, AddParticipant):
                self.participants[change.participant_id] = ParticipantRecord(
                    participant_id=change.participant_id,
                    profile=change.profile,
                    enrolled_at=change.index,
                    operator=change.operator,
                )
            elif isinstance(change, AddKey):
                self.keys[change.key_id] = KeyRecord(
                    key_id=change.key_id,
                    participant=change.participant,
                    public=change.public,
                    added_at=change.index,
                )
            else:
                old = self.keys[change.key_id]
                self.keys[change.key_id] = KeyRecord(
                    key_id=old.key_id,
                    participant=old.participant,
                    public=old.public,
                    added_at=old.added_at,
                    revoked_at=change.index,
                )


class OverlayRegistry:
    """A view of ``base`` with pending changes on top (for a batch being built)."""

    def __init__(self, base: RegistryView) -> None:
        self._base = base
        self._pending = Registry()

    def key(self, key_id: KeyId) -> KeyRecord | None:
        """See :class:`RegistryView`."""
        return self._pending.key(key_id) or self._base.key(key_id)

    def participant(self, participant_id: str) -> ParticipantRecord | None:
        """See :class:`RegistryView`."""
        return self._pending.participant(participant_id) or self._base.participant(participant_id)

    def apply(self, changes: Sequence[RegistryChange]) -> None:
        """Stage changes; revocations of base keys copy the base record first."""
        for change in changes:
            if isinstance(change, RevokeKey) and self._pending.key(change.key_id) is None:
                base = self._base.key(change.key_id)
                if base is not None:
                    self._pending.keys[change.key_id] = base
        self._pending.apply(changes)


# ---------------------------------------------------------------------------
# Requests: what a participant signs to prove it holds a key.


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedRequest:
    """A participant's registry request object and its signature(s)."""

    request: dict[str, Any]
    signatures: dict[str, str]
    """Base64 signatures: ``{"key": ...}`` for enrolment, ``{"old": ..., "new": ...}`` for
    rotation."""

    def request_bytes(self) -> bytes:
        """Canonical bytes of the request object."""
        return canonical_bytes(self.request)

    def to_json(self) -> dict[str, Any]:
        """The object carried inside the operator's statement body."""
        return {"request": self.request, "signatures": dict(self.signatures)}


def _sign_request(signer: Signer, request: dict[str, Any]) -> str:
    return b64encode(signer.sign(REQUEST_DOMAIN + canonical_bytes(request)))


def build_enrolment_request(
    *,
    origin: str,
    participant_id: str,
    signer: Signer,
    time: str,
    profile: Mapping[str, Any] | None = None,
) -> SignedRequest:
    """A participant's request to be enrolled with ``signer``'s key, signed by it."""
    request: dict[str, Any] = {
        "key": signer.public.to_base64(),
        "origin": check_origin(origin),
        "participant": check_participant_id(participant_id),
        "profile": dict(profile or {}),
        "time": time,
        "type": "enrol",
    }
    _check_request(request, "enrol", "body.request")
    return SignedRequest(request=request, signatures={"key": _sign_request(signer, request)})


def build_rotation_request(
    *, origin: str, participant_id: str, old: Signer, new: Signer, time: str
) -> SignedRequest:
    """A rotation request from ``old`` to ``new``, signed by both keys."""
    request: dict[str, Any] = {
        "new_key": new.public.to_base64(),
        "old_key_id": old.key_id.hex(),
        "origin": check_origin(origin),
        "participant": check_participant_id(participant_id),
        "time": time,
        "type": "rotate",
    }
    _check_request(request, "rotate", "body.request")
    return SignedRequest(
        request=request,
        signatures={"new": _sign_request(new, request), "old": _sign_request(old, request)},
    )


def build_genesis(
    *, origin: str, log_signer: Signer, operator_request: SignedRequest, time: str
) -> SignedStatement:
    """Entry 0: signed by the log key, naming the log key and enrolling the operator."""
    body = {"log_key": log_signer.public.to_base64(), "operator": operator_request.to_json()}
    statement = Statement.build(
        origin=origin, kind=KIND_GENESIS, signer=log_signer.key_id, time=time, body=body
    )
    return sign_statement(log_signer, statement)


def build_enrolment(
    *, origin: str, operator: Signer, request: SignedRequest, time: str
) -> SignedStatement:
    """The operator's statement enrolling the participant of ``request``."""
    statement = Statement.build(
        origin=origin, kind=KIND_ENROL, signer=operator.key_id, time=time, body=request.to_json()
    )
    return sign_statement(operator, statement)


def build_rotation(
    *, origin: str, operator: Signer, request: SignedRequest, time: str
) -> SignedStatement:
    """The operator's statement committing a participant's key rotation."""
    statement = Statement.build(
        origin=origin, kind=KIND_ROTATE, signer=operator.key_id, time=time, body=request.to_json()
    )
    return sign_statement(operator, statement)


def build_revocation(
    *,
    origin: str,
    operator: Signer,
    participant_id: str,
    key_id: KeyId,
    reason: str,
    time: str,
) -> SignedStatement:
    """The operator's revocation of a participant key (lost, compromised, retired)."""
    body = {"key_id": key_id.hex(), "participant": participant_id, "reason": reason}
    statement = Statement.build(
        origin=origin, kind=KIND_REVOKE, signer=operator.key_id, time=time, body=body
    )
    return sign_statement(operator, statement)


# ---------------------------------------------------------------------------
# Rules: what a registry statement changes, given the registry before it.


def registry_changes(
    signed: SignedStatement,
    *,
    index: int,
    view: RegistryView,
    signer: KeyRecord | None,
) -> list[RegistryChange]:
    """Check a registry statement and return the changes it makes.

    Args:
        signed: the statement; its signature has already been checked.
        index: the log index the statement takes.
        view: the registry before this statement.
        signer: the registry record of the signing key (None only for genesis).

    Returns:
        The changes to apply; empty for statements of other kinds.

    Raises:
        StatementError / EncodingError / SignatureError: naming the field and rule.
    """
    statement = signed.statement
    kind = statement.kind
    if kind == KIND_GENESIS:
        return _genesis_changes(statement, index)
    if kind not in REGISTRY_KINDS:
        return []
    _require_operator(signer, view, kind)
    if kind == KIND_ENROL:
        return _enrol_changes(statement, index, view)
    if kind == KIND_ROTATE:
        return _rotate_changes(statement, index, view)
    return _revoke_changes(statement, index, view)


def _require_operator(signer: KeyRecord | None, view: RegistryView, kind: str) -> None:
    record = view.participant(signer.participant) if signer is not None else None
    if record is None or not record.operator:
        raise StatementError(
            f"{kind}: registry statements must be signed by the operator",
            code="not_operator",
            field="signer",
        )


def _genesis_changes(statement: Statement, index: int) -> list[RegistryChange]:
    if index != 0:
        raise StatementError(
            "genesis: only entry 0 may be a genesis statement",
            code="genesis_not_first",
            field="kind",
        )
    body = statement.body
    _exact_fields(body, {"log_key", "operator"}, "body")
    log_key = VerifyingKey.from_base64(_string(body, "log_key", "body.log_key"))
    if log_key.key_id != statement.signer:
        raise StatementError(
            "genesis: signer must be the key id of body.log_key",
            code="genesis_signer",
            field="signer",
        )
    request, key = _verified_enrol_request(body["operator"], statement, "body.operator")
    pid = request["participant"]
    return [
        AddParticipant(participant_id=pid, profile=request["profile"], index=index, operator=True),
        AddKey(key_id=key.key_id, participant=pid, public=key.raw, index=index),
    ]


def _enrol_changes(statement: Statement, index: int, view: RegistryView) -> list[RegistryChange]:
    request, key = _verified_enrol_request(statement.body, statement, "body")
    pid = request["participant"]
    if view.key(key.key_id) is not None:
        raise StatementError(
            "enrol: this key is already registered (keys are never reused)",
            code="key_exists",
            field="body.request.key",
        )
    changes: list[RegistryChange] = []
    if view.participant(pid) is None:
        changes.append(AddParticipant(participant_id=pid, profile=request["profile"], index=index))
    # An existing participant gets an extra key: the recovery path after a lost
    # key has been revoked and the holder's identity checked out of band.
    changes.append(AddKey(key_id=key.key_id, participant=pid, public=key.raw, index=index))
    return changes


def _rotate_changes(statement: Statement, index: int, view: RegistryView) -> list[RegistryChange]:
    body = statement.body
    _exact_fields(body, {"request", "signatures"}, "body")
    request = body["request"]
    if not isinstance(request, dict):
        raise EncodingError(
            "body.request: must be an object", code="bad_type", field="body.request"
        )
    _check_request(request, "rotate", "body.request")
    _same_origin(request, statement)
    sigs = _signatures(body, {"old", "new"})
    old_id = KeyId(check_hex_digest(request["old_key_id"], field="body.request.old_key_id"))
    new_key = VerifyingKey.from_base64(request["new_key"])
    old = view.key(old_id)
    if old is None or old.participant != request["participant"]:
        raise StatementError(
            "rotate: old_key_id is not a key of this participant",
            code="unknown_key",
            field="body.request.old_key_id",
        )
    if old.revoked_at is not None:
        raise StatementError(
            "rotate: old_key_id is already revoked",
            code="key_revoked",
            field="body.request.old_key_id",
        )
    if view.key(new_key.key_id) is not None:
        raise StatementError(
            "rotate: new_key is already registered", code="key_exists", field="body.request.new_key"
        )
    message = _request_message(request)
    _verify_request_signature(VerifyingKey.from_bytes(old.public), sigs["old"], message, "old")
    _verify_request_signature(new_key, sigs["new"], message, "new")
    return [
        RevokeKey(key_id=old_id, index=index, reason="rotated"),
        AddKey(key_id=new_key.key_id, participant=old.participant, public=new_key.raw, index=index),
    ]


def _revoke_changes(statement: Statement, index: int, view: RegistryView) -> list[RegistryChange]:
    body = statement.body
    _exact_fields(body, {"key_id", "participant", "reason"}, "body")
    pid = check_participant_id(body["participant"], field="body.participant")
    kid = KeyId(check_hex_digest(body["key_id"], field="body.key_id"))
    reason = _string(body, "reason", "body.reason")
    if len(reason) > MAX_REASON_CHARS:
        raise EncodingError(
            f"body.reason: at most {MAX_REASON_CHARS} characters",
            code="too_long",
            field="body.reason",
        )
    record = view.key(kid)
    if record is None or record.participant != pid:
        raise StatementError(
            "revoke: key_id is not a key of this participant",
            code="unknown_key",
            field="body.key_id",
        )
    if record.revoked_at is not None:
        raise StatementError(
            f"revoke: key already revoked at index {record.revoked_at}",
            code="key_revoked",
            field="body.key_id",
        )
    return [RevokeKey(key_id=kid, index=index, reason=reason)]


def _verified_enrol_request(
    carrier: Any, statement: Statement, path: str
) -> tuple[dict[str, Any], VerifyingKey]:
    if not isinstance(carrier, dict):
        raise EncodingError(f"{path}: must be an object", code="bad_type", field=path)
    _exact_fields(carrier, {"request", "signatures"}, path)
    request = carrier["request"]
    if not isinstance(request, dict):
        raise EncodingError(
            f"{path}.request: must be an object", code="bad_type", field=f"{path}.request"
        )
    _check_request(request, "enrol", f"{path}.request")
    _same_origin(request, statement)
    sigs = _signatures(carrier, {"key"}, path)
    key = VerifyingKey.from_base64(request["key"])
    _verify_request_signature(key, sigs["key"], _request_message(request), "key")
    return request, key


def _check_request(request: dict[str, Any], kind: str, path: str) -> None:
    fields = {
        "enrol": {"key", "origin", "participant", "profile", "time", "type"},
        "rotate": {"new_key", "old_key_id", "origin", "participant", "time", "type"},
    }[kind]
    _exact_fields(request, fields, path)
    if request["type"] != kind:
        raise EncodingError(
            f"{path}.type: must be {kind!r}", code="bad_request_type", field=f"{path}.type"
        )
    check_origin(request["origin"], field=f"{path}.origin")
    check_participant_id(request["participant"], field=f"{path}.participant")
    check_time(request["time"], field=f"{path}.time")
    if kind == "enrol":
        VerifyingKey.from_bytes(
            b64decode(_string(request, "key", f"{path}.key"), field=f"{path}.key")
        )
        profile = request["profile"]
        if not isinstance(profile, dict):
            raise EncodingError(
                f"{path}.profile: must be an object", code="bad_type", field=f"{path}.profile"
            )
        if len(canonical_bytes(profile)) > MAX_PROFILE_BYTES:
            raise EncodingError(
                f"{path}.profile: at most {MAX_PROFILE_BYTES} bytes",
                code="too_large",
                field=f"{path}.profile",
            )
    else:
        check_hex_digest(request["old_key_id"], field=f"{path}.old_key_id")
        b64decode(_string(request, "new_key", f"{path}.new_key"), field=f"{path}.new_key")


def _same_origin(request: dict[str, Any], statement: Statement) -> None:
    if request["origin"] != statement.origin:
        raise StatementError(
            "request origin differs from the statement's origin",
            code="wrong_origin",
            field="body.request.origin",
        )


def _signatures(carrier: dict[str, Any], names: set[str], path: str = "body") -> dict[str, bytes]:
    sigs = carrier["signatures"]
    if not isinstance(sigs, dict):
        raise EncodingError(
            f"{path}.signatures: must be an object", code="bad_type", field=f"{path}.signatures"
        )
    _exact_fields(sigs, names, f"{path}.signatures")
    return {
        name: b64decode(
            _string(sigs, name, f"{path}.signatures.{name}"), field=f"{path}.signatures.{name}"
        )
        for name in names
    }


def _request_message(request: dict[str, Any]) -> bytes:
    return REQUEST_DOMAIN + canonical_bytes(request)


def _verify_request_signature(
    key: VerifyingKey, signature: bytes, message: bytes, which: str
) -> None:
    try:
        key.verify(signature, message)
    except SignatureError as exc:
        raise SignatureError(
            f"request signature by the {which} key does not verify",
            code="bad_request_signature",
            field=f"body.signatures.{which}",
        ) from exc


def _exact_fields(obj: dict[str, Any], expected: set[str], path: str) -> None:
    unknown = sorted(set(obj) - expected)
    if unknown:
        raise EncodingError(
            f"{path}: unknown field {unknown[0]!r}",
            code="unknown_field",
            field=f"{path}.{unknown[0]}",
        )
    missing = sorted(expected - set(obj))
    if missing:
        raise EncodingError(
            f"{path}: missing field {missing[0]!r}",
            code="missing_field",
            field=f"{path}.{missing[0]}",
        )


def _string(obj: dict[str, Any], name: str, path: str) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise EncodingError(f"{path}: must be a string", code="bad_type", field=path)
    return value
