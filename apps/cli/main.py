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

from apps.cli import desk as cli_desk
from apps.cli import imports as cli_imports
from apps.cli import init as cli_init
from apps.cli import policy as cli_policy
from apps.cli import replies as cli_replies
from apps.cli import report as cli_report
from apps.cli import risk as cli_risk
from apps.cli import tasks as cli_tasks
from apps.cli import webhooks as cli_webhooks
from dunning.importers import SourceError, describe_quarantine, read_invoice_file
from dunning.policy import Policy, load_policy
from dunning.settings import SettingsError, settings

if TYPE_CHECKING:  # Prefect is imported lazily: `dunning plan` must not pay for it
    from blocks import EmailChannel

app = typer.Typer(
    help="Accounts-receivable follow-up (dunning) on Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ledger_app = typer.Typer(help="Inspect the ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(cli_replies.app, name="replies")
app.add_typer(cli_report.app, name="report")
app.add_typer(cli_risk.app, name="risk")
app.add_typer(cli_webhooks.app, name="webhooks")
app.add_typer(cli_desk.app, name="desk")
app.add_typer(cli_imports.app, name="import")
app.add_typer(cli_policy.app, name="policy")
app.add_typer(cli_tasks.app, name="tasks")
app.command("init")(cli_init.init)


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


InvoicesOpt = Annotated[
    Path, typer.Option("--invoices", help="CSV or spreadsheet (xlsx, xls, ods) of invoices.")
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Policy YAML (default: DUNNING_POLICY, else the built-in ladder)."
    ),
]
LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", help="Ledger SQLAlchemy URL (default: DUNNING_LEDGER_URL)."),
]
NowOpt = Annotated[
    str | None, typer.Option("--now", help="ISO 8601 date-time with offset (default: now).")
]
# The reading flags override the --mapping file; unset, the file's value (or the default).
DateFormatOpt = Annotated[
    str | None, typer.Option("--date-format", help="strftime format of dates [%Y-%m-%d].")
]
DecimalOpt = Annotated[
    str | None, typer.Option("--decimal", help='Decimal separator, "." or "," [.].')
]
DelimiterOpt = Annotated[str | None, typer.Option("--delimiter", help="CSV field separator [,].")]


