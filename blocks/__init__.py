"""Prefect blocks: every connection and configuration a user saves and edits in the UI.

Importing this package registers every block type with Prefect. It is the package's
`prefect.collections` entry point (pyproject.toml), so Prefect loads it at start-up like
prefect-email or prefect-aws, and `prefect block register -m blocks` puts every block type in
the server's catalog.
"""

from blocks.crm import CRM_TYPES, CrmBlock, HubSpotCrm, LedgerCrm, OdooCrm
from blocks.documents import DocumentLibrary
from blocks.email import EmailChannel
from blocks.erp import (
    SOURCE_TYPES,
    HoldedInvoiceSource,
    OdooInvoiceSource,
    RestInvoiceSource,
    StripeInvoiceSource,
)
from blocks.http import HttpApiBlock
from blocks.knowledge import KnowledgeBase
from blocks.ledger import LedgerDatabase
from blocks.llm import ReplyLLM
from blocks.mailbox import ImapMailbox
from blocks.odoo import OdooCredentials
from blocks.policy import DunningPolicy
from blocks.resolve import resolve_block
from blocks.sources import CsvInvoiceSource, InvoiceSource
from blocks.twilio import SmsChannel, TwilioCredentials, VoiceChannel
from blocks.webhooks import WebhookSecrets
from blocks.whatsapp import WhatsAppCloudChannel

__all__ = [
    "CRM_TYPES",
    "SOURCE_TYPES",
    "CrmBlock",
    "CsvInvoiceSource",
    "DocumentLibrary",
    "DunningPolicy",
    "EmailChannel",
    "HoldedInvoiceSource",
    "HttpApiBlock",
    "HubSpotCrm",
    "ImapMailbox",
    "InvoiceSource",
    "KnowledgeBase",
    "LedgerCrm",
    "LedgerDatabase",
    "OdooCredentials",
    "OdooCrm",
    "OdooInvoiceSource",
    "ReplyLLM",
    "RestInvoiceSource",
    "SmsChannel",
    "StripeInvoiceSource",
    "TwilioCredentials",
    "VoiceChannel",
    "WebhookSecrets",
    "WhatsAppCloudChannel",
    "resolve_block",
]
