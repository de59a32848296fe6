"""`dunning desk ...`: the collections desk, a web page for the people who act on what the
automation escalates.

Heavy libraries are imported inside the commands so that `dunning plan` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The collections desk (web pages for collectors).", no_args_is_help=True)

LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", help="Ledger SQLAlchemy URL (default: DUNNING_LEDGER_URL)."),
]
LedgerBlockOpt = Annotated[
    str | None, typer.Option(help="Saved LedgerDatabase block, when no --ledger.")
]


def _ledger_url(ledger: str | None, ledger_block: str | None) -> str:
    from dunning.settings import settings

    ledger = ledger or settings().ledger_url
    if ledger:
        return ledger
    if ledger_block:
        from blocks import LedgerDatabase, resolve_block

        return resolve_block(ledger_block, LedgerDatabase).connection_url()
    return "sqlite:///var/ledger.db"


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8788,
    ledger: LedgerOpt = None,
    ledger_block: LedgerBlockOpt = None,
    secure_cookies: Annotated[
        bool, typer.Option(help="Mark the session cookie Secure (serve behind HTTPS).")
    ] = False,
    prefect_ui_url: Annotated[
        str | None, typer.Option(help="Prefect UI the desk links to (default: Prefect's own).")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Policy YAML the flows use (default: the built-in one).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    channel: Annotated[
        str | None,
        typer.Option(help="Saved EmailChannel block approved drafted answers are sent with."),
    ] = None,
) -> None:
    """Serve the collections desk (tasks, customers, portfolio) over the ledger.

    With --channel, a person can approve and send the drafted answers kept with tasks;
    without it, drafts can only be discarded.

    The session cookie is signed with `DUNNING_DESK_SECRET` (random per process when unset:
    everyone logs in again after a restart). Without --ledger: `DUNNING_LEDGER_URL`, the
    block named by --ledger-block, else `sqlite:///var/ledger.db`.
    """
    import uvicorn

    from apps.desk.app import DeskConfig, create_app

    config = DeskConfig(ledger_url=_ledger_url(ledger, ledger_block), secure_cookies=secure_cookies)
    if prefect_ui_url:
        config.prefect_ui_url = prefect_ui_url
    if policy is not None:
        from dunning.policy import load_policy

        config.policy = load_policy(policy)
    if channel:
        from blocks import EmailChannel, resolve_block
        from dunning.replies.drafts import DraftMailer

        email = resolve_block(channel, EmailChannel)
        config.mailer = DraftMailer(pool=email.pool(), identity=email.identity())
    typer.echo(f"collections desk on http://{host}:{port}  (add users: dunning desk adduser)")
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)


@app.command("adduser")
def adduser(
    email: Annotated[str, typer.Argument(help="The person's email (their login).")],
    role: Annotated[str, typer.Option(help="collector | manager")] = "collector",
    ledger: LedgerOpt = None,
    ledger_block: LedgerBlockOpt = None,
) -> None:
    """Add a desk user (or reset their password and role); the password is read from stdin.

    Example: `printf '%s\\n' "$PASSWORD" | dunning desk adduser maria@acme.example --role manager`
    """
    import sys

    from apps.desk.auth import add_user
    from dunning.ledger import Ledger

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        created = add_user(Ledger(_ledger_url(ledger, ledger_block)), email, password, role)
    except ValueError as exc:
        typer.echo(f"adduser: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{'added' if created else 'updated'} {email.strip().lower()} ({role})")


@app.command("removeuser")
def removeuser(
    email: Annotated[str, typer.Argument(help="The person's email (their login).")],
    ledger: LedgerOpt = None,
    ledger_block: LedgerBlockOpt = None,
) -> None:
    """Remove a desk user: they can no longer log in, and their open sessions end at once.

    Example: `dunning desk removeuser maria@acme.example`
    """
    from apps.desk.auth import remove_user
    from dunning.ledger import Ledger

    email = email.strip().lower()
    if not remove_user(Ledger(_ledger_url(ledger, ledger_block)), email):
        typer.echo(f"removeuser: {email} is not an active desk user", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {email}; their sessions are ended")
