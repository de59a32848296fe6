"""Desk users: argon2 password hashes, adding and removing users, checking a login, the
limit on failed logins, and server-side sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults); the password itself is never
stored or logged. A login for an unknown email still spends the time of one verification,
so response time does not say which emails exist.

Guessing is limited: every failed login is recorded in the ledger (`desk_login_failures`,
shown to managers on the security page). After `ACCOUNT_FREE_FAILURES` failures for one
account (since its last good login) or `ADDRESS_FREE_FAILURES` from one address within
`FAILURE_WINDOW`, further logins are refused at once (`LoginLocked`, answered 429 with
Retry-After, no password checked) for a lockout that doubles with each further failure,
from `FIRST_LOCKOUT` up to `MAX_LOCKOUT`. Nothing sleeps: a locked login costs the server
one query.

A login creates a server-side session (`desk_sessions`): the cookie holds a random token,
the ledger its hash. Logout, a password change and removing the user revoke it, so a
saved cookie stops working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dunning.ledger import Ledger
from dunning.ledger.desk import (
    count_login_failures,
    create_desk_session,
    deactivate_desk_user,
    desk_user,
    record_login,
    record_login_failure,
    revoke_desk_session,
    save_desk_user,
    session_user,
)
from dunning.ledger.models import utcnow

ROLES = ("collector", "manager")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")

#: Failed logins allowed for one account (since its last good login) before a lockout.
ACCOUNT_FREE_FAILURES = 5
#: Failed logins allowed from one address (any account) before a lockout: higher, as an
#: office may share one address.
ADDRESS_FREE_FAILURES = 20
#: Failures older than this are forgotten.
FAILURE_WINDOW = timedelta(minutes=15)
FIRST_LOCKOUT = timedelta(seconds=30)
MAX_LOCKOUT = timedelta(minutes=15)


class LoginLocked(Exception):
    """Too many failed logins for this account or address: retry after `retry_after`
    seconds (the password was not checked)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class User:
    """Who is logged in: their email and role (collector | manager)."""

    email: str
    role: str

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


def normalize_email(email: str) -> str:
    """Emails are compared lower-case and without surrounding spaces."""
    return email.strip().lower()


def add_user(ledger: Ledger, email: str, password: str, role: str) -> bool:
    """Create a desk user, or reset an existing one's password and role; True if created.

    Raises:
        ValueError: a bad email, role, or a password shorter than 8 characters.
    """
    email = normalize_email(email)
    if "@" not in email or len(email) > 254:
        raise ValueError(f"email {email!r}: give an address like maria@example.com")
    if role not in ROLES:
        raise ValueError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password: use at least {MIN_PASSWORD} characters")
    # Resetting a password or role also ends the user's sessions (in the same transaction).
    created = save_desk_user(ledger, email, role=role, password_hash=_hasher.hash(password))
    ledger.record_event(
        "desk_user_added" if created else "desk_user_updated", actor="cli", email=email, role=role
    )
    return created


def remove_user(ledger: Ledger, email: str) -> bool:
    """Remove a desk user (kept inactive for the record) and end their sessions; False if
    there was no such active user."""
    email = normalize_email(email)
    removed = deactivate_desk_user(ledger, email)
    if removed:
        ledger.record_event("desk_user_removed", actor="cli", email=email)
    return removed


def authenticate(
    ledger: Ledger, email: str, password: str, address: str = "", now: datetime | None = None
) -> User | None:
    """The user if the email and password match an active desk user, else None.

    `address` is the client's IP address (per-address limit; "" skips it). A failure is
    recorded in the ledger.

    Raises:
        LoginLocked: too many recent failures for this account or address; the password
            was not checked.
    """
    email = normalize_email(email)
    now = now or utcnow()
    row = desk_user(ledger, email)
    wait = lockout_remaining(
        ledger, email, address, now, last_login=row.last_login if row else None
    )
    if wait:
        record_login_failure(ledger, email, address, "locked")
        raise LoginLocked(wait)
    if row is None or not row.active:
        _verify(_DUMMY_HASH, password)
        record_login_failure(ledger, email, address, "wrong_password")
        return None
    if not _verify(row.password_hash, password):
        record_login_failure(ledger, email, address, "wrong_password")
        return None
    rehashed = _hasher.hash(password) if _hasher.check_needs_rehash(row.password_hash) else None
    record_login(ledger, email, password_hash=rehashed)
    return User(email=row.email, role=row.role)


def lockout_remaining(
    ledger: Ledger,
    email: str,
    address: str,
    now: datetime | None = None,
    *,
    last_login: datetime | None = None,
) -> int:
    """Seconds until this account and address may try a login again (0: now); an empty
    `email` or `address` is not checked.

    The account's failures count since its last good login (`last_login`, UTC), the
    address's within `FAILURE_WINDOW`; each failure past the free ones doubles the lockout,
    which runs from the latest failure.
    """
    now = now or utcnow()
    since = now - FAILURE_WINDOW
    if last_login is not None:
        last_login = last_login if last_login.tzinfo else last_login.replace(tzinfo=now.tzinfo)
        since = max(since, last_login)
    checks = []
    if email:
        checks.append(
            (count_login_failures(ledger, since=since, email=email), ACCOUNT_FREE_FAILURES)
        )
    if address:
        checks.append(
            (
                count_login_failures(ledger, since=now - FAILURE_WINDOW, address=address),
                ADDRESS_FREE_FAILURES,
            )
        )
    wait = 0.0
    for failures, free in checks:
        if failures.count < free or failures.latest is None:
            continue
        lockout = min(FIRST_LOCKOUT * 2 ** min(failures.count - free, 20), MAX_LOCKOUT)
        wait = max(wait, (failures.latest + lockout - now).total_seconds())
    return max(0, int(wait + 0.999))


# -- sessions ----------------------------------------------------------------------------


def start_session(ledger: Ledger, user: User, hours: int) -> str:
    """A new server-side session for the user; returns the token the cookie carries."""
    token = secrets.token_urlsafe(32)
    create_desk_session(ledger, _session_id(token), user.email, utcnow() + timedelta(hours=hours))
    return token


def session_active_user(ledger: Ledger, token: str) -> User | None:
    """The user of a live session (not revoked, not expired, user still active)."""
    if not token or not isinstance(token, str):
        return None
    row = session_user(ledger, _session_id(token))
    return User(email=row.email, role=row.role) if row is not None else None


def end_session(ledger: Ledger, token: str) -> None:
    """Revoke the session (logout): its cookie no longer works, even if saved."""
    if token and isinstance(token, str):
        revoke_desk_session(ledger, _session_id(token))


def _session_id(token: str) -> str:
    # Only the hash is stored: a copy of the ledger holds no working cookie.
    return hashlib.sha256(token.encode()).hexdigest()


def active_user(ledger: Ledger, email: str) -> User | None:
    """The user behind a session, if still active (a deactivated user is logged out)."""
    row = desk_user(ledger, email)
    if row is None or not row.active:
        return None
    return User(email=row.email, role=row.role)


def _verify(digest: str, password: str) -> bool:
    try:
        return _hasher.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False
