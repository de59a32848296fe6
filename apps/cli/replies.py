"""`dunning replies ...`: Customer replies: classify, match and act.

Heavy libraries are imported inside the commands so that `dunning plan` stays fast.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from dunning.policy import today as policy_today

app = typer.Typer(help="Customer replies: classify, match and act.", no_args_is_help=True)

_LANGS = ("es", "en", "pt")


def _parse_day(value: str | None) -> date:
    if not value:
        return policy_today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def _read_line(number: int, line: str) -> tuple[dict[str, Any], str | None]:
    """The record on one input line and its problem (None when it can be classified)."""
    if not line.strip():
        return {}, f"line {number}: empty line; expected a JSON object with a 'text' field"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return {}, f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(record, dict):
        return {}, f"line {number}: expected a JSON object, got {type(record).__name__}"
    text = record.get("text")
    if not isinstance(text, str):
        problem = "is missing" if text is None else f"must be a string, not {type(text).__name__}"
        return record, f"line {number}: field 'text' {problem}"
    received = record.get("received_on")
    if received not in (None, ""):
        try:
            date.fromisoformat(str(received))
        except ValueError:
            return record, f"line {number}: field 'received_on' is {received!r}; use YYYY-MM-DD"
    lang = record.get("lang")
    if lang not in (None, "") and lang not in _LANGS:
        return record, f"line {number}: field 'lang' is {lang!r}; use es, en or pt (or omit it)"
    return record, None


def classify_stream(
    source: TextIO, sink: TextIO, *, today: date, llm: Any = None
) -> tuple[int, int]:
    """Classify the JSONL records of `source` into `sink`, in order; (classified, errors).

    Each output line is the input record plus `intent`, `confidence`, `lang`,
    `promise_date` (ISO date or null), `angry` and `new_contact`. A line that cannot be read
    becomes `{"line": n, "error": "..."}` (with the record's `id` if it had one) and the
    rest go on.
    """
    from dunning.replies import classify_many

    records: list[tuple[dict[str, Any], str | None]] = [
        _read_line(n, line) for n, line in enumerate(source, start=1)
    ]
    good = [
        (r["text"], date.fromisoformat(r["received_on"]) if r.get("received_on") else today,
         r.get("lang") or None)
        for r, problem in records if problem is None
    ]  # fmt: skip
    results = iter(classify_many(good))
    items = iter(good)
    errors = 0
    for n, (record, problem) in enumerate(records, start=1):
        if problem is not None:
            errors += 1
            out = {"line": n, "error": problem}
            if isinstance(record, dict) and "id" in record:
                out = {"id": record["id"], **out}
        else:
            result = next(results)
            text, received_on, lang = next(items)
            if llm is not None:
                from dunning.replies.llm import classify_with_fallback

                result = classify_with_fallback(text, received_on, lang, llm, offline=result)
            out = {
                **record,
                "intent": result.intent,
                "confidence": result.confidence,
                "lang": result.lang,
                "promise_date": result.promise_date.isoformat() if result.promise_date else None,
                "angry": result.angry,
                "new_contact": result.new_contact,
            }
        sink.write(json.dumps(out, ensure_ascii=False) + "\n")
    return len(records) - errors, errors


@app.command("classify")
def classify_command(
    today: Annotated[
        str | None,
        typer.Option(help="Received date for lines without 'received_on' (YYYY-MM-DD)."),
    ] = None,
    llm: Annotated[
        str | None,
        typer.Option(help="Name of a saved ReplyLLM block: ask it when the rules are unsure."),
    ] = None,
) -> None:
    """Classify customer replies: JSONL on stdin, JSONL on stdout, in the same order.

    Each input line has `text` and optionally `received_on` and `lang`; each output line
    adds `intent`, `confidence`, `lang`, `promise_date` (ISO date or null), `angry` and
    `new_contact`. A bad line gives an output line with an `error` naming the line and the
    problem; the others are still classified. Runs offline unless `--llm` is given.

        dunning replies classify --today 2026-12-09 < replies.jsonl > classified.jsonl
    """
    day = _parse_day(today)
    block = None
    if llm:
        from blocks import ReplyLLM, resolve_block

        block = resolve_block(llm, ReplyLLM)
    settings = block.settings() if block is not None else None
    classified, errors = classify_stream(sys.stdin, sys.stdout, today=day, llm=settings)
    typer.echo(f"classified {classified} replies, {errors} lines with errors", err=True)


#: The options `ingest` and `listen` share: where the invoices and the policy come from.
SourceInvoices = Annotated[
    Path | None,
    typer.Option(
        "--invoices", help="CSV or spreadsheet of invoices (default: the saved source block)."
    ),
]
PolicyFile = Annotated[
    Path | None,
    typer.Option("--policy", help="Policy YAML (default: DUNNING_POLICY, else built-in)."),
]


@app.command("ingest")
def ingest_command(
    files: Annotated[
        list[Path], typer.Argument(help="Saved emails (.eml, RFC 822), as many as needed.")
    ],
    ledger: Annotated[
        str | None,
        typer.Option("--ledger", help="Ledger SQLAlchemy URL (default: DUNNING_LEDGER_URL)."),
    ] = None,
    invoices: SourceInvoices = None,
    policy: PolicyFile = None,
    smtp_host: Annotated[str | None, typer.Option("--smtp-host")] = None,
    smtp_port: Annotated[int | None, typer.Option("--smtp-port")] = None,
    from_address: Annotated[str | None, typer.Option("--from")] = None,
    channel_block: Annotated[str, typer.Option(help="Saved EmailChannel name.")] = "default",
    source_block: Annotated[str, typer.Option(help="Saved invoice source name.")] = "default",
) -> None:
    """Process saved emails exactly as if they had come from the mailbox: forwarded replies,
    support cases, tests.

    Each file is read with the mailbox's own checks (size, parts, depth) and stored in the
    ledger's inbox once (by Message-ID: a file ingested twice, or also fetched from the
    mailbox, counts once); then the `process-replies` flow runs without a mailbox, so
    matching, sender checks, actions and answers are the mailbox path's. A file that cannot
    be read is named with the reason and the others go on (exit 1 at the end). Prints one
    line per file, then the run's counts as JSON.

        dunning replies ingest --ledger sqlite:///ledger.db --invoices invoices.csv reply.eml
    """
    from apps.cli.main import _email_channel
    from blocks import SOURCE_TYPES, CsvInvoiceSource, DunningPolicy, LedgerDatabase, resolve_block
    from dunning.ledger import Ledger
    from dunning.replies.imap import parse_message, to_inbound
    from dunning.settings import settings
    from flows.replies import process_replies

    url = ledger or settings().ledger_url
    if not url:
        typer.echo("error: no ledger: give --ledger URL or set DUNNING_LEDGER_URL", err=True)
        raise typer.Exit(2)
    unreadable = 0
    store = Ledger(url)
    for path in files:
        try:
            message = to_inbound(parse_message(path.read_bytes()))
        except OSError as exc:
            unreadable += 1
            typer.echo(f"error: {path}: cannot be opened ({exc.strerror})", err=True)
            continue
        except Exception as exc:  # whatever one file holds, the others go on
            unreadable += 1
            typer.echo(f"error: {path}: cannot be read as an email ({exc})", err=True)
            continue
        new = store.store_inbound([message])
        typer.echo(
            f"{path}: inbox message {new[0]}"
            if new
            else f"{path}: already in the inbox ({message.provider_id}), not processed again"
        )
    try:
        source = (
            CsvInvoiceSource(path=str(invoices))
            if invoices
            else resolve_block(source_block, SOURCE_TYPES)
        )
        # Answers (a copy, the bank details, an alert) go out through this channel.
        channel = _email_channel(
            channel_block, smtp_host, smtp_port, {"from_address": from_address}
        )
    except ValueError as exc:
        typer.echo(
            f"error: {exc}; give --invoices, and --smtp-host/--smtp-port/--from, or save the "
            "blocks",
            err=True,
        )
        raise typer.Exit(2) from None
    counts = process_replies(
        mailbox=None,
        source=source,
        channel=channel,
        ledger=LedgerDatabase(url=url),
        policy=DunningPolicy.from_yaml(policy) if policy else None,
    )
    typer.echo(json.dumps(counts, ensure_ascii=False, default=str))
    if unreadable:
        raise typer.Exit(1)


@app.command("listen")
def listen_command(
    mailbox: Annotated[
        str, typer.Option("--mailbox", help="Saved ImapMailbox block (name or slug/name).")
    ] = "default",
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="Ledger SQLAlchemy URL or saved LedgerDatabase name (default: "
            "DUNNING_LEDGER_URL, else the saved 'default').",
        ),
    ] = None,
    invoices: SourceInvoices = None,
    policy: PolicyFile = None,
    llm: Annotated[
        str | None,
        typer.Option(help="Name of a saved ReplyLLM block: ask it when the rules are unsure."),
    ] = None,
    documents: Annotated[
        str | None, typer.Option(help="Saved DocumentLibrary name: documents to answer with.")
    ] = None,
    knowledge: Annotated[
        str | None, typer.Option(help="Saved KnowledgeBase name: drafts for a person.")
    ] = None,
    smtp_host: Annotated[str | None, typer.Option("--smtp-host")] = None,
    smtp_port: Annotated[int | None, typer.Option("--smtp-port")] = None,
    from_address: Annotated[str | None, typer.Option("--from")] = None,
    channel_block: Annotated[str, typer.Option(help="Saved EmailChannel name.")] = "default",
    source_block: Annotated[str, typer.Option(help="Saved invoice source name.")] = "default",
) -> None:
    """Answer replies within seconds: hold the mailbox open (IMAP IDLE) until stopped.

    Each time the server announces new mail, the messages are stored in the ledger's inbox
    and handed to the `process-replies` flow (one flow run per batch), so matching,
    answers and tasks are the 5-minute poll's; keep the poll on as the safety net (both
    may run at once: each message is acted on and answered once). A dropped connection is
    logged and re-opened with backoff. SIGTERM or Ctrl-C stops it cleanly after the batch
    in hand (exit 0). See docs/replies_listen.md.

        dunning replies listen --mailbox default --ledger sqlite:///var/ledger.db
    """
    import logging
    import signal
    import threading

    from apps.cli.main import _email_channel
    from blocks import (
        SOURCE_TYPES,
        CsvInvoiceSource,
        DunningPolicy,
        ImapMailbox,
        LedgerDatabase,
        ReplyLLM,
        resolve_block,
    )
    from dunning.replies.listen import listen
    from dunning.settings import settings
    from flows.replies import process_replies_run

    # Its own handler: Prefect's logging set-up owns the root logger (WARNING and up).
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    listener_log = logging.getLogger("dunning.replies.listen")
    listener_log.addHandler(handler)
    listener_log.setLevel(logging.INFO)
    listener_log.propagate = False
    url = ledger or settings().ledger_url
    try:
        ledger_block = (
            LedgerDatabase(url=url)
            if url and "://" in url
            else resolve_block(url or "default", LedgerDatabase)
        )
        mailbox_block = resolve_block(mailbox, ImapMailbox)
        source = (
            CsvInvoiceSource(path=str(invoices))
            if invoices
            else resolve_block(source_block, SOURCE_TYPES)
        )
        channel = _email_channel(
            channel_block, smtp_host, smtp_port, {"from_address": from_address}
        )
        llm_block = resolve_block(llm, ReplyLLM) if llm else None
    except (ValueError, TypeError) as exc:
        typer.echo(
            f"error: {exc}; save the blocks, or give --ledger URL, --invoices, and "
            "--smtp-host/--smtp-port/--from",
            err=True,
        )
        raise typer.Exit(2) from None
    batch = {
        "mailbox": mailbox_block,  # drafts are saved there
        "fetch": False,  # the listener has fetched the batch
        "source": source,
        "channel": channel,
        "ledger": ledger_block,
        "policy": DunningPolicy.from_yaml(policy) if policy else None,
        "llm": llm_block,
        "documents": documents,
        "knowledge": knowledge,
    }
    stop = threading.Event()
    # The listener runs in a thread so that these handlers, not the Prefect engine's of a
    # batch's flow run, receive the signal: the batch in hand finishes, then it stops.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    result: dict[str, Any] = {}

    def run() -> None:
        result["stats"] = listen(
            mailbox_block.settings(),
            ledger_block.get_ledger(),
            lambda _ids: process_replies_run(**batch),
            stop,
        )

    worker = threading.Thread(target=run, name="replies-listener")
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    stats = result.get("stats")
    if stats is None:  # the thread died: its traceback is above
        raise typer.Exit(1)
    typer.echo(
        json.dumps(
            {
                "messages": stats.messages,
                "batches": stats.batches,
                "reconnections": stats.reconnections,
            }
        )
    )
