"""WhatsApp as a reminder channel, over Meta's WhatsApp Business Cloud API.

- `phones`: numbers to E.164 with the customer's country;
- `templates`: which approved template each stage uses per language (`templates/whatsapp/`);
- `client`: the Cloud API client, refusals classified by Meta's error code;
- `consent`: opt-in/opt-out, contacts marked invalid, the 24-hour service window;
- `send`: send one claimed outbox action and record it (the WhatsApp `deliver`);
- `status`: delivery statuses from the webhook onto the outbox; delivered and read rates.
"""

from dunning.whatsapp.client import CloudApiSettings, WhatsAppClient
from dunning.whatsapp.consent import readiness, record_opt_in
from dunning.whatsapp.phones import InvalidPhone, to_e164
from dunning.whatsapp.send import WhatsAppResult, send_whatsapp_answer, send_whatsapp_reminder
from dunning.whatsapp.status import StatusUpdate, apply_status, delivery_rates
from dunning.whatsapp.templates import TemplateBook, TemplateError

__all__ = [
    "CloudApiSettings",
    "InvalidPhone",
    "StatusUpdate",
    "TemplateBook",
    "TemplateError",
    "WhatsAppClient",
    "WhatsAppResult",
    "apply_status",
    "delivery_rates",
    "readiness",
    "record_opt_in",
    "send_whatsapp_answer",
    "send_whatsapp_reminder",
    "to_e164",
]
