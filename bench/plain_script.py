"""The plain-script baseline of the sweep benchmark: the same reminders, no orchestration.

    .venv/bin/python -m bench.plain_script --csv invoices.csv --due invoices.due.csv \\
        --ledger-url sqlite:///outbox.db --smtp-port 2525

What a competent developer would write in an afternoon instead of using this project, so
the sweep's rate has a fair yardstick (issue 15: >= 0.5x this on SQLite, >= 0.4x on
PostgreSQL). It does, per reminder, the minimum that still makes it exactly-once-ish:

* the invoices read once with pandas, the due reminders (invoice, stage) from the file
  `bench.sweep_bench` writes while preparing the portfolio (the same reminders the sweep
  sends);
* an outbox table with a unique key in the same kind of database as the sweep's ledger
  (SQLite in WAL mode or PostgreSQL, through SQLAlchemy core);
* one Jinja template (subject, text and HTML) compiled once, filled per message;
* the message built with `email.message.EmailMessage` (the standard library's way);
* ONE SMTP connection for everything;
* per reminder: INSERT the key (the claim, committed), send, UPDATE it to sent (committed).

No Prefect, no policy, no re-check at the source, no pauses, no CRM note, no events, no
escalations, no localized money or dates: what the sweep does beyond this is the price of
its features, and the benchmark shows that price.

Prints one JSON line: sent, seconds, rate, cpu_s, peak_mb.
"""

from __future__ import annotations

import argparse
import json
import resource
import smtplib
import time
from email import policy as email_policy
from email.message import EmailMessage

import pandas as pd
import sqlalchemy as sa
from jinja2 import Environment

TEMPLATE = Environment(autoescape=False).from_string(
    "Invoice {{ number }} is overdue\n"
    "Dear {{ name }},\n\nour invoice {{ number }} of {{ amount }} {{ currency }} was due on "
    "{{ due }}. Please pay it at {{ link }}.\n\nKind regards,\nAcme S.L.\n"
)
HTML = Environment(autoescape=True).from_string(
    "<html><body><p>Dear {{ name }},</p><p>our invoice <b>{{ number }}</b> of {{ amount }} "
    "{{ currency }} was due on {{ due }}. <a href='{{ link }}'>Pay it here</a>.</p>"
    "<p>Kind regards,<br>Acme S.L.</p></body></html>"
)


def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def run(csv: str, due: str, ledger_url: str, smtp_port: int) -> dict:
    t0, cpu0 = time.perf_counter(), time.process_time()
    invoices = pd.read_csv(csv, dtype=str).set_index("invoice_number")
    todo = pd.read_csv(due, dtype=str)
    engine = _engine(ledger_url)
    meta = sa.MetaData()
    outbox = sa.Table(
        "plain_outbox",
        meta,
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("message_id", sa.String),
        sa.Column("sent_at", sa.Float),
    )
    meta.create_all(engine)
    smtp = smtplib.SMTP("127.0.0.1", smtp_port, timeout=30)
    smtp.ehlo()
    sent = 0
    for number, stage in zip(todo["invoice"], todo["stage"], strict=True):
        inv = invoices.loc[number]
        key = f"{number}:{stage}:email"
        try:
            with engine.begin() as conn:  # the claim: only one run gets the key
                conn.execute(sa.insert(outbox).values(key=key, state="sending"))
        except sa.exc.IntegrityError:
            continue
        values = dict(
            name=inv["customer_name"],
            number=number,
            amount=inv["amount_due"],
            currency=inv["currency"],
            due=inv["due_date"],
            link=inv["payment_link"],
        )
        subject, text = TEMPLATE.render(values).split("\n", 1)
        msg = EmailMessage()
        msg["From"] = "Acme S.L. <cobros@acme.example>"
        msg["To"] = inv["email"]
        msg["Subject"] = subject
        msg["Message-ID"] = f"<plain.{key}@acme.example>"
        msg.set_content(text)
        msg.add_alternative(HTML.render(values), subtype="html")
        smtp.sendmail("cobros@acme.example", [inv["email"]], msg.as_bytes(policy=email_policy.SMTP))
        with engine.begin() as conn:
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.key == key)
                .values(state="sent", message_id=msg["Message-ID"], sent_at=time.time())
            )
        sent += 1
    smtp.quit()
    seconds = time.perf_counter() - t0
    return {
        "scenario": "plain",
        "sent": sent,
        "seconds": seconds,
        "rate": sent / seconds,
        "cpu_s": time.process_time() - cpu0,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", required=True, help="the invoices (bench.synth's CSV)")
    p.add_argument("--due", required=True, help="CSV of the due reminders: invoice, stage")
    p.add_argument("--ledger-url", required=True, help="a fresh SQLite or PostgreSQL database")
    p.add_argument("--smtp-port", type=int, required=True)
    args = p.parse_args(argv)
    print(json.dumps(run(args.csv, args.due, args.ledger_url, args.smtp_port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