@app.command()
def plan(
    invoices: InvoicesOpt,
    policy: PolicyOpt = None,
    ledger: LedgerOpt = None,
    now: NowOpt = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.json,
    mapping: cli_imports.MappingOpt = None,
    date_format: DateFormatOpt = None,
    decimal: DecimalOpt = None,
    delimiter: DelimiterOpt = None,
    whatsapp: Annotated[
        bool,
        typer.Option(
            "--whatsapp",
            help="Plan as a sweep with a WhatsApp block would (opt-ins from the file and "
            "the --ledger).",
        ),
    ] = False,
    sms: Annotated[
        bool,
        typer.Option(
            "--sms",
            help="Plan as a sweep with an SMS block would (opt-outs and "
            "refused numbers from the --ledger).",
        ),
    ] = False,
    voice: Annotated[
        bool, typer.Option("--voice", help="Plan as a sweep with a voice block would.")
    ] = False,
) -> None:
    """Print the action the sweep would take for every invoice, sending nothing.

    JSON: one object per line per invoice with invoice, customer, stage, channel, send_at
    (in the customer's offset), or skip_reason; `statement`, the key of the one email a
    customer gets for all its due invoices (`grouping: statement`); `channels` when a stage
    goes on several, `channel_note` when the preferred channel was passed over and why;
    `segment` and `p_late` (with the policy's `risk_model`, scored on the --ledger's
    history). A planned stage also shows what else it does: `escalation`, the resolved
    `assignee` of its task, `notify`, the `customer_status` it sets and the message's
    rendered `subject`. Quarantined rows go to stderr; exit 0.
    """
    from dunning.plan import plan as make_plan
    from dunning.plan import plan_records

    moment = _parse_now(now)
    ledger = ledger or settings().ledger_url
    try:
        pol = load_policy(policy) if policy else _settings_policy()
        options = cli_imports.read_options(
            mapping, date_format=date_format, decimal_separator=decimal, delimiter=delimiter
        )
        result = read_invoice_file(invoices, options)
    except (SourceError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for line in describe_quarantine(result.quarantine):
        typer.echo(line, err=True)
    state = facts = twilio = None
    if ledger:
        from dunning.channels import WhatsAppFacts
        from dunning.ledger import Ledger

        led = Ledger(ledger)
        state = led.planning_state()
        facts = WhatsAppFacts.from_ledger(led) if whatsapp else None
        if sms or voice:
            from dunning.channels import TwilioFacts

            twilio = TwilioFacts.from_ledger(led)
    invoices = result.invoices
    if pol.risk_model:
        from dunning.risk import RiskModelError, score_for_planning

        try:
            invoices = invoices.assign(p_late=score_for_planning(invoices, pol.risk_model, ledger))
        except RiskModelError as exc:
            _fail(str(exc))
    flags = {"whatsapp": whatsapp, "sms": sms, "voice": voice}
    channels = frozenset({"email", *(name for name, on in flags.items() if on)})
    planned = make_plan(
        invoices, pol, moment, state, channels_available=channels, whatsapp=facts, twilio=twilio
    )
    records = plan_records(planned)
    for problem in cli_policy.preview(records, planned, invoices, pol):
        typer.echo(f"warning: {problem}", err=True)
    if output is OutputFormat.json:
        out = sys.stdout
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return
    import pandas as pd

    frame = pd.DataFrame(records).fillna("")
    if "escalation" in frame:  # the task's title; the rest has its own columns
        frame["task"] = [e.get("human_task") or "" if e else "" for e in frame["escalation"]]
    if "notify" in frame:  # who gets the internal email, one cell
        frame["notify"] = [",".join(n) if isinstance(n, list) else n for n in frame["notify"]]
    cols = [
        c
        for c in (
            "invoice",
            "customer",
            "stage",
            "channel",
            "send_at",
            "skip_reason",
            "channel_note",
            "statement",
            "amount_due",
            "currency",
            "days_overdue",
            "task",
            "assignee",
            "notify",
            "customer_status",
            "subject",
        )
        if c in frame
    ]
    typer.echo(frame[cols].to_string(index=False) if len(frame) else "no invoices")


@app.command()
def sweep(
    invoices: Annotated[
        Path | None,
        typer.Option("--invoices", help="CSV or spreadsheet (default: the saved source block)."),
    ] = None,
    mapping: cli_imports.MappingOpt = None,
    policy: PolicyOpt = None,
    ledger: LedgerOpt = None,
    now: NowOpt = None,
    smtp_host: Annotated[str | None, typer.Option("--smtp-host")] = None,
    smtp_port: Annotated[int | None, typer.Option("--smtp-port")] = None,
    from_address: Annotated[str | None, typer.Option("--from")] = None,
    from_name: Annotated[
        str | None, typer.Option("--from-name", help="Sender's display name (the company).")
    ] = None,
    reply_to: Annotated[
        str | None,
        typer.Option("--reply-to", help="Reply-To of every reminder: a mailbox a person reads."),
    ] = None,
    bcc: Annotated[
        str | None, typer.Option("--bcc", help="Archive address(es) copied on every message.")
    ] = None,
    invoice: Annotated[str | None, typer.Option("--invoice", help="Only this invoice.")] = None,
    source_block: Annotated[str, typer.Option(help="Saved CsvInvoiceSource name.")] = "default",
    channel_block: Annotated[str, typer.Option(help="Saved EmailChannel name.")] = "default",
    ledger_block: Annotated[str, typer.Option(help="Saved LedgerDatabase name.")] = "default",
    whatsapp: Annotated[
        str | None,
        typer.Option("--whatsapp", help="Saved WhatsAppCloudChannel name (default: email only)."),
    ] = None,
    sms: Annotated[
        str | None, typer.Option("--sms", help="Saved SmsChannel name (Twilio SMS).")
    ] = None,
    voice: Annotated[
        str | None, typer.Option("--voice", help="Saved VoiceChannel name (Twilio calls).")
    ] = None,
    shards: Annotated[int, typer.Option(help="Split the portfolio by customer.")] = 1,
    shard: Annotated[int, typer.Option(help="The shard this run handles (0-based).")] = 0,
    date_format: DateFormatOpt = None,
    decimal: DecimalOpt = None,
    delimiter: DelimiterOpt = None,
) -> None:
    """Run the sweep flow now and send what is due; prints the summary as JSON.

    Without --invoices/--ledger/--smtp-host the saved blocks are used; each option
    overrides its block, so a script can point a sweep at any file, ledger or SMTP server.
    The ledger, the policy and the CRM default to the settings (`DUNNING_LEDGER_URL`,
    `DUNNING_POLICY`, `DUNNING_CRM`: exported or in the `.env` of the working directory).
    """
    from blocks import CsvInvoiceSource, DunningPolicy, LedgerDatabase, resolve_block
    from dunning.ledger.store import LedgerUnavailable
    from flows.sweep import dunning_invoice, dunning_sweep

    moment = _parse_now(now)
    ledger = ledger or settings().ledger_url
    reading = {"date_format": date_format, "decimal_separator": decimal, "delimiter": delimiter}
    try:
        options = cli_imports.read_options(mapping, **reading)
    except SourceError as exc:
        _fail(str(exc))
    if invoices:
        source = CsvInvoiceSource(path=str(invoices), **options.model_dump())
    else:
        # The mapping file, or the reading flags given, on top of the saved block.
        given = {k: v for k, v in reading.items() if v is not None}
        source = resolve_block(source_block, CsvInvoiceSource)
        if mapping or given:
            source = source.model_copy(update=options.model_dump() if mapping else given)
    sender = {
        "from_address": from_address,
        "from_name": from_name,
        "reply_to": reply_to,
        "bcc_archive": bcc,
    }
    channel = _email_channel(channel_block, smtp_host, smtp_port, sender)
    led = LedgerDatabase(url=ledger) if ledger else resolve_block(ledger_block, LedgerDatabase)
    pol = DunningPolicy.from_yaml(policy) if policy else None
    run = {
        "source": source,
        "channel": channel,
        "ledger": led,
        "policy": pol,
        "now": moment,
        "whatsapp": whatsapp,
        "sms": sms,
        "voice": voice,
    }
    try:
        if invoice:
            counts = dunning_invoice(invoice=invoice, **run)
        else:
            counts = dunning_sweep(**run, shards=shards, shard=shard)
    except (SourceError, LedgerUnavailable) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(counts, ensure_ascii=False, default=str))


