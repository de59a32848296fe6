"""The webhook receiver: WhatsApp, Stripe and ERP webhooks -> ledger first -> Prefect events.

- `verify`: each provider's signature scheme;
- `providers`: a verified body -> `Incoming` events with the provider's event ids;
- `effects`: store once (de-duplicated) and apply to the ledger; `closed_in_ledger` for the
  act step's send-time check;
- `emit`: stored events -> Prefect events (the only module here that uses Prefect);
- `app`: the Starlette app served by `dunning webhooks serve`.
"""
