"""Baseline phase: the raw rates of this machine, one core, measured in the same run.

Every ledger figure is set next to these: Ed25519 verifications/s with
``cryptography`` (the ledger's verifier) and with PyNaCl/libsodium over the very
same messages and signatures, Ed25519 signs/s, SHA-256 of 300 bytes/s, and
``rfc8785.dumps`` of a typical statement/s (the cost the audit must avoid paying
per entry). The messages are the signing inputs of synthetic harvest statements
(about 300 bytes each; the console prints the sizes): a few thousand distinct
signatures by the demo producer keys, so no input repeats back to back.

Calls go straight to the libraries (no ledger wrappers); the loop is a plain
Python ``for`` over pre-built tuples, whose overhead is part of what a Python
verifier pays too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import nacl.signing
import rfc8785
from bench_core import BenchContext, BenchError, Phase, best_rate
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from client.demo import DEMO_PARTICIPANTS, demo_signer, synthetic_statements
from ledger.keys import Signer
from ledger.statements import SignedStatement

__all__ = ["BASELINE_ORIGIN", "PHASES", "VERIFY_BASELINE"]

BASELINE_ORIGIN = "bench.mandi.example/log"
VERIFY_BASELINE = "verify.cryptography"
"""The figure every ledger rate is divided by: single-core ``cryptography`` verify/s."""

_TIME = "2026-01-01T00:00:00Z"


def run_baselines(ctx: BenchContext) -> None:
    """Measure the raw rates and record them (``verify.cryptography`` first)."""
    cfg = ctx.config
    signed = list(synthetic_statements(origin=BASELINE_ORIGIN, count=cfg.signatures, time=_TIME))
    messages = [s.statement.signing_input() for s in signed]
    ctx.say(
        f"  {len(signed)} distinct signatures over messages of "
        f"{min(map(len, messages))}-{max(map(len, messages))} bytes"
    )

    crypto_items, nacl_items = _verify_items(signed)
    _check_same_answers(crypto_items, nacl_items)

    def crypto_pass() -> int:
        for key, signature, message in crypto_items:
            key.verify(signature, message)
        return len(crypto_items)

    def nacl_pass() -> int:
        for key, signature, message in nacl_items:
            key.verify(message, signature)
        return len(nacl_items)

    best, median = _measure(ctx, "verify with cryptography", crypto_pass)
    ctx.record(
        VERIFY_BASELINE,
        best,
        "verifications/s",
        note=f"Ed25519PublicKey.verify, 1 core; best of {cfg.repeats} (median {median:,.0f})",
    )
    best, median = _measure(ctx, "verify with PyNaCl", nacl_pass)
    ctx.record(
        "verify.pynacl",
        best,
        "verifications/s",
        baseline=VERIFY_BASELINE,
        note=f"nacl VerifyKey.verify (libsodium), same messages; median {median:,.0f}",
    )

    private = {
        kid: Ed25519PrivateKey.from_private_bytes(k.seed()) for kid, k in _demo_keys().items()
    }
    sign_items = [(private[s.statement.signer], m) for s, m in zip(signed, messages, strict=True)]

    def sign_pass() -> int:
        for key, message in sign_items:
            key.sign(message)
        return len(sign_items)

    best, median = _measure(ctx, "sign with cryptography", sign_pass)
    ctx.record(
        "sign.cryptography",
        best,
        "signatures/s",
        baseline=VERIFY_BASELINE,
        note=f"Ed25519PrivateKey.sign, same messages; median {median:,.0f}",
    )

    blocks = [m[:300].ljust(300, b" ") for m in messages]

    def sha_pass() -> int:
        for block in blocks:
            hashlib.sha256(block).digest()
        return len(blocks)

    best, median = _measure(ctx, "SHA-256 of 300 bytes", sha_pass)
    ctx.record(
        "sha256.300B",
        best,
        "hashes/s",
        baseline=VERIFY_BASELINE,
        note=f"hashlib.sha256(300 bytes).digest(); median {median:,.0f}",
    )

    objects = [json.loads(s.statement.raw) for s in signed[:256]]
    if any(
        bytes(rfc8785.dumps(o)) != s.statement.raw for o, s in zip(objects, signed, strict=False)
    ):
        raise BenchError("rfc8785.dumps does not reproduce the canonical statements")

    def jcs_pass() -> int:
        for obj in objects:
            rfc8785.dumps(obj)
        return len(objects)

    best, median = _measure(ctx, "rfc8785.dumps of a statement", jcs_pass)
    ctx.record(
        "rfc8785.dumps",
        best,
        "statements/s",
        baseline=VERIFY_BASELINE,
        note=f"re-canonicalising a {len(signed[0].statement.raw)}-byte statement; "
        f"median {median:,.0f}",
    )


_CryptoItem = tuple[Ed25519PublicKey, bytes, bytes]
_NaclItem = tuple[nacl.signing.VerifyKey, bytes, bytes]


def _verify_items(signed: list[SignedStatement]) -> tuple[list[_CryptoItem], list[_NaclItem]]:
    """The same (key, signature, message) triples for both libraries; keys loaded once."""
    publics = {kid: signer.public.raw for kid, signer in _demo_keys().items()}
    crypto_keys = {kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in publics.items()}
    nacl_keys = {kid: nacl.signing.VerifyKey(raw) for kid, raw in publics.items()}
    crypto_items: list[_CryptoItem] = []
    nacl_items: list[_NaclItem] = []
    for s in signed:
        message = s.statement.signing_input()
        crypto_items.append((crypto_keys[s.statement.signer], s.signature, message))
        nacl_items.append((nacl_keys[s.statement.signer], s.signature, message))
    return crypto_items, nacl_items


def _check_same_answers(crypto_items: list[_CryptoItem], nacl_items: list[_NaclItem]) -> None:
    """Both libraries accept every signature and reject a flipped one (outside the timing)."""
    for (ckey, signature, message), (nkey, _, _) in zip(crypto_items, nacl_items, strict=True):
        ckey.verify(signature, message)
        nkey.verify(message, signature)
    ckey, signature, message = crypto_items[0]
    nkey = nacl_items[0][0]
    bad = bytes([signature[0] ^ 1]) + signature[1:]
    for check in (lambda: ckey.verify(bad, message), lambda: nkey.verify(message, bad)):
        try:
            check()
        except Exception:  # noqa: BLE001, S112 - either library's rejection is the expected path
            continue
        raise BenchError("a tampered signature verified")


def _demo_keys() -> dict[bytes, Signer]:
    """The demo producers' keys by key id (the signers of the synthetic statements)."""
    pids = [pid for pid, profile in DEMO_PARTICIPANTS if profile["role"] == "producer"]
    return {demo_signer(pid).key_id: demo_signer(pid) for pid in pids}


def _measure(ctx: BenchContext, what: str, one_pass: Callable[[], int]) -> tuple[float, float]:
    ctx.say(f"  {what} ...")
    return best_rate(one_pass, min_seconds=ctx.config.min_seconds, repeats=ctx.config.repeats)


PHASES = (
    Phase(
        name="baselines",
        title="raw single-core rates: Ed25519 verify/sign, SHA-256, rfc8785",
        run=run_baselines,
    ),
)
