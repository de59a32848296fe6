"""Prefect blocks: every connection and configuration a user saves and edits in the UI."""

from prefect.blocks.core import Block

from blocks.email import EmailChannel
from blocks.ledger import LedgerDatabase
from blocks.policy import DunningPolicy
from blocks.sources import CsvInvoiceSource

__all__ = ["CsvInvoiceSource", "DunningPolicy", "EmailChannel", "LedgerDatabase", "resolve"]


def resolve(block_type: type[Block], value: str | Block) -> Block:
    """A block given either as an instance or by its saved name."""
    if isinstance(value, block_type):
        return value
    if isinstance(value, str):
        return block_type.load(value)
    raise TypeError(f"expected a {block_type.__name__} or the name of a saved one, got {value!r}")
