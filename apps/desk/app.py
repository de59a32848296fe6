"""The desk's ASGI app: sessions, the login gate, templates, routes.

    >>> from apps.desk.app import DeskConfig, create_app
    >>> app = create_app(DeskConfig(ledger_url="sqlite:///var/ledger.db"))
    >>> # uvicorn.run(app, host="127.0.0.1", port=8788)

Every path but the login page, the language switch and `/healthz` needs a logged-in user:
a page redirects to the login page, any other request (a form post) answers 401.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from uuid import UUID

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.desk import attachments, views
from apps.desk.auth import session_active_user
from dunning.ledger import Ledger
from dunning.ledger.desk import ensure_desk_indexes
from dunning.policy import Policy, default_policy
from dunning.render import template_environment, templates_dir
from dunning.replies.drafts import DraftMailer
from dunning.settings import settings

PUBLIC_PATHS = frozenset({"/login", "/lang", "/healthz"})
SESSION_COOKIE = "dunning_desk"

#: Sent with every response. The pages run no script at all (script-src 'none'), load only
#: this site's images, cannot be framed (clickjacking) and post forms only here; inline
#: styles are allowed (the templates use a few, and a style cannot run code). Pages show
#: customers' data: no cache keeps them, and no other site learns the desk's URLs.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class DeskConfig:
    """How the desk runs.

    Attributes:
        ledger_url: the ledger the flows write (SQLAlchemy URL or path).
        secret_key: signs the session cookie; `DUNNING_DESK_SECRET`, else a random key per
            process (everyone logs in again after a restart).
        secure_cookies: mark the session cookie `Secure` (behind HTTPS).
        prefect_ui_url: the Prefect UI the pages link to (the portfolio's flow runs, the
            flow run of a sweep's timeline entry): `DUNNING_PREFECT_UI_URL`, else Prefect's
            own UI URL; None: no links.
        session_hours: how long a login lasts.
        policy: the dunning policy the flows use; the desk takes its payment-verification
            days and timezone from it (default: the built-in ladder).
        mailer: the SMTP pool and sender approved drafted answers go out with (the email
            channel the flows use); None: drafts can be discarded, not sent.
    """

    ledger_url: str
    secret_key: str = field(
        default_factory=lambda: settings().secret_value("desk_secret") or secrets.token_hex(32)
    )
    secure_cookies: bool = False
    prefect_ui_url: str | None = field(default_factory=lambda: prefect_ui_url())
    session_hours: int = 12
    policy: Policy = field(default_factory=default_policy)
    mailer: DraftMailer | None = None

    def flow_run_url(self, flow_run: UUID) -> str | None:
        """The flow run's page in the Prefect UI; None without a UI to link to."""
        if not self.prefect_ui_url:
            return None
        return f"{self.prefect_ui_url.rstrip('/')}/runs/flow-run/{flow_run}"


def prefect_ui_url() -> str | None:
    """`DUNNING_PREFECT_UI_URL`, else the UI of the Prefect this machine is set up for
    (`PREFECT_UI_URL`, or `PREFECT_API_URL` without `/api`, from the environment or the
    Prefect profile), else None."""
    url = settings().prefect_ui_url
    if not url:
        # Imported only here: Prefect is slow to import and the desk needs nothing else of it.
        from prefect.settings import get_current_settings

        url = get_current_settings().ui_url
    return url.rstrip("/") if url else None


def create_app(config: DeskConfig) -> Starlette:
    """The desk as an ASGI app over the ledger at `config.ledger_url`."""
    ledger = Ledger(config.ledger_url)
    ensure_desk_indexes(ledger)
    # Lenient about undefined values: the pages test optional ones with `if`.
    env = template_environment(templates_dir() / "desk", strict=False)
    views.install_filters(env)
    app = Starlette(
        routes=[
            Route("/healthz", views.healthz),
            Route("/login", views.login_page, methods=["GET"]),
            Route("/login", views.login_submit, methods=["POST"]),
            Route("/logout", views.logout, methods=["POST"]),
            Route("/lang", views.set_language),
            Route("/", views.home),
            Route("/tasks", views.tasks_page),
            Route("/tasks/{task_id:int}", views.task_page),
            Route("/tasks/{task_id:int}/close", views.task_close, methods=["POST"]),
            Route("/tasks/{task_id:int}/draft", views.task_draft, methods=["POST"]),
            Route("/tasks/{task_id:int}/draft/doubt", views.task_draft_doubt, methods=["POST"]),
            Route("/customer", views.customer_view),
            Route("/customer/pause", views.customer_pause, methods=["POST"]),
            Route("/customer/resume", views.customer_resume, methods=["POST"]),
            Route("/search", views.search_page),
            Route("/portfolio", views.portfolio_page),
            Route("/portfolio/{name:str}.png", views.portfolio_chart),
            Route("/security", views.security_page),
            Route("/customer/attachments", attachments.customer_upload, methods=["POST"]),
            Route("/tasks/{task_id:int}/attachments", attachments.task_upload, methods=["POST"]),
            Route("/attachments/{attachment_id:str}", attachments.download),
        ],
        middleware=[
            # Outermost: its headers reach every answer, redirects and errors included.
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=config.secret_key,
                session_cookie=SESSION_COOKIE,
                max_age=config.session_hours * 3600,
                same_site="lax",
                https_only=config.secure_cookies,
            ),
            Middleware(BaseHTTPMiddleware, dispatch=_login_gate),
        ],
    )
    app.state.ledger = ledger
    app.state.env = env
    app.state.config = config
    app.state.portfolio_cache = {}
    return app


async def _login_gate(request: Request, call_next: RequestResponseEndpoint) -> Response:
    """Attach the logged-in user, or turn the request away (redirect for pages, else 401)."""
    request.state.user = None
    token = request.session.get("sid")
    if token:
        # The server-side session decides: a revoked or expired one (logout, password
        # change, user removed) is refused whatever the signed cookie says.
        request.state.user = await run_in_threadpool(
            session_active_user, request.app.state.ledger, token
        )
        if request.state.user is None:
            request.session.clear()
    if request.url.path in PUBLIC_PATHS or request.state.user is not None:
        return await call_next(request)
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={views.quote(target)}", status_code=303)
    return PlainTextResponse("login required", status_code=401)


class SecurityHeaders:
    """ASGI middleware: adds `SECURITY_HEADERS` to every HTTP response (a header a route
    set itself, such as a chart's `Cache-Control`, is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
