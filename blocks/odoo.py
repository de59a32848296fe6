"""The login to an Odoo database, saved once and shared by the Odoo invoice source and CRM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.catalog import SECRET_LOGO, docs_url
from dunning.connectors.odoo import OdooClient

if TYPE_CHECKING:
    from blocks.http import HttpApiBlock


class OdooCredentials(Block):
    """How to reach and log in to an Odoo database, over JSON-2 or JSON-RPC.

    Odoo 19+ takes an API key as a Bearer token on its JSON-2 API; older versions take the
    database, the user's login and an API key (or password) on `/jsonrpc`. Save it once and
    give it to both `OdooInvoiceSource` and `OdooCrm`: a new key is then changed in one place.
    Where to find every value: docs/connectors.md.

    Attributes:
        url: Odoo address, e.g. https://acme.odoo.com (no /odoo or /web path).
        database: Database name (required by jsonrpc, optional with json2).
        protocol: `json2` (Odoo 19+) or `jsonrpc` (older; removed in Odoo 20+).
        login: The user's login, for jsonrpc only.
        api_key: API key of the user the sweep reads and posts as (a secret).

    Examples:
        Save the login once:
        ```python
        from blocks import OdooCredentials

        OdooCredentials(url="https://acme.odoo.com", database="acme",
                        api_key="3c1f...").save("BLOCK_NAME", overwrite=True)
        ```

        Load it and use it in the Odoo source and CRM:
        ```python
        from blocks import OdooCredentials, OdooCrm, OdooInvoiceSource

        odoo_credentials = OdooCredentials.load("BLOCK_NAME")
        source = OdooInvoiceSource(credentials=odoo_credentials)
        crm = OdooCrm(credentials=odoo_credentials, manager_user_id=6)
        ```
    """

    _block_type_name = "Odoo Credentials"
    _description = "Address, database, login and API key of an Odoo database."
    _logo_url = SECRET_LOGO
    _documentation_url = docs_url(_block_type_name)

    url: str = Field(description="Odoo address, e.g. https://acme.odoo.com.")
    database: str = Field("", description="Database name (needed for jsonrpc; optional json2).")
    protocol: Literal["json2", "jsonrpc"] = Field(
        "json2", description="json2 (Odoo 19+, API key) or jsonrpc (older, removed in Odoo 20+)."
    )
    login: str = Field("", description="User login, for jsonrpc only.")
    api_key: SecretStr = Field(description="API key of the user the sweep reads and posts as.")

    def get_client(self, api: HttpApiBlock) -> OdooClient:
        """An Odoo client with this login, over `api`'s timeouts and retries (the source or
        CRM block that calls Odoo, whose name its errors carry)."""
        key = self.api_key.get_secret_value()
        headers = {}
        if self.protocol == "json2":
            headers["Authorization"] = f"bearer {key}"
            if self.database:
                headers["X-Odoo-Database"] = self.database
        hint = (
            "check api_key (Odoo: avatar > My Profile/Preferences > Account Security > New API Key)"
        )
        if self.protocol == "jsonrpc":
            hint += ", login and database"
        return OdooClient(
            api.http(headers, hint),
            protocol=self.protocol,
            database=self.database,
            login=self.login,
            api_key=key,
        )

    @classmethod
    def nest(cls, data: Any) -> Any:
        """Block data with the login given inline (`url=..., api_key=...`, as these blocks
        were saved before `OdooCredentials` existed) moved into `credentials`."""
        if not isinstance(data, dict) or "credentials" in data or "url" not in data:
            return data
        inline = {name: data[name] for name in cls.model_fields if name in data}
        rest = {name: value for name, value in data.items() if name not in inline}
        return rest | {"credentials": inline}
