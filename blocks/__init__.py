"""Prefect blocks: every connection and configuration a user saves and edits in the UI."""

from prefect.blocks.core import Block

from blocks.crm import CrmBlock, HubSpotCrm, LedgerCrm, OdooCrm
from blocks.email import EmailChannel
from blocks.erp import (
    HoldedInvoiceSource,
    OdooInvoiceSource,
    RestInvoiceSource,
    StripeInvoiceSource,
)
from blocks.ledger import LedgerDatabase
from blocks.llm import ReplyLLM
from blocks.mailbox import ImapMailbox
from blocks.policy import DunningPolicy
from blocks.sources import CsvInvoiceSource, InvoiceSource
from blocks.webhooks import WebhookSecrets
from blocks.whatsapp import WhatsAppCloudChannel

__all__ = [
    "CrmBlock",
    "CsvInvoiceSource",
    "DunningPolicy",
    "EmailChannel",
    "HoldedInvoiceSource",
    "HubSpotCrm",
    "ImapMailbox",
    "InvoiceSource",
    "LedgerCrm",
    "LedgerDatabase",
    "OdooCrm",
    "OdooInvoiceSource",
    "ReplyLLM",
    "RestInvoiceSource",
    "StripeInvoiceSource",
    "WebhookSecrets",
    "WhatsAppCloudChannel",
    "resolve",
]


def resolve(block_type: type[Block], value: str | Block) -> Block:
    """A block given either as an instance or by its saved name."""
    if isinstance(value, block_type):
        return value
    if isinstance(value, str):
        return block_type.load(value)
    raise TypeError(f"expected a {block_type.__name__} or the name of a saved one, got {value!r}")
