"""The one table from errors to HTTP: status, problem type and RFC 9457 body.

Every error response of the API is ``application/problem+json`` (RFC 9457)::

    {"type": "https://mandi.example/problems/<code>", "title": ..., "status": ...,
     "detail": ..., "code": "<code>", "field": "<json path or null>"}

``code`` is the stable, machine-readable reason: the ledger's own
:attr:`~ledger.errors.LedgerError.code` for refusals by the ledger, or one of the
API's codes below for HTTP conditions (limits, route/statement mismatches,
request validation). :data:`PROBLEMS` maps each known code to its status; a code
not in the table gets the status of its exception class (:data:`_BY_CLASS`).
5xx bodies never carry internals: the detail is a fixed sentence, and the cause
goes to the server log only.

This module decides nothing about what may be appended (that is the ledger's);
it only translates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import Problem
from ledger import (
    ConflictError,
    EncodingError,
    LedgerError,
    NotFoundError,
    ProofError,
    RuleError,
    SignatureError,
    StatementError,
    StorageError,
    VerificationError,
)

__all__ = [
    "PROBLEMS",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "ApiError",
    "ProblemKind",
    "install_problem_handlers",
    "problem_body",
    "problem_for",
    "problem_response",
    "problem_responses",
    "status_for",
]

log = logging.getLogger("mandi.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://mandi.example/problems/"


@dataclass(frozen=True, slots=True)
class ProblemKind:
    """The HTTP status and short title of one problem code."""

    status: int
    title: str


PROBLEMS: dict[str, ProblemKind] = {
    # -- 400: the request or the statement is malformed --------------------
    "invalid_json": ProblemKind(400, "Request body is not valid JSON"),
    "invalid_utf8": ProblemKind(400, "Request body is not valid UTF-8"),
    "duplicate_key": ProblemKind(400, "JSON object with a repeated member name"),
    "float_not_allowed": ProblemKind(400, "JSON number with a fraction or exponent"),
    "non_finite_number": ProblemKind(400, "JSON NaN or Infinity"),
    "integer_out_of_range": ProblemKind(400, "JSON integer beyond 2^53-1"),
    "lone_surrogate": ProblemKind(400, "String with an unpaired UTF-16 surrogate"),
    "too_deep": ProblemKind(400, "JSON nested deeper than the limit"),
    "not_canonical": ProblemKind(400, "Statement bytes are not RFC 8785 canonical JSON"),
    "not_an_object": ProblemKind(400, "Statement is not a JSON object"),
    "bad_base64": ProblemKind(400, "Not canonical padded base64"),
    "bad_signature_length": ProblemKind(400, "Signature is not 64 bytes"),
    "unknown_field": ProblemKind(400, "Unknown field"),
    "missing_field": ProblemKind(400, "Missing field"),
    "kind_mismatch": ProblemKind(400, "Statement kind does not match the route"),
    "participant_mismatch": ProblemKind(400, "Participant in the statement differs from the path"),
    "bad_proof_request": ProblemKind(400, "Proof or range parameters out of range"),
    "out_of_range": ProblemKind(400, "Parameter out of range"),
    "page_too_large": ProblemKind(400, "Page larger than the maximum page size"),
    "bad_lot_id": ProblemKind(400, "Not a canonical lot id"),
    "depth_too_large": ProblemKind(400, "Trace depth beyond the limit"),
    # -- 403: the signature does not authorise the statement ----------------
    "bad_signature": ProblemKind(403, "Signature does not verify"),
    "bad_request_signature": ProblemKind(403, "Registry request signature does not verify"),
    "unknown_signer": ProblemKind(403, "Signer is not a registered key"),
    "key_revoked": ProblemKind(403, "Key is revoked"),
    "not_operator": ProblemKind(403, "Registry statements must be signed by the operator"),
    # -- 404, 409 -----------------------------------------------------------
    "not_found": ProblemKind(404, "Not found"),
    "no_cosigned_checkpoint": ProblemKind(404, "No checkpoint has that many cosignatures yet"),
    "method_not_allowed": ProblemKind(405, "Method not allowed"),
    "key_exists": ProblemKind(409, "Key is already registered"),
    "conflict": ProblemKind(409, "Concurrent append conflict; retry"),
    # -- 413, 415: limits -------------------------------------------------
    "body_too_large": ProblemKind(413, "Request body larger than the limit"),
    "too_large": ProblemKind(413, "Statement or field larger than its limit"),
    "unsupported_media_type": ProblemKind(415, "Unsupported content type or encoding"),
    # -- 422: well-formed but refused ------------------------------------
    "validation_failed": ProblemKind(422, "Request does not match the schema"),
    "batch_too_large": ProblemKind(422, "Batch holds more statements than the limit"),
    "wrong_origin": ProblemKind(422, "Statement names another log's origin"),
    "unknown_key": ProblemKind(422, "Key is not a key of this participant"),
    # -- 5xx --------------------------------------------------------------
    "internal_error": ProblemKind(500, "Internal server error"),
    "storage_error": ProblemKind(503, "Ledger database unavailable"),
    "schema_error": ProblemKind(503, "Ledger database not at the expected schema"),
    "not_ready": ProblemKind(503, "Service not ready"),
}
"""Every problem code the API documents, with its HTTP status and title."""

_BY_CLASS: tuple[tuple[type[LedgerError], ProblemKind], ...] = (
    (NotFoundError, ProblemKind(404, "Not found")),
    (ConflictError, ProblemKind(409, "Conflict")),
    (StorageError, ProblemKind(503, "Ledger database unavailable")),
    (SignatureError, ProblemKind(403, "Signature does not verify")),
    (ProofError, ProblemKind(400, "Bad proof request")),
    (VerificationError, ProblemKind(400, "Verification failed")),
    (EncodingError, ProblemKind(400, "Malformed input")),
    (StatementError, ProblemKind(422, "Statement refused")),
    (RuleError, ProblemKind(422, "Refused by a supply-chain rule")),
)
"""Fallback for codes not in :data:`PROBLEMS`: most specific class first."""

_GENERIC_DETAIL = {
    500: "An internal error occurred. It has been logged.",
    503: "The ledger's database is unavailable. Retry later.",
}


class ApiError(Exception):
    """An HTTP-level refusal raised by the API itself (a limit, a route mismatch).

    Its status comes from :data:`PROBLEMS`, like every other code's.
    """

    def __init__(self, code: str, detail: str, *, field: str | None = None) -> None:
        if code not in PROBLEMS:
            raise ValueError(f"undocumented problem code {code!r}")
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field


def problem_for(exc: LedgerError) -> ProblemKind:
    """The status and title of a ledger error (by code, else by class)."""
    known = PROBLEMS.get(exc.code)
    if known is not None:
        return known
    for cls, kind in _BY_CLASS:
        if isinstance(exc, cls):
            return kind
    return ProblemKind(400, "Refused")


def status_for(code: str) -> int:
    """The HTTP status of a documented code."""
    return PROBLEMS[code].status


def problem_body(
    *, status: int, code: str, title: str, detail: str, field: str | None, **extra: Any
) -> dict[str, Any]:
    """The RFC 9457 members plus Mandi's ``code`` and ``field`` (and any ``extra``)."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "field": field,
        "rule": code,
    }
    body.update(extra)
    return body