def _settings_policy() -> Policy:
    """The policy `DUNNING_POLICY` names (a YAML file, or a saved block), else the built-in
    ladder; Prefect is imported only for a saved block."""
    current = settings()
    if not current.policy or current.policy_file() is not None:
        return load_policy(current.policy_file())
    from blocks import DunningPolicy

    return DunningPolicy.from_settings().to_policy()


def _email_channel(
    name: str, smtp_host: str | None, smtp_port: int | None, sender: dict[str, str | None]
) -> EmailChannel:
    """The saved email channel, with the command line's overrides applied: the SMTP server
    and the channel's sender fields (`sender`: from_address, from_name, reply_to,
    bcc_archive; None leaves the block's)."""
    from prefect_email import EmailServerCredentials

    from blocks import EmailChannel, resolve_block

    fields = {k: v for k, v in sender.items() if v is not None}
    if not (smtp_host or smtp_port or fields):
        return resolve_block(name, EmailChannel)
    try:
        channel = resolve_block(name, EmailChannel)
    except ValueError:
        if not fields.get("from_address"):
            _fail("no saved email channel: give --from (and --smtp-host/--smtp-port)")
        channel = EmailChannel(
            credentials=EmailServerCredentials(
                smtp_server="127.0.0.1", smtp_type="INSECURE", smtp_port=25
            ),
            from_address=fields["from_address"],
        )
    overrides = {"smtp_server": smtp_host, "smtp_port": smtp_port}
    creds = channel.credentials.model_copy(update={k: v for k, v in overrides.items() if v})
    return channel.model_copy(update=fields | {"credentials": creds})


@ledger_app.command("in-doubt")
def in_doubt(ledger: LedgerOpt = None) -> None:
    """Actions that may have reached the mail server without being recorded (after a crash).

    They are never resent automatically: check the mailbox or ask the customer, then
    resolve them by hand.
    """
    from dunning.ledger import Ledger

    ledger = ledger or settings().ledger_url
    if not ledger:
        _fail("no ledger: pass --ledger URL or set DUNNING_LEDGER_URL")
    frame = Ledger(ledger).in_doubt()
    if frame.empty:
        typer.echo("no actions in doubt")
        return
    typer.echo(frame[["key", "recipient", "message_id", "updated_at"]].to_string(index=False))


def main() -> None:
    """The `dunning` command; a bad setting (the environment or `.env`) ends it with one line."""
    try:
        app()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
