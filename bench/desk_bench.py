"""Collections desk response times on a large ledger, through the ASGI app.

    .venv/bin/python -m bench.desk_bench [--invoices 100000] [--events 1000000]
        [--ledger URL] [--repeat 20]

Builds a ledger (a fresh SQLite file in a temporary folder unless --ledger names an empty
database) with bulk inserts: synthetic invoices (`bench.synth`: ~25 invoices per customer,
Zipf-skewed so the largest customer holds ~1 % of them), one to three sent actions per
invoice already due, `--events` events spread over the invoices (so the largest customer has
thousands), 20 % as many human tasks (a quarter open), replies, promises and pauses. Then
it starts the desk's app (which adds its indexes, `dunning.ledger.desk`), logs in as a
manager and a collector, and times each page `--repeat` times in-process (Starlette's test
client: routing, session, queries, template rendering; no network).

Target: the task list and a customer page answer in under 200 ms at 100k invoices and 1M
events. Also printed, not targeted: the portfolio page's first build (the weekly report over
every invoice, plus three charts; then cached five minutes) and the desk's start (indexes).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bench.synth import DEFAULT_TODAY, synth_invoices

TARGET_MS = 200.0
COLLECTOR = ("cobrador@bench.example", "bench-pass-1")
MANAGER = ("jefa@bench.example", "bench-pass-2")


def _insert(engine, table: str, frame: pd.DataFrame, chunk: int = 50_000) -> None:  # noqa: ANN001
    """Bulk insert through the DB-API (executemany in one transaction per chunk)."""
    cols = list(frame.columns)
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    names = ", ".join(f'"{c}"' for c in cols)  # quoted: references is a keyword
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(cols))})"
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        batch: list[tuple] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                _flush(engine, raw, cur, sql, batch)
                batch = []
        if batch:
            _flush(engine, raw, cur, sql, batch)
    finally:
        raw.close()


def _flush(engine, raw, cur, sql: str, batch: list[tuple]) -> None:  # noqa: ANN001
    if engine.dialect.name == "sqlite":
        # The ledger's SQLite connections run in autocommit: one explicit transaction a chunk.
        cur.execute("BEGIN")
        cur.executemany(sql, batch)
        cur.execute("COMMIT")
    else:
        cur.executemany(sql, batch)
        raw.commit()


def build_ledger(url: str, n_invoices: int, n_events: int, seed: int = 7) -> dict:
    """Fill an empty ledger at `url`; returns what the timings need (customer ids, names)."""
    from dunning.ledger import Ledger

    rng = np.random.default_rng(seed)
    engine = Ledger(url).engine
    now = datetime.combine(DEFAULT_TODAY, datetime.min.time(), tzinfo=UTC).replace(tzinfo=None)
    inv = synth_invoices(n_invoices, seed=seed)
    n = len(inv)
    status = inv["status"].replace({"part_paid": "open", "disputed": "open"})
    first_seen = now - pd.to_timedelta(rng.integers(0, 120, n), unit="D")
    invoices = pd.DataFrame(
        {
            "invoice_number": inv["invoice_number"],
            "customer_id": inv["customer_id"],
            "customer_name": inv["customer_name"],
            "email": inv["email"],
            "phone": inv["phone"],
            "currency": inv["currency"],
            "amount_total": inv["amount_total"].astype(float),
            "amount_due": inv["amount_due"].astype(float),
            "due_date": inv["due_date"],
            "status": status,
            "first_seen": first_seen.astype(str),
            "last_seen": str(now),
        }
    )
    _insert(engine, "invoices", invoices)

    due = pd.to_datetime(inv["due_date"])
    past = np.flatnonzero((due < pd.Timestamp(DEFAULT_TODAY)).to_numpy())
    stages = np.array(["due", "overdue_1", "overdue_7", "overdue_15", "final"])
    per = rng.integers(1, 4, len(past))
    idx = np.repeat(past, per)
    stage = stages[np.concatenate([np.arange(k) for k in per])]
    numbers = inv["invoice_number"].to_numpy()[idx]
    keys = pd.Series(numbers) + ":" + stage + ":email"
    sent_at = (now - pd.to_timedelta(rng.integers(0, 60 * 86400, len(idx)), unit="s")).astype(str)
    actions = pd.DataFrame(
        {
            "key": keys,
            "invoice_number": numbers,
            "customer_id": inv["customer_id"].to_numpy()[idx],
            "stage": stage,
            "channel": "email",
            "state": "sent",
            "recipient": inv["email"].to_numpy()[idx],
            "amount_due": inv["amount_due"].astype(float).to_numpy()[idx],
            "currency": inv["currency"].to_numpy()[idx],
            "message_id": "<" + keys + "@bench.example>",
            "provider_response": "250 OK",
            "error": "",
            "attempts": 1,
            "flow_run_id": "",
            "created_at": sent_at,
            "updated_at": sent_at,
            "sent_at": sent_at,
            "delivery_status": rng.choice(["", "delivered", "read"], len(idx)),
        }
    )
    _insert(engine, "actions", actions)

    # Events: the sends above, then skips and other activity up to n_events.
    ev_idx = rng.integers(0, n, max(n_events - len(actions), 0))
    kinds = rng.choice(["skipped", "planned", "customer_status", "crm_delivered"], len(ev_idx))
    at = (now - pd.to_timedelta(rng.integers(0, 90 * 86400, len(ev_idx)), unit="s")).astype(str)
    detail_sent = [
        json.dumps({"stage": s, "channel": "email", "subject": f"Factura {k.split(':')[0]}"})
        for s, k in zip(actions["stage"], actions["key"], strict=True)
    ]
    events = pd.concat(
        [
            pd.DataFrame(
                {
                    "at": actions["sent_at"],
                    "kind": "sent",
                    "invoice_number": actions["invoice_number"],
                    "customer_id": actions["customer_id"],
                    "action_key": actions["key"],
                    "actor": "dunning",
                    "detail": detail_sent,
                }
            ),
            pd.DataFrame(
                {
                    "at": at,
                    "kind": kinds,
                    "invoice_number": numbers_of(inv, ev_idx),
                    "customer_id": inv["customer_id"].to_numpy()[ev_idx],
                    "action_key": "",
                    "actor": "dunning",
                    "detail": '{"reason": "not_due_yet"}',
                }
            ),
        ],
        ignore_index=True,
    )
    _insert(engine, "events", events)

    n_tasks = n // 5
    t_idx = rng.integers(0, n, n_tasks)
    assignee = rng.choice(
        ["account_owner", "manager", COLLECTOR[0], "otro@bench.example"],
        n_tasks,
        p=[0.7, 0.2, 0.05, 0.05],
    )
    tasks = pd.DataFrame(
        {
            "key": [f"task:{i}" for i in range(n_tasks)],
            "invoice_number": numbers_of(inv, t_idx),
            "customer_id": inv["customer_id"].to_numpy()[t_idx],
            "title": "Call the customer",
            "assignee": assignee,
            "due_on": (pd.Timestamp(DEFAULT_TODAY) + pd.to_timedelta(
                rng.integers(-10, 10, n_tasks), unit="D")).strftime("%Y-%m-%d"),
            "status": np.where(rng.random(n_tasks) < 0.25, "open", "closed"),
            "note": "",
            "created_at": str(now - timedelta(days=3)),
            "outcome": "",
        }
    )  # fmt: skip
    _insert(engine, "human_tasks", tasks)

    n_small = n // 20
    s_idx = rng.integers(0, n, n_small)
    inbound = pd.DataFrame(
        {
            "provider_id": [f"<in{i}@bench>" for i in range(n_small)],
            "channel": "email",
            "received_at": str(now - timedelta(days=1)),
            "sender": inv["email"].to_numpy()[s_idx],
            "sender_name": "",
            "subject": "Re: Factura",
            "text": "Pagaremos el viernes.",
            "in_reply_to": "",
            "references": "",
            "headers": "{}",
            "action_key": "",
            "invoice_numbers": [json.dumps([x]) for x in numbers_of(inv, s_idx)],
            "customer_id": inv["customer_id"].to_numpy()[s_idx],
            "intent": "promise_to_pay",
            "confidence": 0.9,
            "lang": "es",
            "state": "processed",
            "outcome": "",
        }
    )
    _insert(engine, "inbound_messages", inbound)
    promises = pd.DataFrame(
        {
            "invoice_number": numbers_of(inv, s_idx),
            "customer_id": inv["customer_id"].to_numpy()[s_idx],
            "promised_on": str(DEFAULT_TODAY + timedelta(days=5)),
            "source": "reply",
            "state": "open",
            "made_at": str(now - timedelta(days=1)),
        }
    )
    _insert(engine, "promises", promises)
    pauses = pd.DataFrame(
        {
            "kind": "promise",
            "channel": "",
            "invoice_number": numbers_of(inv, s_idx),
            "until": str(DEFAULT_TODAY + timedelta(days=5)),
            "reason": "promise",
            "active": True,
            "created_at": str(now - timedelta(days=1)),
        }
    )
    _insert(engine, "pauses", pauses)
    counts = inv["customer_id"].value_counts()
    collector_customers = tasks.loc[tasks["assignee"] == COLLECTOR[0], "customer_id"]
    return {
        "invoices": n,
        "actions": len(actions),
        "events": len(events),
        "tasks": n_tasks,
        "open_tasks": int((tasks["status"] == "open").sum()),
        "largest_customer": str(counts.index[0]),
        "largest_invoices": int(counts.iloc[0]),
        "median_customer": str(counts.index[len(counts) // 2]),
        "collector_customer": str(collector_customers.iloc[0]),
        "name_fragment": str(inv["customer_name"].iloc[0]).split()[0][:6],
        "invoice": str(inv["invoice_number"].iloc[n // 2]),
    }  # fmt: skip


def numbers_of(inv: pd.DataFrame, idx: np.ndarray) -> np.ndarray:
    """The invoice numbers at positions `idx`."""
    return inv["invoice_number"].to_numpy()[idx]


def _login(client, who: tuple[str, str]) -> None:  # noqa: ANN001
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = client.post(
        "/login",
        data={"email": who[0], "password": who[1], "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text


def time_pages(url: str, facts: dict, repeat: int) -> list[dict]:
    """Median, p95 and max of each page (ms), through the app in-process."""
    from starlette.testclient import TestClient

    from apps.desk.app import DeskConfig, create_app
    from apps.desk.auth import add_user
    from dunning.ledger import Ledger

    ledger = Ledger(url)
    add_user(ledger, *MANAGER, role="manager")
    add_user(ledger, *COLLECTOR, role="collector")
    t0 = time.perf_counter()
    app = create_app(DeskConfig(ledger_url=url))
    index_s = time.perf_counter() - t0
    manager, collector = TestClient(app), TestClient(app)
    _login(manager, MANAGER)
    _login(collector, COLLECTOR)
    pages = [
        ("task list, manager, page 1", manager, "/tasks"),
        ("task list, manager, page 40", manager, "/tasks?page=40"),
        ("task list, one assignee", manager, "/tasks?assignee=account_owner"),
        ("task list, collector", collector, "/tasks"),
        (f"customer page, largest ({facts['largest_invoices']} inv.)", manager,
         f"/customer?id={facts['largest_customer']}"),
        ("customer page, median customer", manager, f"/customer?id={facts['median_customer']}"),
        ("customer page, collector's", collector,
         f"/customer?id={facts['collector_customer']}"),
        ("search by invoice number", manager, f"/search?q={facts['invoice']}"),
        ("search by name fragment", manager, f"/search?q={facts['name_fragment']}"),
    ]  # fmt: skip
    rows = []
    for label, client, path in pages:
        first = client.get(path)
        assert first.status_code == 200, (path, first.status_code)
        took = []
        for _ in range(repeat):
            t = time.perf_counter()
            r = client.get(path)
            took.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200
        took.sort()
        rows.append(
            {
                "page": label,
                "p50_ms": statistics.median(took),
                "p95_ms": took[min(len(took) - 1, int(0.95 * len(took)))],
                "max_ms": took[-1],
                "kb": len(first.content) / 1024,
            }
        )
    t = time.perf_counter()
    cold = manager.get("/portfolio")
    assert cold.status_code == 200, cold.text[:500]
    cold_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    manager.get("/portfolio")
    rows.append({"page": "(portfolio: 1st build | cached, ms)", "p50_ms": cold_ms,
                 "p95_ms": (time.perf_counter() - t) * 1000, "max_ms": float("nan"),
                 "kb": len(cold.content) / 1024})  # fmt: skip
    rows.append({"page": "(desk start: indexes)", "p50_ms": index_s * 1000, "p95_ms": float("nan"),
                 "max_ms": float("nan"), "kb": float("nan")})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ledger", help="An EMPTY ledger database URL (default: temp SQLite)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="desk-bench-")
    url = args.ledger or f"sqlite:///{Path(tmp.name) / 'ledger.db'}"
    t = time.perf_counter()
    facts = build_ledger(url, args.invoices, args.events)
    build_s = time.perf_counter() - t
    print(
        f"ledger {url.split('@')[-1]}: {facts['invoices']:,} invoices, {facts['actions']:,} "
        f"actions, {facts['events']:,} events, {facts['tasks']:,} tasks "
        f"({facts['open_tasks']:,} open); built in {build_s:.1f} s"
    )
    rows = time_pages(url, facts, args.repeat)
    print(f"\n{'page':<42}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'KiB':>8}  target")
    for r in rows:
        ok = "" if r["page"].startswith("(") else ("ok" if r["p95_ms"] < TARGET_MS else "SLOW")
        print(
            f"{r['page']:<42}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['max_ms']:>9.1f}"
            f"{r['kb']:>8.1f}  {ok}"
        )
    tmp.cleanup()


if __name__ == "__main__":
    main()
