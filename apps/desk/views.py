"""The desk's pages and form handlers.

Pages render server-side (Jinja2, autoescaped: names, messages and replies come from
outside). Every form carries the session's CSRF token; a post without it is refused (403).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote as _quote

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, UndefinedError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from apps.desk import csrf, decisions, queries
from apps.desk.auth import (
    LoginLocked,
    User,
    authenticate,
    end_session,
    lockout_remaining,
    start_session,
)
from apps.desk.i18n import LANGS, LOCALES, pick_language, translator
from dunning.ledger import Ledger
from dunning.ledger.attachments import customer_attachments, task_attachments
from dunning.ledger.desk import login_failure_summary
from dunning.ledger.drafts import in_doubt as draft_in_doubt
from dunning.ledger.models import utcnow
from dunning.policy import today as policy_today
from dunning.settings import settings

PORTFOLIO_TTL = 300.0
LANG_COOKIE = "desk_lang"
#: The task list's pages (50 tasks each) stop here: far beyond any real backlog, and the
#: offset stays a small integer for every database.
MAX_PAGE = 10_000
#: The portfolio's `as_of` must lie in these years: the report computes ages and DSO over
#: pandas timestamps, which end in 1677 and 2262.
AS_OF_YEARS = (1970, 2200)


class BadParameter(ValueError):
    """A query parameter the desk cannot use (answered 400, naming it and what to give)."""


def quote(value: str) -> str:
    """URL-quote a value for a query string."""
    return _quote(value, safe="")


def _safe_next(target: str | None) -> str:
    # Only paths on this site: never an open redirect to another host.
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/tasks"


# -- rendering ---------------------------------------------------------------------------


def install_filters(env: Environment) -> None:
    """Money and date filters (Babel, in the page's locale) and `quote`."""
    env.filters["quote"] = quote


def _number(value: Any) -> float | None:
    """`value` as a number, or None when it is missing, not a number or NaN: event details
    come from many writers, and an odd value shows as nothing rather than failing the page."""
    try:
        number = float(value)
    except (TypeError, ValueError, UndefinedError):
        return None
    return None if number != number else number  # NaN is not equal to itself


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    lang = pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    locale = LOCALES[lang]

    def money(amount: float | None, currency: str | None = "EUR") -> str:
        value = _number(amount)
        if value is None:
            return ""
        return format_currency(value, str(currency or "EUR"), locale=locale)

    def num(value: float | None, digits: int = 1) -> str:
        number = _number(value)
        if number is None:
            return ""
        pattern = "#,##0." + "0" * digits if digits else "#,##0"
        return format_decimal(number, format=pattern, locale=locale)

    def day(value: date | datetime | None) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, str):
            return value
        return format_date(value, "medium", locale=locale)

    def stamp(value: datetime | None) -> str:
        if value is None:
            return ""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return format_datetime(value, "short", tzinfo=UTC, locale=locale) + " UTC"

    env: Environment = request.app.state.env
    html = env.get_template(name).render(
        request=request,
        user=request.state.user,
        lang=lang,
        langs=LANGS,
        t=translator(lang),
        money=money,
        num=num,
        day=day,
        stamp=stamp,
        csrf_token=csrf.session_token(request.session),
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def _error(request: Request, status_code: int, key: str) -> HTMLResponse:
    return _render(request, "error.html", status_code=status_code, message_key=key)


async def _checked_form(request: Request) -> FormData:
    """The posted form, if it carries the session's CSRF token; else 403."""
    form = await request.form()
    if not csrf.valid(request.session, form):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")
    return form


def _ledger(request: Request):  # noqa: ANN202
    return request.app.state.ledger


def _today(request: Request) -> date:
    """Today in the desk's policy timezone (the day the sweeps and replies use)."""
    return policy_today(request.app.state.config.policy)


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise decisions.DecisionError(f"date: {value!r} is not a date (YYYY-MM-DD)") from exc


# -- public ------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """Liveness for `make demo` and load balancers."""
    return PlainTextResponse("ok")


async def login_page(request: Request) -> Response:
    """The login form."""
    return _render(request, "login.html", next=_safe_next(request.query_params.get("next")))


async def login_submit(request: Request) -> Response:
    """Check the email and password; start a fresh session on success."""
    form = await _checked_form(request)
    target = _safe_next(str(form.get("next") or ""))
    address = request.client.host if request.client else ""
    try:
        user = await run_in_threadpool(
            authenticate,
            _ledger(request),
            str(form.get("email", "")),
            str(form.get("password", "")),
            address,
        )
    except LoginLocked as exc:
        # Refused at once (no sleeping worker): the client is told when to come back.
        response = _render(
            request, "login.html", status_code=429, next=target, locked=exc.retry_after
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if user is None:
        return _render(request, "login.html", status_code=401, next=target, failed=True)
    token = await run_in_threadpool(
        start_session, _ledger(request), user, request.app.state.config.session_hours
    )
    # A new session (and CSRF token) at login: a token planted before login is worthless.
    request.session.clear()
    request.session["sid"] = token
    csrf.session_token(request.session)
    _ledger(request).record_event("desk_login", actor=f"desk:{user.email}")
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    """End the session, on the server too: a saved copy of the cookie stops working."""
    await _checked_form(request)
    await run_in_threadpool(end_session, _ledger(request), str(request.session.get("sid") or ""))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def set_language(request: Request) -> Response:
    """Switch the page language (cookie) and go back."""
    lang = request.query_params.get("l", "")
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    if lang in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


# -- tasks -------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    """The desk opens on the task list."""
    return RedirectResponse("/tasks", status_code=303)


def _page_number(value: str | None) -> int:
    """The `page` parameter: a whole number from 1 to `MAX_PAGE` (default 1)."""
    text = (value or "1").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise BadParameter(f"page: {value!r} is not a page number (1 to {MAX_PAGE})")
    return int(text)


def _as_of(value: str | None) -> date | None:
    """The portfolio's `as_of` parameter: a date (YYYY-MM-DD) in `AS_OF_YEARS`, or None."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise BadParameter(f"as_of: {value!r} is not a date (YYYY-MM-DD)") from None
    first, last = AS_OF_YEARS
    if not first <= day.year <= last:
        raise BadParameter(f"as_of: {value!r} is not between {first} and {last}")
    return day


def _bad_request(request: Request, exc: BadParameter) -> HTMLResponse:
    return _render(request, "error.html", 400, message_key="bad_request", problem=str(exc))


async def tasks_page(request: Request) -> Response:
    """Open tasks the user sees, soonest due and largest amount first, by assignee."""
    try:
        page = _page_number(request.query_params.get("page"))
    except BadParameter as exc:
        return _bad_request(request, exc)
    assignee = request.query_params.get("assignee", "")
    result = queries.open_tasks(_ledger(request), request.state.user, assignee=assignee, page=page)
    return _render(
        request,
        "tasks.html",
        result=result,
        assignee=assignee,
        today=_today(request),
        flash=request.query_params.get("done", ""),
    )


async def task_page(request: Request) -> Response:
    """One task and the form to close it with an outcome."""
    row = queries.task(_ledger(request), request.path_params["task_id"])
    if row is None:
        return _error(request, 404, "not_found")
    if not queries.can_close_task(request.state.user, row["assignee"]):
        return _error(request, 403, "forbidden")
    return _task_page(request, row, flash=request.query_params.get("done", ""))


def _task_page(
    request: Request, row: dict[str, Any], status_code: int = 200, **context: Any
) -> HTMLResponse:
    """The task's page: the task, its attachments, its drafted answer (with its way out
    when sending it was left in doubt), the closing form."""
    draft = decisions.task_draft(_ledger(request), row["key"])
    return _render(
        request,
        "task.html",
        status_code=status_code,
        task=row,
        outcomes=decisions.OUTCOMES,
        today=_today(request),
        attachments=task_attachments(_ledger(request), row["id"]),
        attach_max_mb=settings().attachments_max_mb,
        draft=draft,
        draft_in_doubt=draft is not None and draft_in_doubt(draft),
        can_send_drafts=request.app.state.config.mailer is not None,
        **context,
    )


async def _decide_on_task(
    request: Request, decide: Callable[[Ledger, User, int], str], problem: str
) -> Response:
    """Run a decision on the task (`decide(ledger, user, task_id)` gives its summary) off
    the request loop, then back to the task list; the task's page again, 400 with the
    reason in `problem` (the template's field), for a decision the desk refuses."""
    task_id = request.path_params["task_id"]
    try:
        summary = await run_in_threadpool(decide, _ledger(request), request.state.user, task_id)
    except decisions.NotAllowed:
        return _error(request, 403, "forbidden")
    except decisions.DecisionError as exc:
        row = queries.task(_ledger(request), task_id)
        if row is None:
            return _error(request, 404, "not_found")
        return _task_page(request, row, status_code=400, **{problem: str(exc)})
    return RedirectResponse(f"/tasks?done={quote(summary)}", status_code=303)


async def task_draft(request: Request) -> Response:
    """Approve (send the edited text once, in the customer's thread) or discard a task's
    drafted answer; the task closes."""
    form = await _checked_form(request)
    mailer = request.app.state.config.mailer

    def decide(ledger: Ledger, user: User, task_id: int) -> str:
        decision, text = str(form.get("decision", "")), str(form.get("text", ""))
        return decisions.decide_draft(ledger, user, task_id, decision, text, mailer)

    return await _decide_on_task(request, decide, problem="draft_problem")


async def task_draft_doubt(request: Request) -> Response:
    """Settle a drafted answer left in doubt: mark it sent (nothing is sent), or send it
    again once the person ticked that the customer may receive it twice."""
    form = await _checked_form(request)
    mailer = request.app.state.config.mailer

    def decide(ledger: Ledger, user: User, task_id: int) -> str:
        decision = str(form.get("decision", ""))
        confirmed = form.get("confirm_duplicate") == "yes"
        return decisions.settle_draft(
            ledger, user, task_id, decision, confirmed=confirmed, mailer=mailer
        )

    return await _decide_on_task(request, decide, problem="draft_problem")


async def task_close(request: Request) -> Response:
    """Close a task with its outcome (promise, dispute, paid, no answer)."""
    form = await _checked_form(request)
    policy = request.app.state.config.policy
    today = _today(request)

    def decide(ledger: Ledger, user: User, task_id: int) -> str:
        closing = decisions.Closing(
            outcome=str(form.get("outcome", "")),
            on=_parse_day(str(form.get("on", ""))),
            reason=str(form.get("reason", "")),
            note=str(form.get("note", "")),
        )
        return decisions.close_task(ledger, user, task_id, closing, today, policy)

    return await _decide_on_task(request, decide, problem="problem")


async def customer_view(request: Request) -> Response:
    """A customer's invoices, pauses, promises, tasks and timeline."""
    customer_id = request.query_params.get("id", "")
    ledger = _ledger(request)
    data = _customer_page(request, ledger, customer_id)
    if isinstance(data, Response):
        return data
    risk = next((e["detail"]["p_late"] for e in data["timeline"] if "p_late" in e["detail"]), None)
    return _render(
        request,
        "customer.html",
        c=data,
        risk=risk,
        flash=request.query_params.get("done", ""),
        attachments=customer_attachments(ledger, customer_id),
        attach_max_mb=settings().attachments_max_mb,
        flow_run_url=request.app.state.config.flow_run_url,
    )


def _customer_page(request: Request, ledger: Ledger, customer_id: str) -> dict[str, Any] | Response:
    """The customer page's data, or the error page: 403 for a customer this user may not
    see, else 404 for one the ledger does not know."""
    if not queries.can_see_customer(ledger, request.state.user, customer_id):
        return _error(request, 403, "forbidden")
    data = queries.customer_page(ledger, customer_id)
    return _error(request, 404, "not_found") if data is None else data


async def _customer_decision(request: Request, action: str) -> Response:
    form = await _checked_form(request)
    customer_id = str(form.get("customer_id", ""))
    invoice = str(form.get("invoice_number", ""))
    ledger = _ledger(request)
    data = _customer_page(request, ledger, customer_id)
    if isinstance(data, Response):
        return data
    if invoice and invoice not in {i["invoice_number"] for i in data["invoices"]}:
        return _error(request, 404, "not_found")
    which = {
        "customer_id": customer_id,
        "invoice_number": invoice,
        "reason": str(form.get("reason", "")),
    }
    try:
        if action == "pause":
            until = _parse_day(str(form.get("until", "")))
            decisions.pause(ledger, request.state.user, **which, until=until)
        else:
            policy = request.app.state.config.policy
            decisions.resume(ledger, request.state.user, **which, policy=policy)
    except decisions.ManagerOnly as exc:  # a clear refusal, saying why and who may
        return _render(
            request, "error.html", status_code=403, message_key="forbidden", problem=str(exc)
        )
    except decisions.DecisionError as exc:
        risk = None
        return _render(
            request,
            "customer.html",
            status_code=400,
            c=data,
            risk=risk,
            problem=str(exc),
            flow_run_url=request.app.state.config.flow_run_url,
        )
    done = "paused" if action == "pause" else "resumed"
    return RedirectResponse(f"/customer?id={quote(customer_id)}&done={done}", status_code=303)


async def customer_pause(request: Request) -> Response:
    """Pause reminders for one invoice or the whole customer, with a reason."""
    return await _customer_decision(request, "pause")


async def customer_resume(request: Request) -> Response:
    """Resume reminders (end manual holds) for one invoice or the whole customer."""
    return await _customer_decision(request, "resume")


async def search_page(request: Request) -> Response:
    """Customers by name, invoice number, email or phone."""
    q = request.query_params.get("q", "")
    if q.strip():
        rows = queries.search(_ledger(request), request.state.user, q)
    else:  # no query: the customers the user owns ("my customers")
        rows = queries.my_customers(_ledger(request), request.state.user)
    return _render(request, "search.html", q=q, rows=rows, mine=not q.strip())


# -- portfolio ---------------------------------------------------------------------------


def _build_portfolio(ledger_url: str, as_of: date, locale: str) -> dict[str, Any]:
    from dunning.charts import chart_title, portfolio_charts
    from dunning.reports import (
        build_portfolio_report,
        portfolio_input,
        read_ledger,
        report_numbers,
    )

    data = portfolio_input(ledger=read_ledger(ledger_url))
    report = build_portfolio_report(data.invoices, as_of, ledger=data.ledger, notes=data.notes)
    charts = portfolio_charts(report, locale=locale)
    return {
        "numbers": report_numbers(report),
        "summary": report.summary.to_dict("records"),
        "aging": report.aging.to_dict("records"),
        "disputes": report.disputes.head(50).to_dict("records"),
        "notes": report.notes,
        "charts": charts,
        "titles": {name: chart_title(name, locale) for name in charts},
        "built": time.monotonic(),
    }


async def _portfolio(request: Request) -> dict[str, Any]:
    lang = pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    as_of = _as_of(request.query_params.get("as_of")) or _today(request)
    cache: dict[tuple[str, date], dict[str, Any]] = request.app.state.portfolio_cache
    hit = cache.get((lang, as_of))
    if hit is None or time.monotonic() - hit["built"] > PORTFOLIO_TTL:
        # The report reads whole tables: computed off the event loop, cached a few minutes.
        hit = await run_in_threadpool(_build_portfolio, _ledger(request).url, as_of, LOCALES[lang])
        if len(cache) > 16:
            cache.clear()
        cache[(lang, as_of)] = hit
    return hit


async def portfolio_page(request: Request) -> Response:
    """The weekly report's headline figures and charts (managers)."""
    if not request.state.user.is_manager:
        return _error(request, 403, "forbidden")
    try:
        data = await _portfolio(request)
    except BadParameter as exc:
        return _bad_request(request, exc)
    except ValueError as exc:  # e.g. an invoice row the report cannot read (pandas)
        return _render(request, "error.html", 500, message_key="portfolio", problem=str(exc))
    return _render(
        request, "portfolio.html", p=data, prefect_ui=request.app.state.config.prefect_ui_url
    )


async def portfolio_chart(request: Request) -> Response:
    """One chart of the portfolio page, PNG."""
    if not request.state.user.is_manager:
        return PlainTextResponse("forbidden", status_code=403)
    try:
        data = await _portfolio(request)
    except BadParameter as exc:
        return PlainTextResponse(str(exc), status_code=400)
    except ValueError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    png = data["charts"].get(request.path_params["name"])
    if png is None:
        return PlainTextResponse("no such chart", status_code=404)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


# -- security --------------------------------------------------------------------------------


def _security_summary(ledger: Any) -> dict[str, Any]:
    now = utcnow()
    summary = login_failure_summary(ledger, since=now - timedelta(hours=24))
    for row in summary["by_email"]:
        row["locked"] = lockout_remaining(ledger, row["key"], "", now)
    for row in summary["by_address"]:
        row["locked"] = lockout_remaining(ledger, "", row["key"], now) if row["key"] else 0
    return summary


async def security_page(request: Request) -> Response:
    """Failed logins of the last 24 hours by account and address, and who is locked out
    (managers)."""
    if not request.state.user.is_manager:
        return _error(request, 403, "forbidden")
    summary = await run_in_threadpool(_security_summary, _ledger(request))
    return _render(request, "security.html", s=summary)
