"""The ledger database as a block."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.catalog import DATABASE_LOGO, docs_url
from dunning.ledger import Ledger
from dunning.ledger.store import with_password


class LedgerDatabase(Block):
    """Where the ledger lives: what was sent, promised, disputed and decided.

    A SQLite file by default (no set-up); PostgreSQL for production and scale, e.g.
    `postgresql://dunning@db.internal:5432/dunning` with the password in `password`
    (kept as a secret, never in the URL shown in the UI).

    Attributes:
        url: SQLAlchemy URL of the ledger, without the password.
        password: The database password, if any (a secret).

    Examples:
        Save the ledger's address once:
        ```python
        from blocks import LedgerDatabase

        LedgerDatabase(url="postgresql://dunning@127.0.0.1:5432/dunning",
                       password="...").save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for a sweep's `ledger` parameter):
        ```python
        from blocks import LedgerDatabase

        ledger_database = LedgerDatabase.load("BLOCK_NAME")
        print(ledger_database.url)
        # ledger = ledger_database.get_ledger()
        ```
    """

    _block_type_name = "Ledger Database"
    _description = "SQLAlchemy URL of the dunning ledger (SQLite file or PostgreSQL)."
    _logo_url = DATABASE_LOGO
    _documentation_url = docs_url(_block_type_name)

    url: str = Field("sqlite:///var/ledger.db", description="SQLAlchemy URL, without password.")
    password: SecretStr | None = Field(None, description="Database password, if any.")

    def connection_url(self) -> str:
        """The URL to connect with, password included (never log it)."""
        password = self.password.get_secret_value() if self.password is not None else None
        return with_password(self.url, password)

    def get_ledger(self) -> Ledger:
        return Ledger(self.connection_url())
