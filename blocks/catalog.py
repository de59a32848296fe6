"""The logos and documentation links the Prefect UI shows in its block catalog.

Logos are images Prefect already publishes for its own blocks and integrations (listed in the
`collection_blocks_data.json` that ships with Prefect and checked by Prefect's own block test
suite), pinned by content hash or commit so that they never change under us. Each block's
documentation link is the section of `docs/blocks.md` headed by its block type name.
"""

from __future__ import annotations

from prefect.utilities.slugify import slugify

#: The repository's docs/blocks.md as the Prefect UI links to it.
DOCS_URL = "https://github.com/prefect-dunning/prefect-dunning/blob/main/docs/blocks.md"

_PREFECT_ASSETS = (
    "https://raw.githubusercontent.com/PrefectHQ/prefect/"
    "420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos"
)
_PREFECT_CDN = "https://cdn.sanity.io/images/3ugk85nk/production"

#: prefect-email's logo (its EmailServerCredentials block): the email channel and mailbox.
EMAIL_LOGO = f"{_PREFECT_CDN}/82bc6ed16ca42a2252a5512c72233a253b8a58eb-250x250.png"
#: prefect-sqlalchemy's logo: the ledger database and the CRM kept in it.
DATABASE_LOGO = f"{_PREFECT_ASSETS}/sqlalchemy.png"
#: Prefect's webhook logo: every block that calls a system's HTTP API.
API_LOGO = f"{_PREFECT_ASSETS}/webhook.png"
#: Prefect's Secret block logo: blocks that only hold credentials.
SECRET_LOGO = f"{_PREFECT_ASSETS}/secret.png"
#: Prefect's local file system logo: invoices read from a file.
FILE_LOGO = f"{_PREFECT_ASSETS}/filesystem.png"
#: Prefect's process logo: the dunning policy (the process the sweep follows).
PROCESS_LOGO = f"{_PREFECT_ASSETS}/process.png"


def docs_url(block_type_name: str) -> str:
    """The link to the section of docs/blocks.md headed `## <block_type_name>`."""
    return f"{DOCS_URL}#{slugify(block_type_name)}"
