"""How long one very large reply takes to match, classify and act on (issue 16, item 4).

Before the fix, `classify._sentence` rescanned the text before every date it found: 100 KB
took 8 s and 1 MB 285 s. Now sentence ends are found once (binary search per date) and only
the first `MAX_SCANNED_CHARS` of a message are read, `MAX_CLASSIFIED_CHARS` of them
classified. This script times `handle_reply` (match + classify + act, on a SQLite ledger)
for messages of growing size and three shapes:

- dates: sentences full of dates and pay words (what made `_sentence` quadratic);
- quoted: a short reply above megabytes of quoted history;
- one line: a single line without spaces (worst case for the quote patterns).

    .venv/bin/python -m bench.replies_large
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.synth import synth_invoices, write_invoices_csv
from dunning.importers import read_invoice_file
from dunning.ledger import InboundMessage, Ledger
from dunning.policy import default_policy
from dunning.replies.act import handle_reply
from dunning.replies.classify import classify

SENTENCE = "Les pagamos la F-1 el 20 de noviembre y el resto el 5 de diciembre. "
SIZES = (100_000, 1_000_000, 5_000_000)


def shapes(size: int) -> dict[str, str]:
    """The three test messages of about `size` characters."""
    quote = "> Estimado cliente, la factura F-1 está vencida desde el 2 de noviembre.\n"
    return {
        "dates": (SENTENCE * (size // len(SENTENCE) + 1))[:size],
        "quoted": "Pagaremos el viernes.\n\nEl lun, 3 nov 2026, Acme <c@acme.es> escribió:\n"
        + (quote * (size // len(quote) + 1))[:size],
        "one line": "x" * (size - 20) + "@pagamos-el-viernes",
    }


def main() -> None:
    classify("warm up the model", received_on=None)
    with tempfile.TemporaryDirectory() as tmp:
        invoice = synth_invoices(1).assign(
            invoice_number="F-1", customer_id="C1", email="ana@a.example"
        )
        csv = write_invoices_csv(invoice, Path(tmp) / "inv.csv")
        ledger = Ledger(f"sqlite:///{tmp}/ledger.db")
        ledger.sync_invoices(read_invoice_file(csv).invoices)
        policy = default_policy()
        print(f"{'size':>10}  {'shape':<9}  {'seconds':>8}  intent")
        for size in SIZES:
            for shape, text in shapes(size).items():
                (new_id,) = ledger.store_inbound(
                    [
                        InboundMessage(
                            provider_id=f"<{size}-{shape}@bench>",
                            sender="ana@a.example",
                            subject="Re: F-1",
                            text=text,
                            received_at=datetime(2026, 11, 10, 10, tzinfo=UTC),
                        )
                    ]
                )
                started = time.perf_counter()
                outcome = handle_reply(
                    ledger.inbound_message(new_id),
                    ledger=ledger,
                    policy=policy,
                    lookup=lambda _: None,
                    pool=None,
                    identity=None,
                )
                took = time.perf_counter() - started
                print(f"{len(text):>10,}  {shape:<9}  {took:>8.3f}  {outcome.intent}")


if __name__ == "__main__":
    main()
