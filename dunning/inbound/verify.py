"""Signature checks of incoming webhooks: each provider's scheme, constant-time compares.

- Meta (WhatsApp): `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body keyed
  with the app secret.
- Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, HMAC-SHA256 of `"{t}.{body}"` with
  the endpoint's signing secret; refused when `t` is more than the tolerance (300 s) old.
- Our generic ERP webhook: `X-Dunning-Signature: sha256=<hex>`, HMAC-SHA256 of the raw body
  with the shared secret (the same scheme as Meta's, so ERPs can reuse their code).
"""

from __future__ import annotations

import hashlib
import hmac
import time


class SignatureError(Exception):
    """The request is not from the provider (missing, malformed or wrong signature)."""


class StaleSignature(SignatureError):
    """A correct signature made too long ago: a replay, or a badly wrong clock."""


def hmac_hex(secret: str, data: bytes) -> str:
    """Hex HMAC-SHA256 of `data` keyed with `secret` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def verify_sha256_header(body: bytes, header: str | None, secret: str, name: str) -> None:
    """Check a `sha256=<hex>` header (Meta's `X-Hub-Signature-256`, our ERP header)."""
    if not header:
        raise SignatureError(f"no {name} header")
    given = header.strip()
    if not given.startswith("sha256="):
        raise SignatureError(f"{name} is not of the form sha256=<hex>")
    if not _same(hmac_hex(secret, body), given.removeprefix("sha256=")):
        raise SignatureError(f"{name} does not match the body")


def verify_stripe(
    body: bytes, header: str | None, secret: str, *, tolerance: int = 300, now: float | None = None
) -> int:
    """Check a `Stripe-Signature` header; returns its timestamp.

    Raises `StaleSignature` when the timestamp is more than `tolerance` seconds old (the
    signature matched: someone replays a real call) or as far in the future (a signature
    made for later use), and `SignatureError` otherwise.
    """
    if not header:
        raise SignatureError("no Stripe-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    try:
        t = int(timestamp or "")
    except ValueError:
        raise SignatureError("Stripe-Signature has no valid t= timestamp") from None
    if not signatures:
        raise SignatureError("Stripe-Signature has no v1 signature")
    expected = hmac_hex(secret, f"{t}.".encode() + body)
    if not any(_same(expected, s) for s in signatures):
        raise SignatureError("Stripe-Signature does not match the body")
    age = (time.time() if now is None else now) - t
    if age > tolerance:
        raise StaleSignature(f"Stripe-Signature timestamp is {int(age)} s old (limit {tolerance})")
    if -age > tolerance:
        raise StaleSignature(f"Stripe-Signature timestamp is {int(-age)} s in the future")
    return t


def _same(expected: str, given: str) -> bool:
    """Constant-time compare of our hex digest with a header's value. A header may carry
    any byte (Starlette decodes headers as Latin-1), and `hmac.compare_digest` refuses
    non-ASCII text with a TypeError: such a value is simply not a match."""
    if not given.isascii():
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))


def stripe_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid `Stripe-Signature` for `body` (for tests and the demo's sample events)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={hmac_hex(secret, f'{t}.'.encode() + body)}"
