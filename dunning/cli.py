"""The `dunning` command line: plan without sending, run a sweep, inspect the ledger.

`plan` is pure (no Prefect). `sweep` runs the Prefect flow in this process, against the
Prefect API in `PREFECT_API_URL` (or a temporary local one when unset).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dunning.importers import SourceError, describe_quarantine, read_invoice_file
from dunning.policy import load_policy

if TYPE_CHECKING:  # Prefect is imported lazily: `dunning plan` must not pay for it
    from blocks import EmailChannel

app = typer.Typer(
    help="Accounts-receivable follow-up (dunning) on Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ledger_app = typer.Typer(help="Inspect the ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


def _parse_now(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        now = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not ISO 8601; use e.g. 2026-12-09T10:00:00+01:00"
        ) from None
    if now.tzinfo is None:
        raise typer.BadParameter("--now needs a UTC offset, e.g. 2026-12-09T10:00:00+01:00")
    return now


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


InvoicesOpt = Annotated[Path, typer.Option("--invoices", help="CSV or XLSX file of invoices.")]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Policy YAML (default: built-in ladder).")
]
LedgerOpt = Annotated[str | None, typer.Option("--ledger", help="Ledger SQLAlchemy URL.")]
NowOpt = Annotated[
    str | None, typer.Option("--now", help="ISO 8601 date-time with offset (default: now).")
]
DateFormatOpt = Annotated[str, typer.Option("--date-format", help="strftime format of dates.")]
DecimalOpt = Annotated[str, typer.Option("--decimal", help='Decimal separator, "." or ",".')]
DelimiterOpt = Annotated[str, typer.Option("--delimiter", help="CSV field separator.")]


@app.command()
def plan(
    invoices: InvoicesOpt,
    policy: PolicyOpt = None,
    ledger: LedgerOpt = None,
    now: NowOpt = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.json,
    date_format: DateFormatOpt = "%Y-%m-%d",
    decimal: DecimalOpt = ".",
    delimiter: DelimiterOpt = ",",
) -> None:
    """Print the action the sweep would take for every invoice, sending nothing.

    JSON: one object per line per invoice with invoice, customer, stage, channel, send_at
    (in the customer's offset), or skip_reason. Quarantined rows go to stderr; exit 0.
    """
    from dunning.plan import plan as make_plan
    from dunning.plan import plan_records

    moment = _parse_now(now)
    try:
        pol = load_policy(policy)
        result = read_invoice_file(
            invoices, date_format=date_format, decimal_separator=decimal, delimiter=delimiter
        )
    except (SourceError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for line in describe_quarantine(result.quarantine):
        typer.echo(line, err=True)
    state = None
    if ledger:
        from dunning.ledger import Ledger

        state = Ledger(ledger).planning_state()
    planned = make_plan(result.invoices, pol, moment, state)
    records = plan_records(planned)
    if output is OutputFormat.json:
        out = sys.stdout
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return
    import pandas as pd

    frame = pd.DataFrame(records).fillna("")
    cols = [
        c
        for c in (
            "invoice",
            "customer",
            "stage",
            "channel",
            "send_at",
            "skip_reason",
            "amount_due",
            "currency",
            "days_overdue",
        )
        if c in frame
    ]
    typer.echo(frame[cols].to_string(index=False) if len(frame) else "no invoices")


@app.command()
def sweep(
    invoices: Annotated[
        Path | None, typer.Option("--invoices", help="CSV/XLSX file (default: saved source block).")
    ] = None,
    policy: PolicyOpt = None,
    ledger: LedgerOpt = None,
    now: NowOpt = None,
    smtp_host: Annotated[str | None, typer.Option("--smtp-host")] = None,
    smtp_port: Annotated[int | None, typer.Option("--smtp-port")] = None,
    from_address: Annotated[str | None, typer.Option("--from")] = None,
    invoice: Annotated[str | None, typer.Option("--invoice", help="Only this invoice.")] = None,
    source_block: Annotated[str, typer.Option(help="Saved CsvInvoiceSource name.")] = "default",
    channel_block: Annotated[str, typer.Option(help="Saved EmailChannel name.")] = "default",
    ledger_block: Annotated[str, typer.Option(help="Saved LedgerDatabase name.")] = "default",
    date_format: DateFormatOpt = "%Y-%m-%d",
    decimal: DecimalOpt = ".",
    delimiter: DelimiterOpt = ",",
) -> None:
    """Run the sweep flow now and send what is due; prints the summary as JSON.

    Without --invoices/--ledger/--smtp-host the saved blocks are used; each option
    overrides its block, so a script can point a sweep at any file, ledger or SMTP server.
    """
    from blocks import CsvInvoiceSource, DunningPolicy, LedgerDatabase
    from flows.sweep import dunning_invoice, dunning_sweep

    moment = _parse_now(now)
    source = (
        CsvInvoiceSource(
            path=str(invoices),
            date_format=date_format,
            decimal_separator=decimal,
            delimiter=delimiter,
        )
        if invoices
        else CsvInvoiceSource.load(source_block)
    )
    channel = _email_channel(channel_block, smtp_host, smtp_port, from_address)
    led = LedgerDatabase(url=ledger) if ledger else LedgerDatabase.load(ledger_block)
    pol = DunningPolicy.from_yaml(policy) if policy else None
    try:
        if invoice:
            counts = dunning_invoice(
                invoice=invoice, source=source, channel=channel, ledger=led, policy=pol, now=moment
            )
        else:
            counts = dunning_sweep(
                source=source, channel=channel, ledger=led, policy=pol, now=moment
            )
    except SourceError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(counts, ensure_ascii=False, default=str))


def _email_channel(
    name: str, smtp_host: str | None, smtp_port: int | None, from_address: str | None
) -> EmailChannel:
    """The saved email channel, with the command line's overrides applied."""
    from prefect_email import EmailServerCredentials

    from blocks import EmailChannel

    if not (smtp_host or smtp_port or from_address):
        return EmailChannel.load(name)
    try:
        channel = EmailChannel.load(name)
    except ValueError:
        if not from_address:
            _fail("no saved email channel: give --from (and --smtp-host/--smtp-port)")
        channel = EmailChannel(
            credentials=EmailServerCredentials(
                smtp_server="127.0.0.1", smtp_type="INSECURE", smtp_port=25
            ),
            from_address=from_address,
        )
    overrides = {"smtp_server": smtp_host, "smtp_port": smtp_port}
    creds = channel.credentials.model_copy(update={k: v for k, v in overrides.items() if v})
    return channel.model_copy(
        update={"credentials": creds, "from_address": from_address or channel.from_address}
    )


@ledger_app.command("in-doubt")
def in_doubt(ledger: Annotated[str, typer.Option("--ledger")]) -> None:
    """Actions that may have reached the mail server without being recorded (after a crash).

    They are never resent automatically: check the mailbox or ask the customer, then
    resolve them by hand.
    """
    from dunning.ledger import Ledger

    frame = Ledger(ledger).in_doubt()
    if frame.empty:
        typer.echo("no actions in doubt")
        return
    typer.echo(frame[["key", "recipient", "message_id", "updated_at"]].to_string(index=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
