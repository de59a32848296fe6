"""Reply tasks: fetch the mailbox into the ledger's inbox, act on each message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.documents import DocumentLibrary
from blocks.email import EmailChannel
from blocks.knowledge import KnowledgeBase
from blocks.ledger import LedgerDatabase
from blocks.llm import ReplyLLM
from blocks.mailbox import ImapMailbox
from blocks.sources import InvoiceSource
from dunning.policy import Policy
from dunning.replies.act import handle_reply
from tasks._logging import task_logger
from tasks.retry import retry_if_temporary


@task(name="fetch-replies", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def fetch_replies(mailbox: ImapMailbox, ledger: LedgerDatabase) -> list[int]:
    """Store the mailbox's new messages in the ledger's inbox and move them to the
    processed folder. Returns the ids of the new inbox rows.

    Example:
        ```python
        new_ids = fetch_replies(ImapMailbox.load("default"), LedgerDatabase.load("default"))
        ```
    """
    new_ids = mailbox.fetch_into(ledger.get_ledger())
    task_logger().info("%d new message(s) in %s", len(new_ids), mailbox.folder)
    return new_ids


@task(
    name="handle-reply",
    task_run_name="reply-{message_id}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_if_temporary,
    cache_policy=NO_CACHE,
)
def handle_reply_task(
    message_id: int,
    ledger: LedgerDatabase,
    policy: Policy,
    source: InvoiceSource,
    channel: EmailChannel | None,
    llm: ReplyLLM | None = None,
    documents: DocumentLibrary | None = None,
    knowledge: KnowledgeBase | None = None,
    mailbox: ImapMailbox | None = None,
) -> dict[str, Any]:
    """Match one inbox message to its invoice, classify it and act on it (pause, promise,
    answer with the document, alert the managers, or hand it to a person). With an `llm`
    block, replies the offline classifier is unsure of are asked to the LLM too. A message
    left to a person gets a drafted answer quoting the `knowledge` base, also saved to the
    `mailbox`'s drafts folder when it has one.

    A request for one of the company's documents is answered from the `documents` library.

    Returns what was understood and done: intent, confidence, promise date, actions taken.
    """
    store = ledger.get_ledger()
    message = store.inbound_message(message_id)
    outcome = handle_reply(
        message,
        ledger=store,
        policy=policy,
        lookup=source.get_invoice,
        pool=channel.pool() if channel else None,
        identity=channel.identity() if channel else None,
        attachments_root=getattr(source, "attachments_root", None),
        classify=_classifier(llm),
        documents=documents.library() if documents else None,
        knowledge=knowledge.load_passages() if knowledge else None,
        mailbox=mailbox.settings() if mailbox else None,
    )
    task_logger().info(
        "reply %s from %s: %s (%.2f) -> %s",
        message_id,
        message.sender,
        outcome.intent,
        outcome.confidence,
        "; ".join(outcome.done) or "nothing to do",
    )
    return outcome.to_dict()


def _classifier(llm: ReplyLLM | None) -> Callable[..., Any] | None:
    """The offline classifier, or with an LLM block, the offline one with the LLM fallback."""
    if llm is None:
        return None
    from dunning.replies.llm import classify_with_fallback

    settings = llm.settings()
    return lambda text, received_on, lang=None: classify_with_fallback(
        text, received_on, lang, settings
    )
