"""Clients of the invoice and CRM systems companies use (Odoo, Stripe, Holded, HubSpot, any
JSON API), each mapping what it reads onto the normalized invoice schema.

Pure core: httpx and pandas, no Prefect. The blocks in `blocks/erp.py` and `blocks/crm.py`
hold the credentials and build these clients.
"""

from dunning.connectors.http import (
    AuthError,
    ConnectorError,
    HttpClient,
    RetryPolicy,
    Unavailable,
    throttled,
)

__all__ = [
    "AuthError",
    "ConnectorError",
    "HttpClient",
    "RetryPolicy",
    "Unavailable",
    "throttled",
]
