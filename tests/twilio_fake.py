"""An in-process HTTP server that speaks Twilio's 2010 REST API for Messages and Calls.

Shapes follow the contract (`docs/sms_voice.md`, from Twilio's OpenAPI spec): POST
`/2010-04-01/Accounts/{AccountSid}/Messages.json` or `Calls.json`, form-encoded, HTTP Basic
auth with the Account SID + Auth Token or an API key + secret; a create answers 201 with the
resource; errors are `{"code", "message", "more_info", "status"}` with Twilio's codes.

Like Twilio, it refuses: wrong credentials (20003, 401); a 'To' that is not E.164 (21211);
a landline (21614); a number that replied STOP (21610); more requests in a second than the
account's rate (20429, HTTP 429, "never processed"); and it can be told to answer the next
requests to a number with given error codes (`scripted`).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

ERRORS = {
    20003: (401, "Authenticate"),
    20429: (429, "Too Many Requests"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    21604: (400, "A 'To' phone number is required."),
    21205: (400, "Url or Twiml is required."),
}
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@dataclass
class TwilioState:
    """What the fake Twilio knows and was asked (tests read and steer it)."""

    account_sid: str
    auth_token: str
    api_keys: dict[str, str] = field(default_factory=dict)
    landlines: set[str] = field(default_factory=set)
    unsubscribed: set[str] = field(default_factory=set)
    #: E.164 -> error codes to answer the next requests with, in order
    scripted: dict[str, list[int]] = field(default_factory=dict)
    #: requests per second the account may make (0: unlimited); more -> 20429
    max_per_second: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _window: list[float] = field(default_factory=list)

    def created(self, resource: str = "Messages") -> list[dict[str, Any]]:
        """The forms of the requests that created a resource (201)."""
        return [
            r["form"] for r in self.requests if r["status"] == 201 and r["resource"] == resource
        ]


class _Handler(BaseHTTPRequestHandler):
    state: TwilioState

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(raw).items()}
        match = re.fullmatch(r"/2010-04-01/Accounts/(AC\w+)/(Messages|Calls)\.json", self.path)
        resource = match.group(2) if match else ""
        status, answer = self._answer(match, resource, form)
        with self.state.lock:
            self.state.requests.append(
                {
                    "resource": resource,
                    "form": form,
                    "status": status,
                    "answer": answer,
                    "content_type": self.headers.get("Content-Type", ""),
                }
            )
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self, account: str) -> bool:
        s = self.state
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if account != s.account_sid:
            return False
        return (user == s.account_sid and secret == s.auth_token) or s.api_keys.get(user) == secret

    def _answer(self, match, resource: str, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        s = self.state
        if match is None:
            return 404, {"code": 20404, "message": "not found", "status": 404}
        if not self._authorized(match.group(1)):
            return _error(20003)
        with s.lock:
            now = time.monotonic()
            s._window = [t for t in s._window if now - t < 1.0]
            if s.max_per_second and len(s._window) >= s.max_per_second:
                return _error(20429)
            s._window.append(now)
            to = str(form.get("To", ""))
            queue = s.scripted.get(to) or []
            code = queue.pop(0) if queue else None
        if code is not None:
            return _error(code, to=to)
        if not to:
            return _error(21604)
        if not _E164.match(to):
            return _error(21211, to=to)
        if resource == "Messages":
            if to in s.landlines:
                return _error(21614, to=to)
            if to in s.unsubscribed:
                return _error(21610, to=to)
            return 201, _message(s.account_sid, form)
        if not (form.get("Twiml") or form.get("Url")):
            return _error(21205)
        return 201, _call(s.account_sid, form)


def _error(code: int, to: str = "") -> tuple[int, dict[str, Any]]:
    status, message = ERRORS[code]
    return status, {
        "code": code,
        "message": message.format(to=to),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _now() -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())


def _message(account: str, form: dict[str, Any]) -> dict[str, Any]:
    sid = "SM" + uuid.uuid4().hex
    body = str(form.get("Body", ""))
    return {
        "account_sid": account, "api_version": "2010-04-01", "body": body,
        "date_created": _now(), "date_sent": None, "date_updated": _now(),
        "direction": "outbound-api", "error_code": None, "error_message": None,
        "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0", "num_segments": "1", "price": None, "price_unit": None,
        "sid": sid, "status": "accepted" if form.get("MessagingServiceSid") else "queued",
        "to": form.get("To"),
        "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
    }  # fmt: skip


def _call(account: str, form: dict[str, Any]) -> dict[str, Any]:
    sid = "CA" + uuid.uuid4().hex
    return {
        "account_sid": account, "answered_by": None, "api_version": "2010-04-01",
        "date_created": _now(), "date_updated": _now(), "direction": "outbound-api",
        "duration": None, "from": form.get("From"), "price": None, "price_unit": "USD",
        "queue_time": "0", "sid": sid, "status": "queued", "to": form.get("To"),
        "uri": f"/2010-04-01/Accounts/{account}/Calls/{sid}.json",
    }  # fmt: skip


class TwilioServer:
    """The fake Twilio on a free loopback port, in a background thread.

    Example:
        >>> with TwilioServer(account_sid="AC...", auth_token="t") as api:
        ...     api.base_url  # 'http://127.0.0.1:PORT'
    """

    def __init__(self, **state: Any) -> None:
        self.state = TwilioState(**state)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> TwilioServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
