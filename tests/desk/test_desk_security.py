"""Attacks on the collections desk (issue 16), each first reproduced, then shown harmless,
against the desk under a real uvicorn on loopback: guessing passwords, reusing a saved
cookie after logout / password change / removal, a collector ending a manager's dispute,
framing and sniffing (headers), and parameters that used to answer 500."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest

from apps.desk import auth, decisions
from apps.desk.app import SESSION_COOKIE, DeskConfig
from apps.desk.auth import User, add_user, remove_user
from dunning.ledger import Ledger
from dunning.ledger.models import DeskLoginFailure, Pause
from tests.desk.helpers import COLLECTOR, MANAGER, csrf, login, serve

TODAY = date(2026, 12, 9)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Desk:
    url: str
    ledger: Ledger


@pytest.fixture
def desk(tmp_path) -> Iterator[Desk]:
    """Two invoices, a manager and a collector, and the desk served by uvicorn."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger(url)
    ledger.sync_invoices(
        pd.DataFrame(
            {
                "invoice_number": ["F-1", "F-2"],
                "customer_id": ["C1", "C2"],
                "customer_name": ["Ebro", "Beta"],
                "email": ["a@ebro.example", "b@beta.example"],
                "amount_due": [100.0, 200.0],
                "amount_total": [100.0, 200.0],
                "due_date": [date(2026, 11, 1), date(2026, 11, 1)],
                "status": ["open", "open"],
                "currency": ["EUR", "EUR"],
                "phone": ["", ""],
            }
        )
    )
    ledger.open_task(key="F-1:call", title="Call", invoice_number="F-1", customer_id="C1",
                     assignee="account_owner", due_on=TODAY)  # fmt: skip
    add_user(ledger, *MANAGER, role="manager")
    add_user(ledger, *COLLECTOR, role="collector")
    with serve(DeskConfig(ledger_url=url)) as desk_url:
        yield Desk(desk_url, ledger)


def _client(desk: Desk) -> httpx.Client:
    return httpx.Client(base_url=desk.url, follow_redirects=False, timeout=30)


# -- 8: guessing passwords ---------------------------------------------------------------------


def test_password_guessing_is_locked_out_at_once_recorded_and_shown_to_managers(desk):
    with _client(desk) as attacker:
        answers = [login(attacker, (COLLECTOR[0], f"guess-{n:04d}")).status_code for n in range(8)]
        # The free failures answer 401; then the account is locked: 429 at once, even for
        # the right password (not checked while locked).
        assert answers[: auth.ACCOUNT_FREE_FAILURES] == [401] * auth.ACCOUNT_FREE_FAILURES
        assert set(answers[auth.ACCOUNT_FREE_FAILURES :]) == {429}
        started = time.monotonic()
        locked = login(attacker, COLLECTOR)
        assert locked.status_code == 429 and time.monotonic() - started < 2
        assert int(locked.headers["Retry-After"]) > 0
        assert "Demasiados intentos fallidos" in locked.text
    failures = desk.ledger.frame(DeskLoginFailure)
    assert (failures["email"] == COLLECTOR[0]).sum() == 9
    assert set(failures["reason"]) == {"wrong_password", "locked"}
    assert set(failures["address"]) == {"127.0.0.1"}

    with _client(desk) as manager:
        # Another account from the same address is not locked by one account's failures.
        assert login(manager, MANAGER).status_code == 303
        page = manager.get("/security")
        assert page.status_code == 200
        assert COLLECTOR[0] in page.text and "127.0.0.1" in page.text
    with _client(desk) as other:
        # The collector's own account stays locked for its lockout.
        assert login(other, COLLECTOR).status_code == 429


def test_lockout_grows_with_each_failure_and_ends(desk):
    ledger, email = desk.ledger, "someone@acme.example"
    for _ in range(auth.ACCOUNT_FREE_FAILURES):
        assert auth.authenticate(ledger, email, "wrong-pass", "10.9.9.9") is None
    first = auth.lockout_remaining(ledger, email, "")
    assert 0 < first <= auth.FIRST_LOCKOUT.total_seconds()
    later = pd.Timestamp.now(tz="UTC").to_pydatetime() + auth.FIRST_LOCKOUT
    assert auth.authenticate(ledger, email, "wrong-pass", now=later) is None  # lock ended
    second = auth.lockout_remaining(ledger, email, "", later)
    assert second > first  # doubled
    assert auth.lockout_remaining(ledger, email, "", later + auth.MAX_LOCKOUT) == 0


def test_guessing_many_accounts_from_one_address_is_locked(desk):
    for n in range(auth.ADDRESS_FREE_FAILURES):
        auth.authenticate(desk.ledger, f"user{n}@acme.example", "wrong-pass", "10.1.2.3")
    with pytest.raises(auth.LoginLocked):
        auth.authenticate(desk.ledger, *MANAGER, "10.1.2.3")
    assert auth.authenticate(desk.ledger, *MANAGER, "10.1.2.4") == User(MANAGER[0], "manager")


