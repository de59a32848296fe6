"""An SMTP server on loopback that only counts what it accepts (the benchmark's "server").

    .venv/bin/python -m bench.smtp_counter --port 2525

aiosmtpd like `apps.mailsink`, but the handler keeps no file: writing an .eml per message
would make the server, not the client, the bottleneck of a throughput benchmark. It runs in
its own process so that the sender's GIL is not shared with it. On SIGTERM it prints one
JSON line with the messages and bytes it accepted and its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class CountingHandler:
    """Accepts every message with 250 and counts messages and bytes."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.messages += 1
        self.bytes += len(envelope.original_content or envelope.content)  # type: ignore[attr-defined]
        return "250 2.0.0 OK queued"


def main() -> None:
    """Serve until SIGTERM, then print the counts."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    handler = CountingHandler()
    controller = Controller(
        handler, hostname=args.host, port=args.port, data_size_limit=50 * 1024 * 1024
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    controller.start()
    print(json.dumps({"ready": True, "port": args.port}), flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    controller.stop()
    peak_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    print(
        json.dumps({"messages": handler.messages, "bytes": handler.bytes, "peak_kb": peak_kb}),
        flush=True,
    )


if __name__ == "__main__":
    main()
