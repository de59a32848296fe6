"""SMS and automated calls as reminder channels, over Twilio's REST API (httpx, no SDK).

- `client`: the REST client (Messages, Calls), refusals classified by Twilio's error code;
- `signature`: `X-Twilio-Signature`, computed and checked;
- `text`: SMS text per stage and language, GSM-7/UCS-2 encoding and segments;
- `consent`: opt-in where required, STOP/BAJA/PARAR and 21610 as opt-outs, numbers refused;
- `sms`: send one claimed SMS action, status callbacks, inbound SMS (the SMS `deliver`);
- `voice`: the call's TwiML, placing it, its outcome, the keypad menu, retries then a task.
"""

from dunning.twilio.client import TwilioClient, TwilioError, TwilioSettings
from dunning.twilio.signature import twilio_signature, verify_twilio
from dunning.twilio.sms import SmsSettings, TwilioResult, send_sms_reminder
from dunning.twilio.text import SmsText, measure, render_sms, to_gsm7
from dunning.twilio.voice import VoiceSettings, call_twiml, place_call

__all__ = [
    "SmsSettings",
    "SmsText",
    "TwilioClient",
    "TwilioError",
    "TwilioResult",
    "TwilioSettings",
    "VoiceSettings",
    "call_twiml",
    "measure",
    "place_call",
    "render_sms",
    "send_sms_reminder",
    "to_gsm7",
    "twilio_signature",
    "verify_twilio",
]
