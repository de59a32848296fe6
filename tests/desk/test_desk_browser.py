"""The collections desk in a real headless Chromium over a ledger a real sweep filled."""

from __future__ import annotations

from datetime import datetime

import httpx
import sqlalchemy as sa

from dunning.ledger.models import HumanTask, Pause
from tests.desk.conftest import COLLECTOR, MANAGER, XSS_NAME, login, shot


def _mails_to(desk, address: str) -> int:
    return sum(1 for m in desk.sink.messages() if address in m["To"])


def test_without_login_every_page_redirects_and_every_action_is_401(desk):
    with httpx.Client(base_url=desk.url, follow_redirects=False) as client:
        for path in ("/", "/tasks", "/tasks/1", "/customer?id=C1", "/search?q=Ebro", "/portfolio"):
            r = client.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login?next="), path
        for path in ("/tasks/1/close", "/customer/pause", "/customer/resume", "/logout"):
            r = client.post(path, data={"customer_id": "C1", "reason": "x", "outcome": "paid"})
            assert r.status_code == 401, path
        assert client.get("/portfolio/aging.png").status_code == 303
    with desk.ledger.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Pause)).scalar() == 0


def test_wrong_password_is_refused(desk, page):
    page.goto(f"{desk.url}/login")
    page.fill("#email", MANAGER[0])
    page.fill("#password", "not-the-password")
    page.click("form[action='/login'] button[type=submit]")
    assert page.locator("[role=alert]").is_visible()
    assert "/login" in page.url
    shot(page, "login-refused")
    page.goto(f"{desk.url}/tasks")
    assert "/login" in page.url


def test_close_task_with_promise_and_next_sweep_skips_the_invoice(desk, page):
    login(page, desk, COLLECTOR)
    row = page.locator("#tasks tr[data-invoice='F-1']")
    assert "Call the customer" in row.inner_text()
    assert "Talleres Ebro S.L." in row.inner_text()
    # The final notice's task is the manager's: not on a collector's list, nor its customer.
    assert page.locator("#tasks tr[data-invoice='F-4']").count() == 0
    assignees = page.locator("#tasks tbody tr td:nth-child(6)").all_inner_texts()
    assert set(assignees) == {"account_owner"}
    assert page.goto(f"{desk.url}/customer?id=C4").status == 403
    page.goto(f"{desk.url}/tasks")
    row = page.locator("#tasks tr[data-invoice='F-1']")
    shot(page, "tasks")
    row.locator("a[href^='/tasks/']").click()
    page.check("#o-promise")
    page.fill("#on", "2026-12-28")
    page.fill("#note", "Pagará tras el cierre de mes")
    shot(page, "task-close")
    page.click("#close-task button[type=submit]")
    page.wait_for_url(f"{desk.url}/tasks?done=*")
    assert "2026-12-28" in page.locator(".flash").inner_text()
    assert page.locator("#tasks tr[data-invoice='F-1']").count() == 0
    with desk.ledger.engine.connect() as conn:
        task = conn.execute(sa.select(HumanTask).where(HumanTask.invoice_number == "F-1")).one()
    assert task.status == "closed" and "2026-12-28" in task.outcome
    # Dec 21: F-1's final notice is due, but the promise (Dec 28 + grace) holds it back.
    before = _mails_to(desk, "pagos@ebro.example")
    counts = desk.sweep(datetime.fromisoformat("2026-12-21T10:00:00+01:00"))
    assert counts["skipped"].get("promise_to_pay") == 1, counts
    assert _mails_to(desk, "pagos@ebro.example") == before
    assert _mails_to(desk, "cuentas@pausa.example") == 2  # the others still get reminders
    # The customer page shows the promise and who made it.
    page.goto(f"{desk.url}/customer?id=C1")
    promise = page.locator("#promises").inner_text()
    assert "28 dic 2026" in promise and "open" in promise and f"desk:{COLLECTOR[0]}" in promise
    shot(page, "customer-promise")
    assert f"desk:{COLLECTOR[0]}" in page.locator("#timeline").inner_text()


