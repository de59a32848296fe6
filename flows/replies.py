"""Listen to customers: fetch replies, understand them, act on each one."""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import (
    SOURCE_TYPES,
    DocumentLibrary,
    DunningPolicy,
    EmailChannel,
    ImapMailbox,
    InvoiceSource,
    KnowledgeBase,
    LedgerDatabase,
    ReplyLLM,
    resolve_block,
)
from dunning.replies.listen import listen
from tasks.replies import fetch_replies, handle_reply_task

REPORT_COLUMNS = ("message", "sender", "invoices", "intent", "confidence", "state", "done")


@flow(name="process-replies", task_runner=ThreadPoolTaskRunner(max_workers=4))
def process_replies(
    mailbox: str | ImapMailbox | None = "default",
    source: str | InvoiceSource = "default",
    channel: str | EmailChannel = "default",
    ledger: str | LedgerDatabase = "default",
    policy: str | DunningPolicy | None = None,
    llm: str | ReplyLLM | None = None,
    knowledge: str | KnowledgeBase | None = None,
    documents: str | DocumentLibrary | None = None,
    fetch: bool = True,
) -> dict[str, Any]:
    """Read customers' replies and act on each one, within minutes of its arrival.

    Fetches new email from the mailbox into the ledger's inbox (WhatsApp messages arrive
    there through the webhook receiver), then runs one `handle-reply` task per message
    (named `reply-<id>`): match it to its invoice, classify it (promise with a date,
    already paid, dispute, copy or bank-details request, opt-out, ...) and act: pause,
    record the promise, answer with the document, alert the managers, or hand it to a
    person. An angry reply or a dispute stops the invoice's reminders at once.

    Args:
        mailbox: the IMAP mailbox block or its name; empty to process only the inbox.
        source: the invoice source (for documents and the customer's language).
        channel: the email channel answers and alerts are sent through.
        ledger: the ledger-database block or its name.
        policy: the dunning-policy block or its name; if empty, the `DUNNING_POLICY` setting,
            else the built-in default.
        llm: an OpenAI-compatible LLM block (or name) consulted when the offline
            classifier is unsure; its answers are validated. None: offline only.
        knowledge: the company's knowledge base block (or name): questions the rules
            cannot act on get a drafted answer quoting it, for a person to approve in the
            desk (and in the mailbox's `drafts_folder`, if set). None: the draft says a
            person will answer.
        documents: the company's document library block (or name): a known contact asking
            for the tax or bank certificate (or a kind of the company's own) gets the file
            in the thread. None: such requests become tasks.
        fetch: False when the messages are already in the inbox (the `listen-replies`
            listener fetched them); the mailbox is still where drafts are saved.

    Returns:
        Counts: messages fetched, processed, by intent, and needing a person.
    """
    logger = get_run_logger()
    ledger_block = resolve_block(ledger, LedgerDatabase)
    source_block = resolve_block(source, SOURCE_TYPES)
    llm_block = resolve_block(llm, ReplyLLM) if llm else None
    channel_block = resolve_block(channel, EmailChannel)
    rules = resolve_block(policy, DunningPolicy, default=DunningPolicy.from_settings).to_policy()
    mailbox_block = resolve_block(mailbox, ImapMailbox) if mailbox else None
    knowledge_block = resolve_block(knowledge, KnowledgeBase) if knowledge else None
    documents_block = resolve_block(documents, DocumentLibrary) if documents else None
    fetched = fetch_replies(mailbox_block, ledger_block) if mailbox_block and fetch else []

    store = ledger_block.get_ledger()
    pending = store.claim_inbound()
    futures = [
        handle_reply_task.submit(
            message_id,
            ledger_block,
            rules,
            source_block,
            channel_block,
            llm_block,
            knowledge=knowledge_block,
            mailbox=mailbox_block,
            documents=documents_block,
        )
        for message_id in pending
    ]
    outcomes = []
    for message_id, future in zip(pending, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception as exc:  # recorded, the other messages go on; a person looks
            store.update_inbound(message_id, state="failed", outcome=str(exc)[:500])
            outcomes.append({"message": message_id, "state": "failed", "done": [str(exc)]})
    counts = {
        "fetched": len(fetched),
        "processed": len(outcomes),
        "needs_human": sum(o.get("state") == "needs_human" for o in outcomes),
        "failed": sum(o.get("state") == "failed" for o in outcomes),
        "intents": dict(Counter(o["intent"] for o in outcomes if "intent" in o)),
    }
    publish_replies(outcomes, counts)
    logger.info("replies done: %s", counts)
    return counts


@flow(name="listen-replies")
def listen_replies(
    mailbox: str | ImapMailbox = "default",
    source: str | InvoiceSource = "default",
    channel: str | EmailChannel = "default",
    ledger: str | LedgerDatabase = "default",
    policy: str | DunningPolicy | None = None,
    llm: str | ReplyLLM | None = None,
    run_for_seconds: float | None = None,
    documents: str | DocumentLibrary | None = None,
    knowledge: str | KnowledgeBase | None = None,
) -> dict[str, Any]:
    """Answer customers' emails within seconds: keep the mailbox open (IMAP IDLE) and act on
    each message as it arrives.

    A long-running flow: start it once (it has no schedule) and it runs until cancelled.
    Each time the server announces new mail, the messages are stored in the ledger's inbox
    and moved to the processed folder, then `process-replies` runs as a flow run of its own
    (with `fetch` off; drafts still go to the mailbox's drafts folder), so
    matching, answers, pauses and tasks are exactly the poll's. This run itself has no task
    runs: however many weeks it runs, it stays small; each batch is one `process-replies`
    run.

    A dropped connection is logged (never the password) and re-opened with backoff; what
    arrived meanwhile is fetched first. Keep the 5-minute `process-replies` deployment on
    as the safety net: both may run at once, and a message is still acted on and answered
    once.

    Args:
        mailbox: the IMAP mailbox block or its name.
        source: the invoice source (for documents and the customer's language).
        channel: the email channel answers and alerts are sent through.
        ledger: the ledger-database block or its name.
        policy: the dunning-policy block or its name; if empty, the `DUNNING_POLICY` setting,
            else the built-in default.
        llm: an OpenAI-compatible LLM block (or name) for replies the offline classifier is
            unsure of. None: offline only.
        run_for_seconds: stop after this long; None runs until the flow run is cancelled.
        documents: the company's document library block (or name), as for process-replies.
        knowledge: the company's knowledge base block (or name), as for process-replies.

    Returns:
        Connections made, reconnections, batches and messages handled, errors seen.
    """
    logger = get_run_logger()
    mailbox_block = resolve_block(mailbox, ImapMailbox)
    ledger_block = resolve_block(ledger, LedgerDatabase)
    batch = {"source": source, "channel": channel, "ledger": ledger_block, "policy": policy}
    batch |= {"llm": llm, "documents": documents, "knowledge": knowledge}
    batch |= {"mailbox": mailbox_block, "fetch": False}  # fetched: drafts still go there
    stop = threading.Event()
    timer = threading.Timer(run_for_seconds, stop.set) if run_for_seconds else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        stats = listen(
            mailbox_block.settings(),
            ledger_block.get_ledger(),
            lambda _ids: process_replies_run(**batch),
            stop,
            logger=logger,
        )
    finally:
        if timer:
            timer.cancel()
    return asdict(stats)


def process_replies_run(**parameters: Any) -> dict[str, Any]:
    """Run `process-replies` with `parameters` as a flow run of its own, never as a subflow
    of the caller's run: called from `listen-replies`, a subflow would add one task run per
    batch to a run that lasts weeks. The flow-run and task-run context is emptied in a copy
    of the current context (settings and the API stay); outside any run it is a plain call.
    """

    def top_level() -> dict[str, Any]:
        FlowRunContext.__var__.set(None)
        TaskRunContext.__var__.set(None)
        return process_replies(**parameters)

    return contextvars.copy_context().run(top_level)


@task(name="publish-replies", cache_policy=NO_CACHE)
def publish_replies(outcomes: list[dict[str, Any]], counts: dict[str, Any]) -> None:
    """A markdown summary and a table of every message handled, in the run's Artifacts."""
    intents = ", ".join(f"{k}: {v}" for k, v in sorted(counts["intents"].items())) or "none"
    create_markdown_artifact(
        key="dunning-replies-summary",
        markdown=(
            "# Replies\n\n"
            f"- fetched from the mailbox: **{counts['fetched']}**\n"
            f"- processed: **{counts['processed']}** ({intents})\n"
            f"- handed to a person: **{counts['needs_human']}**\n"
            f"- failed: **{counts['failed']}**\n"
        ),
        description="Customer replies: fetched, understood, acted on",
    )
    if outcomes:
        create_table_artifact(
            key="dunning-replies",
            table=[{c: _cell(o.get(c, "")) for c in REPORT_COLUMNS} for o in outcomes[:500]],
            description="Every reply handled in this run",
        )


def _cell(value: Any) -> Any:
    return "; ".join(map(str, value)) if isinstance(value, list) else value
