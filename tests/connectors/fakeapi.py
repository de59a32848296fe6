"""A tiny in-process HTTP server to stand in for a SaaS API that cannot run here.

Each fake (Odoo, Stripe, Holded, HubSpot, a generic REST API) subclasses `FakeApi` and
answers in the payload shapes of the provider's public API documentation (each fake says
which). Faults are injected per path prefix: a number of 500s, or 429s with a Retry-After,
before the real answer.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    prefix: str
    status: int
    times: int
    headers: dict[str, str]
    body: Any


class FakeApi:
    """Start with `with Fake() as api:`; `api.url` is its base URL; `api.requests` the log."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.down = False
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                split = urlsplit(self.path)
                req = Request(
                    method=self.command,
                    path=split.path,
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                resp = fake._dispatch(req)
                # A bytes body (a document) goes as it is, with the Content-Type it names.
                raw = isinstance(resp.body, bytes)
                payload = resp.body if raw else b"" if resp.body is None else json.dumps(resp.body)
                payload = payload.encode() if isinstance(payload, str) else payload
                headers = {"Content-Type": "application/json", **resp.headers}
                self.send_response(resp.status)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(
        self,
        prefix: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next `times` requests under `prefix` with `status`."""
        self.faults.append(Fault(prefix, status, times, headers or {}, body))

    def hits(self, prefix: str, method: str | None = None) -> list[Request]:
        """Requests logged under `prefix` (and with `method`)."""
        return [
            r
            for r in self.requests
            if r.path.startswith(prefix) and (method is None or r.method == method)
        ]

    def _dispatch(self, req: Request) -> Response:
        with self._lock:
            self.requests.append(req)
            if self.down:
                return Response(503, {"message": "service unavailable"})
            for fault in self.faults:
                if fault.times > 0 and req.path.startswith(fault.prefix):
                    fault.times -= 1
                    return Response(
                        fault.status, fault.body or {"message": "injected"}, fault.headers
                    )
            try:
                return self.route(req)
            except Exception as exc:  # a bug in the fake shows as a 500 with the reason
                return Response(500, {"message": f"fake crashed: {exc!r}"})

    def route(self, req: Request) -> Response:
        raise NotImplementedError
