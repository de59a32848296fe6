"""Listen to customers: fetch replies, understand them, act on each one."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import (
    SOURCE_TYPES,
    DocumentLibrary,
    DunningPolicy,
    EmailChannel,
    ImapMailbox,
    InvoiceSource,
    LedgerDatabase,
    ReplyLLM,
    resolve_block,
)
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
    documents: str | DocumentLibrary | None = None,
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
        documents: the company's document library block (or name): a known contact asking
            for the tax or bank certificate (or a kind of the company's own) gets the file
            in the thread. None: such requests become tasks.

    Returns:
        Counts: messages fetched, processed, by intent, and needing a person.
    """
    logger = get_run_logger()
    ledger_block = resolve_block(ledger, LedgerDatabase)
    source_block = resolve_block(source, SOURCE_TYPES)
    llm_block = resolve_block(llm, ReplyLLM) if llm else None
    channel_block = resolve_block(channel, EmailChannel)
    documents_block = resolve_block(documents, DocumentLibrary) if documents else None
    rules = resolve_block(policy, DunningPolicy, default=DunningPolicy.from_settings).to_policy()
    fetched = fetch_replies(resolve_block(mailbox, ImapMailbox), ledger_block) if mailbox else []

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
