"""Inbound provider events (WhatsApp, Stripe, ERP webhooks), without any web framework.

- `verify`: each provider's signature scheme;
- `providers`: a verified body -> `Incoming` events with the provider's event ids;
- `effects`: store once (de-duplicated) and apply to the ledger; `closed_in_ledger` for the
  act step's send-time check.

The receiver that serves them (`apps.webhooks.app`) and the Prefect event emitter
(`apps.webhooks.emit`) are edges outside the core.
"""
