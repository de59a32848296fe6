"""Desk users: argon2 password hashes, adding users, checking a login.

Passwords are hashed with argon2id (argon2-cffi's defaults); the password itself is never
stored or logged. A login for an unknown email still spends the time of one verification,
so response time does not say which emails exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dunning.ledger import Ledger
from dunning.ledger.desk import desk_user, record_login, save_desk_user

ROLES = ("collector", "manager")
MIN_PASSWORD = 8

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")


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
    created = save_desk_user(ledger, email, role=role, password_hash=_hasher.hash(password))
    ledger.record_event(
        "desk_user_added" if created else "desk_user_updated", actor="cli", email=email, role=role
    )
    return created


def authenticate(ledger: Ledger, email: str, password: str) -> User | None:
    """The user if the email and password match an active desk user, else None."""
    email = normalize_email(email)
    row = desk_user(ledger, email)
    if row is None or not row.active:
        _verify(_DUMMY_HASH, password)
        return None
    if not _verify(row.password_hash, password):
        return None
    rehashed = _hasher.hash(password) if _hasher.check_needs_rehash(row.password_hash) else None
    record_login(ledger, email, password_hash=rehashed)
    return User(email=row.email, role=row.role)


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
