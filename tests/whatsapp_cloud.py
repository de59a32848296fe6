"""An in-process HTTP server that speaks the WhatsApp Cloud API messages contract.

Request and response shapes follow Meta's Cloud API reference (and the pywa SDK): POST
`/v{version}/{phone_number_id}/messages` with a Bearer token; success is
`{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid..."}]}`;
errors are Graph API errors `{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}`.

Like Meta, it refuses: an unknown or expired token (190), a template that is not approved in
that language (132001) or given the wrong number of parameters (132000), free text to someone
who has not written within 24 hours (131047), a number not on WhatsApp (131026); and it can be
told to answer the next requests to a number with a rate limit (130429 / 131056).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dunning.whatsapp.templates import TemplateBook

ERRORS = {
    190: ("Error validating access token: Session has expired.", "OAuthException", 401),
    130429: ("(#130429) Rate limit hit", "OAuthException", 400),
    131056: (
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        "OAuthException",
        400,
    ),
    131047: ("(#131047) Re-engagement message", "OAuthException", 400),
    131026: ("(#131026) Message Undeliverable", "OAuthException", 400),
    132000: (
        "(#132000) Number of parameters does not match the expected number of params",
        "OAuthException",
        400,
    ),
    132001: ("(#132001) Template name does not exist in the translation", "OAuthException", 400),
}
DETAILS = {
    130429: "Cloud API message throughput has been reached.",
    131056: "Too many messages sent from the sender phone number to the same recipient.",
    131047: "More than 24 hours have passed since the recipient last replied to the sender number.",
    131026: "Unable to deliver message. The number may not be registered on WhatsApp.",
    132000: "body: number of localizable_params does not match the expected number of params",
    132001: "template name (x) does not exist in the language",
}


@dataclass
class CloudState:
    """What the fake Meta knows and what it was asked (tests read and steer it)."""

    token: str
    phone_number_id: str
    approved: dict[tuple[str, str], int]  # (template name, language code) -> parameter count
    not_on_whatsapp: set[str] = field(default_factory=set)
    #: wa_id -> unix time of the customer's last message (for the 24-hour window)
    last_inbound: dict[str, float] = field(default_factory=dict)
    #: wa_id -> list of error codes to answer the next requests with, in order
    scripted: dict[str, list[int]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self) -> list[dict[str, Any]]:
        """The bodies of the requests that were accepted."""
        return [r["body"] for r in self.requests if r["status"] == 200]


def approved_from(book: TemplateBook) -> dict[tuple[str, str], int]:
    """Every template of the book as approved at Meta, with its parameter count."""
    return {
        (spec.name, spec.code): len(spec.parameters)
        for stage in book.stages
        for lang in book.languages(stage)
        for spec in [book.spec(stage, lang)]
    }


class _Handler(BaseHTTPRequestHandler):
    state: CloudState

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        status, answer = self._answer(body)
        with self.state.lock:
            self.state.requests.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("Authorization", ""),
                    "body": body,
                    "status": status,
                    "answer": answer,
                }
            )
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        s = self.state
        if self.headers.get("Authorization") != f"Bearer {s.token}":
            return _error(190)
        if not re.fullmatch(rf"/v[\d.]+/{re.escape(s.phone_number_id)}/messages", self.path):
            return 400, {"error": {"message": "Unsupported post request", "code": 100}}
        if body.get("messaging_product") != "whatsapp" or not str(body.get("to", "")).isdigit():
            return 400, {"error": {"message": "(#100) Invalid parameter", "code": 100}}
        to = body["to"]
        with s.lock:
            queue = s.scripted.get(to) or []
            code = queue.pop(0) if queue else None
        if code is not None:
            return _error(code)
        if to in s.not_on_whatsapp:
            return _error(131026)
        if body.get("type") == "template":
            template = body.get("template") or {}
            key = (template.get("name"), (template.get("language") or {}).get("code"))
            if key not in s.approved:
                return _error(132001)
            params = [
                p
                for c in template.get("components") or []
                if c.get("type") == "body"
                for p in c.get("parameters") or []
            ]
            if len(params) != s.approved[key]:
                return _error(132000)
        elif body.get("type") == "text":
            last = s.last_inbound.get(to)
            if last is None or time.time() - last > 24 * 3600:
                return _error(131047)
        else:
            return 400, {"error": {"message": "(#100) Invalid parameter", "code": 100}}
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": f"wamid.{uuid.uuid4().hex.upper()}=="}],
        }


def _error(code: int) -> tuple[int, dict[str, Any]]:
    message, kind, status = ERRORS[code]
    error: dict[str, Any] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": f"A{uuid.uuid4().hex[:22]}",
    }
    if code in DETAILS:
        error["error_data"] = {"messaging_product": "whatsapp", "details": DETAILS[code]}
    return status, {"error": error}


class CloudApiServer:
    """The fake Cloud API on a free loopback port, in a background thread.

    Example:
        >>> with CloudApiServer(token="t", phone_number_id="1", approved={...}) as api:
        ...     api.base_url  # 'http://127.0.0.1:PORT'
    """

    def __init__(self, **state: Any) -> None:
        self.state = CloudState(**state)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> CloudApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