def problem_response(
    code: str,
    detail: str,
    *,
    field: str | None = None,
    status: int | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A ``application/problem+json`` response for ``code``."""
    kind = PROBLEMS.get(code)
    status = status if status is not None else (kind.status if kind else 400)
    title = title if title is not None else (kind.title if kind else "Refused")
    if status >= 500:
        detail = _GENERIC_DETAIL.get(status, _GENERIC_DETAIL[500])
    if status == 503:
        headers = {"Retry-After": "1", **(headers or {})}
    body = problem_body(status=status, code=code, title=title, detail=detail, field=field, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_STATUS_TEXT = {
    400: "Malformed request or statement",
    403: "Signature does not authorise the statement",
    404: "Not found",
    409: "Conflict with the log's state",
    413: "A size limit was exceeded",
    415: "Unsupported content type or encoding",
    422: "Well-formed but refused",
    500: "Internal error (no details are disclosed)",
    503: "Database unavailable or not ready",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries (problem+json) for these statuses, plus 500 and 503."""
    return {
        status: {"model": Problem, "description": _STATUS_TEXT[status]}
        for status in sorted({*statuses, 500, 503})
    }


# ---------------------------------------------------------------------------
# Exception handlers


def _ledger_error(_request: Request, error: Exception) -> JSONResponse:
    exc = cast(LedgerError, error)
    kind = problem_for(exc)
    if kind.status >= 500:
        log.error("ledger storage failure: %s: %s", type(exc).__name__, exc)
        code = exc.code if exc.code in PROBLEMS else "storage_error"
        return problem_response(code, "", status=kind.status, title=kind.title)
    extra: dict[str, Any] = {}
    if isinstance(exc, RuleError):
        extra = {"lot": exc.lot, "numbers": exc.numbers}
    return problem_response(
        exc.code, exc.message, field=exc.field, status=kind.status, title=kind.title, **extra
    )


def _api_problem(_request: Request, error: Exception) -> JSONResponse:
    exc = cast(ApiError, error)
    return problem_response(exc.code, exc.detail, field=exc.field)


_PYDANTIC_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "json_invalid": "invalid_json",
    "too_long": "too_long",
    "too_short": "too_short",
    "string_pattern_mismatch": "bad_format",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "greater_than": "out_of_range",
    "less_than": "out_of_range",
}


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("body", "items", 3, "signature")`` -> ``items[3].signature``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, error)
    errors = []
    for item in exc.errors():
        errors.append(
            {
                "field": field_path(item.get("loc", ())),
                "code": _PYDANTIC_CODES.get(str(item.get("type")), "bad_value"),
                "detail": str(item.get("msg", "")),
            }
        )
    first = errors[0] if errors else {"field": "", "code": "validation_failed", "detail": ""}
    detail = f"{first['field'] or 'request'}: {first['detail']}"
    return problem_response(
        "validation_failed",
        detail,
        field=first["field"] or None,
        rule=first["code"],
        errors=errors,
    )


def _http_error(_request: Request, error: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, error)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem_response(
        code,
        str(exc.detail),
        status=exc.status_code,
        title=str(exc.detail),
        headers=dict(exc.headers or {}),
    )


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response("internal_error", "")


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error through the table above."""
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(ApiError, _api_problem)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
