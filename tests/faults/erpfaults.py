"""The in-house REST API of tests/connectors, failing at the HTTP level on purpose.

`FaultyRest` answers like `FakeRest` except for the requests that match a queued raw fault:
- `slow`: answers after `seconds` (longer than the client's timeout: a read timeout);
- `cut`: sends the headers with the full Content-Length and half the body, then closes
  (a connection dropped mid-page);
- `cut_json`: a complete HTTP answer whose JSON body stops half-way (a broken proxy or a
  truncated export);
- `omit`: answers normally, without the records whose numbers are given (a page that
  leaves invoices out).
Ordinary status faults (`api.fail(prefix, 500, times=2)`) work as in `FakeApi`.

`BreakingOdoo` answers a JSON-RPC error (HTTP 200, as Odoo does) to reads after the first page.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.connectors.fake_odoo import FakeOdoo
from tests.connectors.fake_rest import FakeRest
from tests.connectors.fakeapi import Request, Response


@dataclass
class RawFault:
    kind: str  # slow | cut | cut_json | omit
    path: str
    times: int | None = 1  # None: always
    query: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    numbers: tuple[str, ...] = ()


class FaultyRest(FakeRest):
    """`FakeRest` with raw HTTP faults; start with `with FaultyRest() as api:`."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.raw: list[RawFault] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                split = urlsplit(self.path)
                req = Request(
                    "GET",
                    split.path,
                    parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    b"",
                )
                fault = fake._take(req)
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.seconds)
                resp = fake._dispatch(req)
                body = resp.body
                if fault is not None and fault.kind == "omit":
                    body = _without(body, set(fault.numbers))
                payload = b"" if body is None else json.dumps(body).encode()
                full = len(payload)
                if fault is not None and fault.kind in ("cut", "cut_json"):
                    payload = payload[: full // 2]
                    if fault.kind == "cut_json":
                        full = len(payload)
                self.send_response(resp.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(full))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                    self.wfile.flush()
                except OSError:  # the client gave up (timeout): nothing to do
                    pass
                if fault is not None and fault.kind == "cut":
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self._server.server_close()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def inject(self, kind: str, path: str, **kw: object) -> None:
        """Queue a raw fault for GET requests to `path` (with `query` items, if given)."""
        self.raw.append(RawFault(kind, path, **kw))  # type: ignore[arg-type]

    def _take(self, req: Request) -> RawFault | None:
        with self._lock:
            for fault in self.raw:
                if fault.times == 0 or req.path != fault.path:
                    continue
                if any(req.arg(k) != v for k, v in fault.query.items()):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None


def _without(body: object, numbers: set[str]) -> object:
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return {**body, "data": [r for r in body["data"] if r.get("number") not in numbers]}
    return body


class BreakingOdoo(FakeOdoo):
    """`FakeOdoo` whose next `broken_pages` reads after the first page (keyset `id > n`,
    n > 0) answer a JSON-RPC server error in an HTTP 200, as Odoo does."""

    broken_pages = 0

    def _jsonrpc(self, req: Request) -> Response:
        body = req.json()
        args = body["params"]["args"]
        later_page = False
        if body["params"]["method"] == "execute_kw" and args[4] == "search_read":
            domain = args[5][0] if args[5] else args[6].get("domain", [])
            later_page = any(leaf[:2] == ["id", ">"] and leaf[2] > 0 for leaf in domain)
        if later_page and self.broken_pages:
            self.broken_pages -= 1
            error = {"name": "builtins.MemoryError", "message": "out of memory"}
            return Response(
                200,
                {
                    "jsonrpc": "2.0",
                    "id": body.get("id"),
                    "error": {"code": 200, "message": "Odoo Server Error", "data": error},
                },
            )
        return super()._jsonrpc(req)