def test_pause_customer_sends_nothing_until_resumed(desk, page):
    login(page, desk, MANAGER)
    page.goto(f"{desk.url}/customer?id=C3")
    assert page.locator("#customer-name").inner_text() == "Pausa Distribuciones S.A."
    timeline = page.locator("#timeline").inner_text()
    assert "overdue_1" in timeline and "cuentas@pausa.example" in timeline
    invoices = page.locator("#invoices").inner_text()
    assert "F-3" in invoices and "overdue_1" in invoices and "800,00" in invoices
    page.select_option("#pause-scope", "")
    page.fill("#pause-reason", "Cliente en concurso: hablar con legal")
    page.click("#pause-form button[type=submit]")
    page.wait_for_url(f"{desk.url}/customer?id=C3&done=paused")
    assert "Cliente en concurso" in page.locator("#pauses").inner_text()
    shot(page, "customer-paused")
    week_later = datetime.fromisoformat("2026-12-16T10:00:00+01:00")  # overdue_7 of F-3
    counts = desk.sweep(week_later)
    assert counts["skipped"].get("on_hold") == 1, counts
    assert _mails_to(desk, "cuentas@pausa.example") == 1
    page.reload()
    page.select_option("#resume-scope", "")
    page.fill("#resume-reason", "Acuerdo con legal")
    page.click("#resume-form button[type=submit]")
    page.wait_for_url(f"{desk.url}/customer?id=C3&done=resumed")
    assert page.locator("#no-pauses").is_visible()
    assert desk.sweep(week_later)["sent"] >= 1
    assert _mails_to(desk, "cuentas@pausa.example") == 2
    events = page.locator("#timeline").inner_text()
    assert f"desk:{MANAGER[0]}" in events


def test_forged_form_without_csrf_token_is_refused(desk, page):
    login(page, desk, MANAGER)
    page.goto(f"{desk.url}/customer?id=C1")
    # Same origin, logged in, but no token: what a forged form would post.
    with page.expect_response(f"{desk.url}/customer/pause") as answer:
        page.evaluate(
            """() => {
                const f = document.createElement('form');
                f.method = 'post'; f.action = '/customer/pause';
                for (const [k, v] of [['customer_id', 'C1'], ['reason', 'forged']]) {
                    const i = document.createElement('input');
                    i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
                }
                document.body.appendChild(f); f.submit();
            }"""
        )
    assert answer.value.status == 403
    # A wrong token is refused the same way.
    token = page.context.request.post(
        f"{desk.url}/customer/pause",
        form={"customer_id": "C1", "reason": "forged", "csrf_token": "guess"},
    )
    assert token.status == 403
    with desk.ledger.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Pause)).scalar() == 0


def test_hostile_customer_name_is_shown_as_text(desk, page):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, desk, MANAGER)
    page.goto(f"{desk.url}/search?q=alert")
    link = page.locator("#results a").first
    assert link.inner_text() == XSS_NAME
    shot(page, "search")
    link.click()
    assert page.locator("#customer-name").inner_text() == XSS_NAME
    assert page.locator("h1 script").count() == 0
    # The timeline shows what the customer read, greeting included, as text.
    page.locator("#timeline details summary").first.click()
    body = page.locator("#timeline details pre").first.inner_text()
    assert XSS_NAME in body and "€" in body
    shot(page, "customer-hostile-name")
    assert dialogs == []


def test_manager_sees_portfolio_and_collector_does_not(desk, page, browser):
    login(page, desk, MANAGER)
    final = page.locator("#tasks tr[data-invoice='F-4']").inner_text()
    assert "manager" in final and "Final Notice S.L." in final
    page.goto(f"{desk.url}/portfolio?as_of=2026-12-09")
    figures = page.locator("#figures").inner_text()
    assert "7600" in figures.replace(".", "").replace("\xa0", "").replace(",", "")
    images = page.locator("img[src*='.png']")
    assert images.count() == 3
    assert all(
        page.evaluate("(img) => img.naturalWidth", img.element_handle()) > 100
        for img in images.all()
    )
    shot(page, "portfolio")
    other = browser.new_context()
    p2 = other.new_page()
    login(p2, desk, COLLECTOR)
    assert p2.goto(f"{desk.url}/portfolio").status == 403
    other.close()


def test_language_follows_the_browser_and_the_switch_and_logout_ends_the_session(desk, browser):
    context = browser.new_context(locale="en-US")
    p = context.new_page()
    login(p, desk, MANAGER)
    assert p.locator("h1").inner_text() == "My tasks"
    p.click("header a[lang=es]")
    assert p.locator("h1").inner_text() == "Mis tareas"
    p.click("header form[action='/logout'] button")
    p.wait_for_url(f"{desk.url}/login")
    p.goto(f"{desk.url}/tasks")
    assert "/login" in p.url
    context.close()