# -- 9: sessions are revocable -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["logout", "password_change", "user_removed"])
def test_a_saved_cookie_stops_working(desk, how):
    with _client(desk) as browser:
        assert login(browser, COLLECTOR).status_code == 303
        saved = browser.cookies[SESSION_COOKIE]
        assert browser.get("/tasks").status_code == 200
        if how == "logout":
            token = csrf(browser.get("/tasks").text)
            assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
        elif how == "password_change":
            add_user(desk.ledger, COLLECTOR[0], "a-new-password", role="collector")
        else:
            assert remove_user(desk.ledger, COLLECTOR[0])
    with _client(desk) as thief:
        thief.cookies.set(SESSION_COOKIE, saved)
        replay = thief.get("/tasks")
        assert replay.status_code == 303 and "/login" in replay.headers["location"]


def test_remove_user_command_ends_sessions(desk):
    cmd = [sys.executable, "-m", "apps.cli", "desk", "removeuser", COLLECTOR[0],
           "--ledger", desk.ledger.url]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert f"removed {COLLECTOR[0]}" in done.stdout
    assert auth.authenticate(desk.ledger, *COLLECTOR) is None


# -- 10: only a manager ends a dispute -----------------------------------------------------------


def test_a_collector_cannot_end_a_managers_dispute(desk):
    ledger = desk.ledger
    ledger.add_pause("dispute", invoice_number="F-1", customer_id="C1", reason="manager: legal")
    ledger.add_pause("hold", invoice_number="F-1", customer_id="C1", reason="call back")
    collector = User(COLLECTOR[0], "collector")
    # A clear refusal, and nothing ended: a dispute stops these reminders.
    with pytest.raises(decisions.ManagerOnly, match="only a manager can resume"):
        decisions.resume(
            ledger, collector, customer_id="C1", invoice_number="F-1", reason="customer says ok"
        )
    assert sorted(ledger.frame(Pause, active=True)["kind"]) == ["dispute", "hold"]
    ended = decisions.resume(
        ledger, User(MANAGER[0], "manager"), customer_id="C1", invoice_number="F-1", reason="ok"
    )
    assert ended == 2 and ledger.frame(Pause, active=True).empty


# -- 12: headers and bad parameters --------------------------------------------------------------


def test_every_answer_carries_the_security_headers_and_bad_parameters_are_400(desk):
    with _client(desk) as browser:
        answers = [browser.get("/login"), browser.get("/tasks"), browser.get("/healthz")]
        assert login(browser, MANAGER).status_code == 303
        answers += [browser.get("/tasks"), browser.get("/customer?id=C1"), browser.get("/nope")]
        for answer in answers:
            headers = answer.headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert "script-src 'none'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
            assert headers["cache-control"] == "no-store"
        for path in (
            "/tasks?page=1e20",
            "/tasks?page=99999999999999999999999",
            "/tasks?page=-1",
            "/portfolio?as_of=0001-01-01",
            "/portfolio?as_of=9999-12-31",
            "/portfolio?as_of=yesterday",
            "/portfolio/aging.png?as_of=0001-01-01",
        ):
            answer = browser.get(path)
            assert answer.status_code == 400, (path, answer.status_code)
            assert ("page" if "page=" in path else "as_of") in answer.text
        assert browser.get("/tasks?page=2").status_code == 200
    with _client(desk) as collector:
        assert login(collector, COLLECTOR).status_code == 303
        assert collector.get("/security").status_code == 403


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sessions_and_failures_on_both_databases(backend, request, tmp_path):
    url = f"sqlite:///{tmp_path}/l.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    ledger = Ledger(url)
    add_user(ledger, *COLLECTOR, role="collector")
    user = User(COLLECTOR[0], "collector")
    token = auth.start_session(ledger, user, hours=12)
    assert auth.session_active_user(ledger, token) == user
    assert auth.session_active_user(ledger, token + "x") is None
    auth.end_session(ledger, token)
    assert auth.session_active_user(ledger, token) is None
    expired = auth.start_session(ledger, user, hours=0)
    assert auth.session_active_user(ledger, expired) is None
    for _ in range(auth.ACCOUNT_FREE_FAILURES):
        assert auth.authenticate(ledger, COLLECTOR[0], "wrong-pass", "10.0.0.1") is None
    with pytest.raises(auth.LoginLocked) as locked:
        auth.authenticate(ledger, *COLLECTOR, "10.0.0.2")
    assert 0 < locked.value.retry_after <= auth.FIRST_LOCKOUT.total_seconds()
