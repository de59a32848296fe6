"""CSRF protection: one random token per session, required in every form that changes
anything (the synchronizer-token pattern).

The token lives in the signed session cookie (HttpOnly, SameSite=Lax); every POST must carry
it in the `csrf_token` field. A forged form from another site cannot read it, so it is
refused with 403.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

FIELD = "csrf_token"


def session_token(session: dict[str, Any]) -> str:
    """The session's token, created on first use."""
    token = session.get(FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[FIELD] = token
    return token


def valid(session: Mapping[str, Any], form: Mapping[str, Any]) -> bool:
    """True if the form carries the session's token (compared in constant time)."""
    expected = session.get(FIELD) or ""
    given = form.get(FIELD) or ""
    if not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
