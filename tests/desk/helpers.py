"""The desk's tests share these: the desk under a real uvicorn, and logging in over HTTP as
the login form does (Starlette's TestClient or httpx; the browser tests log in through the
page, `tests/desk/conftest.py` `login`)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from apps.desk.app import DeskConfig, create_app

MANAGER = ("jefa@acme.example", "manager-pass-1")
COLLECTOR = ("cobrador@acme.example", "collector-pass-1")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(config: DeskConfig) -> Iterator[str]:
    """The desk under a real uvicorn on a free loopback port (a browser needs a socket);
    its base URL. Stopped on leaving."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "desk did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def csrf(html: str) -> str:
    """The CSRF token of the first form on the page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, f"no CSRF token in the page: {html[:300]!r}"
    return found.group(1)


def login(client: httpx.Client, who: tuple[str, str], next_path: str = "/") -> httpx.Response:
    """Post the login form with the login page's token; the desk's answer (303 when in,
    401 or 429 when refused)."""
    token = csrf(client.get("/login").text)
    return client.post(
        "/login",
        data={"csrf_token": token, "email": who[0], "password": who[1], "next": next_path},
    )


def logged_in(client: httpx.Client, who: tuple[str, str]) -> httpx.Client:
    """`client`, logged in as `who` (the test fails if the desk refuses)."""
    answer = login(client, who)
    assert answer.status_code == 303, answer.text
    return client
