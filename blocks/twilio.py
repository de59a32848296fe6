"""The Twilio blocks: the account's credentials, the SMS channel and the voice (call) channel."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, model_validator

from blocks.catalog import API_LOGO, SECRET_LOGO, docs_url
from blocks.quota import MessageQuota
from dunning.twilio.client import TwilioClient, TwilioSettings
from dunning.twilio.sms import SmsSettings
from dunning.twilio.voice import VoiceSettings

#: The receiver's paths (`apps/webhooks`), appended to a block's `webhook_base_url`.
SMS_STATUS_PATH = "/webhooks/twilio/sms/status"
SMS_INBOUND_PATH = "/webhooks/twilio/sms/inbound"
VOICE_STATUS_PATH = "/webhooks/twilio/voice/status"
VOICE_GATHER_PATH = "/webhooks/twilio/voice/gather"
VOICE_ANSWER_PATH = "/webhooks/twilio/voice/answer"

_clients: dict[TwilioSettings, TwilioClient] = {}
#: Keys Prefect itself may put in a block's data (nested blocks are saved with their slug).
_PREFECT_KEYS = frozenset({"block_type_slug"})


def _known_keys(cls: type[Block], data: Any) -> Any:
    """Refuse a key the block does not have (a typo such as `auht_token` would otherwise be
    ignored silently, as Prefect blocks allow extra keys), naming it and the known ones."""
    if isinstance(data, dict):
        unknown = sorted(
            k for k in data if k not in cls.model_fields and k not in _PREFECT_KEYS
            and not str(k).startswith("_")
        )  # fmt: skip
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown field(s) {unknown}; the fields are "
                f"{sorted(cls.model_fields)}"
            )
    return data


_clients_lock = threading.Lock()


class TwilioCredentials(Block):
    """A Twilio account: the Account SID and an API key (recommended) or the Auth Token.

    The Auth Token is also what signs Twilio's webhook calls (`X-Twilio-Signature`): the
    receiver needs it even when the REST calls use an API key.

    Attributes:
        account_sid: The account's SID (`AC` + 32 hex characters); always in the API's URLs.
        auth_token: The account's Auth Token (a secret): REST auth without an API key, and
            the key of webhook signatures.
        api_key_sid: An API key's SID (`SK...`), Twilio's recommended REST credential.
        api_key_secret: That API key's secret (a secret).
        base_url: API base URL (a local server in tests).
        timeout_seconds: HTTP timeout per request.
        max_attempts, backoff_seconds: Tries per request when rate-limited (20429) or
            Twilio is down, and the first wait between them (doubling).

    Examples:
        Save the credentials once:
        ```python
        from blocks import TwilioCredentials

        TwilioCredentials(
            account_sid="AC00000000000000000000000000000001",
            auth_token="f0e1d2c3...",          # Console > Account info
            api_key_sid="SK00000000000000000000000000000001",
            api_key_secret="3c1f...",          # Console > API keys
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load them:
        ```python
        from blocks import TwilioCredentials

        twilio_credentials = TwilioCredentials.load("BLOCK_NAME")
        print(twilio_credentials.account_sid, twilio_credentials.auth_token)  # **********
        ```
    """

    _block_type_name = "Dunning Twilio Credentials"
    _description = "Twilio account SID and API key or Auth Token (SMS and voice channels)."
    _logo_url = SECRET_LOGO
    _documentation_url = docs_url(_block_type_name)
    # A validation error must not echo the input: it holds the token or the key's secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        return _known_keys(cls, data)

    account_sid: str = Field(
        pattern=r"^AC[0-9a-fA-F]{32}$", description="Account SID (AC + 32 hex characters)."
    )
    auth_token: SecretStr | None = Field(
        None, description="Auth Token: REST auth without an API key; signs Twilio's webhooks."
    )
    api_key_sid: str = Field(
        "", pattern=r"^(SK[0-9a-fA-F]{32})?$", description="API key SID (SK...), recommended."
    )
    api_key_secret: SecretStr | None = Field(None, description="The API key's secret.")
    base_url: str = Field("https://api.twilio.com", description="API base URL.")
    timeout_seconds: float = Field(30.0, gt=0, description="HTTP timeout per request.")
    max_attempts: int = Field(
        4, ge=1, le=10, description="Tries per request when rate-limited or Twilio is down."
    )
    backoff_seconds: float = Field(1.0, ge=0, description="First wait between tries; doubles.")

    @model_validator(mode="after")
    def _one_credential(self) -> TwilioCredentials:
        if bool(self.api_key_sid) != bool(self.api_key_secret):
            raise ValueError("api_key_sid and api_key_secret go together: give both or neither")
        if not self.api_key_sid and self.auth_token is None:
            raise ValueError("give auth_token, or api_key_sid and api_key_secret")
        return self

    def settings(self) -> TwilioSettings:
        """The client settings; an authorisation error names this block."""
        name = getattr(self, "_block_document_name", None)
        owner = f"the TwilioCredentials block {name!r}" if name else "the TwilioCredentials block"
        if self.api_key_sid and self.api_key_secret is not None:
            user, secret = self.api_key_sid, self.api_key_secret.get_secret_value()
        else:
            assert self.auth_token is not None  # the validator saw to it
            user, secret = self.account_sid, self.auth_token.get_secret_value()
        return TwilioSettings(
            account_sid=self.account_sid,
            username=user,
            password=secret,
            base_url=self.base_url,
            timeout=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            owner=owner,
        )

    def client(self) -> TwilioClient:
        """The process-wide client for these settings (so a bad key fails fast for all)."""
        settings = self.settings()
        with _clients_lock:
            if settings not in _clients:
                _clients[settings] = TwilioClient(settings)
            return _clients[settings]


class SmsChannel(MessageQuota, Block):
    """Send reminders by SMS through Twilio Programmable Messaging.

    The text of each stage and language is `templates/sms/<lang>/<stage>.txt`, kept to two
    segments (accents outside GSM-7 are written without them). Statuses and customers'
    replies come to the receiver at `webhook_base_url` + `/webhooks/twilio/sms/status` and
    `/webhooks/twilio/sms/inbound` (set the latter as the number's "A message comes in" URL).

    Attributes:
        credentials: The Twilio account.
        from_number: The sending Twilio number (E.164), or empty with a messaging service.
        messaging_service_sid: A Messaging Service (`MG...`) that picks the sender.
        webhook_base_url: The receiver's public URL (https://cobros.example.com): status
            callbacks go there, and webhook signatures are checked against it.
        opt_in_countries: Countries where SMS needs a recorded opt-in (ISO codes).
        messages_per_second: The sender's throughput, as a Prefect rate limit (0: none).

    Examples:
        Save the channel once:
        ```python
        from blocks import SmsChannel, TwilioCredentials

        SmsChannel(
            credentials=TwilioCredentials(account_sid="AC" + "0" * 32, auth_token="f0e1..."),
            from_number="+34910000000",
            webhook_base_url="https://cobros.example.com",
            messages_per_second=10,
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for a sweep's `sms` parameter):
        ```python
        from blocks import SmsChannel

        sms_channel = SmsChannel.load("BLOCK_NAME")
        print(sms_channel.rate_limit_name())
        ```
    """

    _block_type_name = "Dunning SMS Channel"
    _description = "SMS reminders through Twilio: sender, webhooks' public URL, throughput."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)
    # A validation error must not echo the input: it holds the token or the key's secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        return _known_keys(cls, data)

    credentials: TwilioCredentials = Field(description="The Twilio account.")
    from_number: str = Field("", description="Sending Twilio number (E.164).")
    messaging_service_sid: str = Field(
        "", pattern=r"^(MG[0-9a-fA-F]{32})?$", description="Messaging Service SID (MG...)."
    )
    webhook_base_url: str = Field(
        "", description="The receiver's public URL; status callbacks and signatures use it."
    )
    opt_in_countries: list[str] = Field(
        default_factory=lambda: ["US", "CA"],
        description="Countries where SMS needs a recorded opt-in (ISO 3166 codes).",
    )

    @model_validator(mode="after")
    def _one_sender(self) -> SmsChannel:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("give from_number or messaging_service_sid (who sends the SMS)")
        return self

    def quota_key(self) -> str:
        """`twilio-sms-<sender>`: one quota per sending number or messaging service."""
        return f"twilio-sms-{self.messaging_service_sid or self.from_number.lstrip('+')}"

    def url(self, path: str) -> str:
        """The public URL of one of the receiver's paths ("" without a base URL)."""
        return self.webhook_base_url.rstrip("/") + path if self.webhook_base_url else ""

    def settings(self) -> SmsSettings:
        sender = (
            {"MessagingServiceSid": self.messaging_service_sid}
            if self.messaging_service_sid
            else {"From": self.from_number}
        )
        return SmsSettings(
            sender=sender,
            status_callback_url=self.url(SMS_STATUS_PATH),
            opt_in_countries=frozenset(c.upper() for c in self.opt_in_countries),
        )

    def client(self) -> TwilioClient:
        return self.credentials.client()


class VoiceChannel(MessageQuota, Block):
    """Automated reminder calls through Twilio Programmable Voice.

    A call says the invoice, the amount and the due date in the customer's language, then
    offers 1 (talk to a person: a call-back task) and 2 (already paid: reminders pause while
    a person verifies). Not answered (busy, no answer, failed) it is tried again after
    `retry_after_minutes`, up to `call_attempts` calls, then a person gets a task to call.

    Attributes:
        credentials: The Twilio account.
        caller_number: The calling Twilio number or verified caller ID (E.164).
        webhook_base_url: The receiver's public URL (statuses, the menu, signatures).
        say_languages: Twilio `<Say>` language per message language (es: es-ES).
        voices: Twilio voice per message language (es: Polly.Lucia).
        machine_detection: Twilio's answering-machine detection: Enable, DetectMessageEnd
            or empty (off).
        voicemail: What an answering machine hears (with `webhook_base_url` set, Twilio
            fetches the call's words once it knows who answered): full (the whole call), short
            (a short message: invoice, amount, call us back; both count as reached) or none
            (hang up; a machine counts as not answered). DetectMessageEnd detection leaves
            the message after the greeting's beep.
        call_attempts: Calls per stage before a person takes over.
        retry_after_minutes: Wait before calling again.
        ring_seconds: How long a call rings.
        agent_number: Where 1 ("talk to a person") is put through (empty: a task only).
        messages_per_second: Calls per second (Twilio's default is 1), a Prefect rate limit.

    Examples:
        Save the channel once:
        ```python
        from blocks import TwilioCredentials, VoiceChannel

        VoiceChannel(
            credentials=TwilioCredentials(account_sid="AC" + "0" * 32, auth_token="f0e1..."),
            caller_number="+34910000000",
            webhook_base_url="https://cobros.example.com",
            call_attempts=3,
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for a sweep's `voice` parameter):
        ```python
        from blocks import VoiceChannel

        voice_channel = VoiceChannel.load("BLOCK_NAME")
        print(voice_channel.voices["es"])
        ```
    """

    _block_type_name = "Dunning Voice Channel"
    _description = "Automated reminder calls through Twilio: caller, voices, retries."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)
    # A validation error must not echo the input: it holds the token or the key's secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        return _known_keys(cls, data)

    credentials: TwilioCredentials = Field(description="The Twilio account.")
    caller_number: str = Field(description="Calling Twilio number (E.164).")
    webhook_base_url: str = Field(
        "", description="The receiver's public URL; callbacks, the menu and signatures use it."
    )
    say_languages: dict[str, str] = Field(
        default_factory=lambda: {"es": "es-ES", "en": "en-US", "pt": "pt-BR"},
        description="Twilio <Say> language per message language.",
    )
    voices: dict[str, str] = Field(
        default_factory=lambda: {"es": "Polly.Lucia", "en": "Polly.Joanna", "pt": "Polly.Camila"},
        description="Twilio voice per message language.",
    )
    machine_detection: Literal["Enable", "DetectMessageEnd", ""] = Field(
        "Enable", description="Answering-machine detection (empty: off)."
    )
    voicemail: Literal["full", "short", "none"] = Field(
        "short",
        description="What a voicemail hears: full call, short message, or none (hang up; a "
        "machine is not an answer).",
    )
    call_attempts: int = Field(3, ge=1, le=10, description="Calls per stage before a person.")
    retry_after_minutes: int = Field(60, ge=1, description="Wait before calling again.")
    ring_seconds: int = Field(30, ge=5, le=600, description="How long a call rings.")
    agent_number: str = Field("", description="Where 1 is put through (empty: a task only).")

    def quota_key(self) -> str:
        """`twilio-voice-<caller>`: one quota per calling number."""
        return f"twilio-voice-{self.caller_number.lstrip('+')}"

    def url(self, path: str) -> str:
        return self.webhook_base_url.rstrip("/") + path if self.webhook_base_url else ""

    def settings(self) -> VoiceSettings:
        return VoiceSettings(
            caller=self.caller_number,
            status_callback_url=self.url(VOICE_STATUS_PATH),
            gather_url=self.url(VOICE_GATHER_PATH),
            answer_url=self.url(VOICE_ANSWER_PATH),
            say_languages=dict(self.say_languages),
            voices=dict(self.voices),
            machine_detection=self.machine_detection,
            voicemail=self.voicemail,
            call_attempts=self.call_attempts,
            retry_after=timedelta(minutes=self.retry_after_minutes),
            ring_seconds=self.ring_seconds,
            agent_number=self.agent_number,
        )

    def client(self) -> TwilioClient:
        return self.credentials.client()
