"""Payment-risk scoring: leak-free features, the CLI on the real data sets, the ledger format,
the planner's API, and the model file's guards."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from dunning.importers import normalize
from dunning.ledger.models import InvoiceRecord
from dunning.ledger.store import Ledger
from dunning.risk import RiskModel, RiskModelError, ledger_history, read_sap, sidecar_path
from dunning.risk.evaluation import time_split_evaluation
from dunning.risk.features import build_features
from tests.realdata import real_data_path

DUNNING = str(Path(sys.executable).with_name("dunning"))
#: A few made-up rows in the IBM sample's columns, for tests that only need a file to name.
SMALL_IBM = Path(__file__).parent / "data" / "ibm_format_small.csv"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DUNNING, *args], capture_output=True, text=True, timeout=300)


def printed_scores(stdout: str, label: str) -> tuple[float, float]:
    """(AUC, Brier) of a line of the printed evaluation table."""
    match = re.search(rf"^{re.escape(label)}\s+([\d.]+)\s+([\d.]+)$", stdout, re.M)
    assert match, stdout
    return float(match.group(1)), float(match.group(2))


@pytest.fixture(scope="module")
def sap_csv() -> Path:
    return real_data_path("sap_ar_2017_2018.csv.gz")


@pytest.fixture(scope="module")
def ibm_csv() -> Path:
    return real_data_path("ibm_accounts_receivable.csv")


@pytest.fixture(scope="module")
def sap_data(sap_csv):
    return read_sap(sap_csv)


# -- no leakage from the future ---------------------------------------------------------------


def frame(*rows: tuple[str, str, str, str | None, float]) -> pd.DataFrame:
    """(customer, issued, due, paid or None, amount) rows as a risk frame."""
    out = pd.DataFrame(
        [
            {"customer_id": c, "issue_date": i, "due_date": d, "paid_date": p, "amount": a}
            for c, i, d, p, a in rows
        ]
    )
    for col in ("issue_date", "due_date", "paid_date"):
        out[col] = pd.to_datetime(out[col])
    out["row"] = np.arange(len(out))
    out["invoice_id"] = [f"I{i}" for i in range(len(out))]
    return out.assign(disputed=0.0, valid=True, duplicate=False)


def test_history_is_what_was_settled_or_overdue_before_the_issue_day() -> None:
    hist = frame(
        ("A", "2024-01-01", "2024-01-31", "2024-02-10", 100),  # settled late before Mar 1
        ("A", "2024-01-15", "2024-02-14", "2024-02-01", 100),  # settled on time
        ("A", "2024-01-20", "2024-02-19", "2024-03-20", 100),  # overdue and unpaid on Mar 1
        ("A", "2024-02-25", "2024-03-26", None, 100),  # open, not due on Mar 1
        ("A", "2024-03-05", "2024-02-01", "2024-02-20", 100),  # issued after: not known yet
        ("B", "2024-01-01", "2024-01-31", "2024-01-10", 100),  # another customer
        ("A", "2024-03-01", "2024-03-31", "2024-02-28", 100),  # the invoice scored
    )
    f = build_features(hist.tail(1), hist).iloc[0]
    assert f["hist_settled_n"] == 2
    assert f["hist_late_share"] == 0.5
    assert f["hist_days_late_max"] == 10
    assert f["issued_n"] == 4
    assert f["open_n"] == 2
    assert f["overdue_open_n"] == 1
    assert f["tenure_days"] == 60


def test_a_customers_features_do_not_change_when_later_invoices_are_added_or_changed(
    sap_data,
) -> None:
    """Cut the real SAP history at a day as it stood then: invoices issued later removed,
    payments made later undone. Features of invoices issued up to that day are unchanged."""
    full = sap_data.frame
    cut = pd.Timestamp("2018-03-01")
    known = full[full["issue_date"] < cut].copy()
    known.loc[known["paid_date"] >= cut, "paid_date"] = pd.NaT
    targets = full[full["issue_date"] <= cut]
    # And rewrite the future the other way: every later payment a year late.
    rewritten = full.copy()
    later = rewritten["paid_date"] >= cut
    rewritten.loc[later, "paid_date"] += pd.Timedelta(days=365)

    as_seen_then = build_features(targets, known, sap_data.categorical)
    with_future = build_features(targets, full, sap_data.categorical)
    with_other_future = build_features(targets, rewritten, sap_data.categorical)
    assert with_future["hist_settled_n"].sum() > 10_000  # the history is really used
    pd.testing.assert_frame_equal(with_future, as_seen_then)
    pd.testing.assert_frame_equal(with_other_future, as_seen_then)


def test_sap_time_split_meets_the_targets(sap_data) -> None:
    ev = time_split_evaluation(sap_data.frame, pd.Timestamp("2018-07-01"))
    assert ev.train_span[1] < "2018-07-01" <= ev.eval_span[0]
    assert ev.model.auc >= 0.85, ev.as_dict()
    assert ev.model.brier <= 0.16, ev.as_dict()
    assert ev.model.auc > ev.baseline.auc and ev.model.brier < ev.baseline.brier
    # Calibrated: in every well-filled bin the observed late rate is near the predicted one.
    big = ev.calibration[ev.calibration["n"] >= 1000]
    assert ((big["predicted"] - big["observed"]).abs() < 0.08).all(), ev.calibration


# -- the command line on the real data sets ---------------------------------------------------


def test_ibm_train_and_score_round_trip(tmp_path, ibm_csv) -> None:
    model = tmp_path / "ibm.joblib"
    trained = run(
        "risk", "train", "--history", str(ibm_csv), "--format", "ibm", "--model", str(model)
    )
    assert trained.returncode == 0, trained.stderr
    auc, brier = printed_scores(trained.stdout, "model (calibrated)")
    base_auc, base_brier = printed_scores(trained.stdout, "baseline: past late share")
    assert auc > 0.8 and brier < base_brier, trained.stdout
    assert "calibration" in trained.stdout and "observed" in trained.stdout
    meta = json.loads(sidecar_path(model).read_text())
    assert meta["evaluation"]["auc"] == pytest.approx(auc, abs=0.0006)
    assert "channel" in meta["features"] and "hist_late_share" in meta["features"]

    out = tmp_path / "ibm-scores.csv"
    scored = run(
        "risk", "score", "--invoices", str(ibm_csv), "--format", "ibm", "--model", str(model),
        "--out", str(out),
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_csv(out, dtype={"invoice_number": str})
    source = pd.read_csv(ibm_csv, dtype=str)
    assert scores["row"].tolist() == list(range(len(source)))
    assert scores["invoice_number"].tolist() == source["invoiceNumber"].tolist()
    assert scores["p_late"].between(0, 1).all()
    late = source["DaysLate"].astype(int) > 0
    assert scores.loc[late, "p_late"].mean() > scores.loc[~late, "p_late"].mean() + 0.2


def test_scoring_newer_invoices_alone_with_the_older_file_as_history(tmp_path, ibm_csv) -> None:
    """A file of new invoices scores as it would inside the whole history, given --history."""
    source = pd.read_csv(ibm_csv, dtype=str)
    issued = pd.to_datetime(source["InvoiceDate"], format="%m/%d/%Y")
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    source[issued < "2013-07-01"].to_csv(old, index=False)
    source[issued >= "2013-07-01"].to_csv(new, index=False)
    model = tmp_path / "m.joblib"
    assert (
        run(
            "risk", "train", "--history", str(old), "--format", "ibm", "--model", str(model)
        ).returncode
        == 0
    )

    def scores(invoices: Path, *history: str) -> pd.Series:
        out = tmp_path / "s.csv"
        proc = run(
            "risk", "score", "--invoices", str(invoices), "--format", "ibm",
            "--model", str(model), "--out", str(out), *history,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return pd.read_csv(out, dtype={"invoice_number": str}).set_index("invoice_number")["p_late"]

    inside_all = scores(ibm_csv)
    alone = scores(new)
    with_history = scores(new, "--history", str(old))
    assert len(with_history) == (issued >= "2013-07-01").sum()
    pd.testing.assert_series_equal(with_history, inside_all.loc[with_history.index])
    assert (alone != with_history).mean() > 0.5  # without it, customers look new


def test_sap_sample_round_trip_rows_match_the_file(tmp_path, sap_csv) -> None:
    raw = pd.read_csv(sap_csv, dtype=str, keep_default_na=False)
    sample = raw[raw["KUNNR"].astype(int) % 10 == 3].reset_index(drop=True)
    invoice_rows = sample.index[sample["TBSLT_LTEXT"] == "Invoice"]
    bad_due, no_customer, bad_payment = invoice_rows[[5, 50, 500]]
    sample.loc[bad_due, "DUE_DATE"] = "2018-13-45"
    sample.loc[no_customer, "KUNNR"] = ""
    sample.loc[bad_payment, "PAYMENT_DATE"] = "someday"
    path = tmp_path / "sap-sample.csv.gz"
    sample.to_csv(path, index=False)
    model = tmp_path / "sap.joblib"

    trained = run(
        "risk", "train", "--history", str(path), "--format", "sap", "--model", str(model),
        "--split-date", "2018-07-01",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert printed_scores(trained.stdout, "model (calibrated)")[0] > 0.8
    assert "Credit memo" in trained.stdout  # the non-invoice rows are named, not hidden
    assert f"row {bad_due} (line {bad_due + 2}): DUE_DATE = '2018-13-45'" in trained.stderr

    out = tmp_path / "scores.csv"
    scored = run(
        "risk", "score", "--invoices", str(path), "--format", "sap", "--model", str(model),
        "--out", str(out),
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_csv(out, keep_default_na=False).set_index("row")
    assert scores.index.tolist() == invoice_rows.tolist()
    assert scores.loc[bad_due, "p_late"] == "" and "DUE_DATE" in scores.loc[bad_due, "problem"]
    assert scores.loc[no_customer, "p_late"] == "" and "KUNNR" in scores.loc[no_customer, "problem"]
    # A bad payment date only keeps the row out of history: it is still scored.
    assert (
        scores.loc[bad_payment, "p_late"] != ""
        and "PAYMENT_DATE" in scores.loc[bad_payment, "problem"]
    )
    good = scores.drop([bad_due, no_customer, bad_payment])
    assert (good["problem"] == "").all()
    assert pd.to_numeric(good["p_late"]).between(0, 1).all()


# -- the ledger ----------------------------------------------------------------------------------

SLOW = [f"SLOW-{i}" for i in range(8)]
PROMPT = [f"OK-{i}" for i in range(16)]
START = date(2025, 1, 6)


def simulate_ledger(url: str, days: int = 150) -> Ledger:
    """A ledger as successive sweeps leave it: customers invoiced every ~10 days on 30-day
    terms; SLOW customers pay 5-30 days late, the others up to 10 days early."""
    rng = np.random.default_rng(3)
    issued: list[dict] = []
    pay_day: dict[str, date] = {}
    for customer in SLOW + PROMPT:
        day = START + timedelta(days=int(rng.integers(0, 10)))
        while day < START + timedelta(days=days):
            number = f"{customer}-{len(issued)}"
            due = day + timedelta(days=30)
            delay = rng.integers(5, 31) if customer in SLOW else rng.integers(-10, 1)
            pay_day[number] = due + timedelta(days=int(delay))
            issued.append(dict(invoice_number=number, customer_id=customer, issue=day, due=due))
            day += timedelta(days=int(rng.integers(7, 14)))
    ledger = Ledger(url)
    for offset in range(0, days, 3):
        today = START + timedelta(days=offset)
        seen = [r for r in issued if r["issue"] <= today]
        paid = [pay_day[r["invoice_number"]] <= today for r in seen]
        ledger.sync_invoices(
            pd.DataFrame(
                {
                    "invoice_number": [r["invoice_number"] for r in seen],
                    "customer_id": [r["customer_id"] for r in seen],
                    "customer_name": "",
                    "email": "ap@example.com",
                    "phone": "",
                    "currency": "EUR",
                    "amount_total": 500.0,
                    "amount_due": [0.0 if p else 500.0 for p in paid],
                    "due_date": pd.to_datetime([r["due"] for r in seen]),
                    "status": ["paid" if p else "open" for p in paid],
                }
            ),
            now=datetime(today.year, today.month, today.day, 9, tzinfo=UTC),
        )
    ledger.add_pause("dispute", invoice_number=issued[0]["invoice_number"], reason="test")
    return ledger


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('risk') / 'ledger.db'}"
    simulate_ledger(url)
    return url


def test_ledger_train_and_score_open_invoices(ledger_url, tmp_path) -> None:
    model = tmp_path / "ledger.joblib"
    trained = run(
        "risk", "train", "--history", ledger_url, "--format", "ledger", "--model", str(model)
    )
    assert trained.returncode == 0, trained.stderr
    assert "issue date = first_seen" in trained.stdout
    assert printed_scores(trained.stdout, "model (calibrated)")[0] > 0.8

    out = tmp_path / "open.csv"
    scored = run(
        "risk", "score", "--invoices", ledger_url, "--format", "ledger", "--model", str(model),
        "--out", str(out),
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_csv(out)
    records = Ledger(ledger_url).frame(InvoiceRecord)
    open_numbers = set(records.loc[records["status"] == "open", "invoice_number"])
    assert set(scores["invoice_number"]) == open_numbers
    slow = scores["invoice_number"].str.startswith("SLOW")
    assert scores.loc[slow, "p_late"].mean() > scores.loc[~slow, "p_late"].mean() + 0.3


def test_ledger_on_postgresql_reads_the_same_history(pg_url) -> None:
    simulate_ledger(pg_url, days=40)
    history = ledger_history(pg_url)
    paid = history["paid_date"].notna()
    assert paid.any() and (~paid).any()
    # first_seen is the issue-date proxy: the sweep that first saw the invoice (every 3 days).
    assert (history["issue_date"].dt.date >= START).all()
    assert history.loc[history["invoice_id"].str.startswith("SLOW-0"), "disputed"].max() == 1


def test_planner_api_scores_normalized_invoices_index_aligned(ledger_url) -> None:
    model = RiskModel.fit(ledger_history(ledger_url))
    raw = pd.DataFrame(
        {
            "invoice_number": ["N-1", "N-2", "N-3"],
            "customer_id": ["SLOW-1", "OK-1", "OK-2"],
            "email": "ap@example.com",
            "amount_total": "500.00",
            "amount_due": "500.00",
            "issue_date": ["2025-06-10", "2025-06-10", ""],
            "due_date": "2025-07-10",
        },
        dtype=str,
    )
    invoices = normalize(raw).invoices
    invoices.index = [10, 20, 30]
    p = model.score_invoices(invoices, ledger_history(ledger_url))
    assert p.index.tolist() == [10, 20, 30]
    assert p[10] > p[20] + 0.3
    assert np.isnan(p[30])  # no issue date: no score, never a guess
    # Without history every customer is new: still a probability, the same for both.
    cold = model.score_invoices(invoices)
    assert 0 < cold[10] < 1 and cold[10] == pytest.approx(cold[20], abs=0.05)


# -- the model file ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, ledger_url) -> Path:
    path = tmp_path_factory.mktemp("model") / "risk.joblib"
    RiskModel.fit(ledger_history(ledger_url)).save(path)
    return path


def tamper(path: Path, tmp_path: Path, change) -> Path:  # noqa: ANN001
    payload = joblib.load(path)
    change(payload)
    copy = tmp_path / "tampered.joblib"
    joblib.dump(payload, copy)
    return copy


def test_a_model_with_another_feature_list_is_refused(saved_model, tmp_path) -> None:
    copy = tamper(saved_model, tmp_path, lambda p: p["metadata"]["features"].remove("open_n"))
    with pytest.raises(RiskModelError, match="feature list .* retrain"):
        RiskModel.load(copy)


def test_a_model_from_another_sklearn_or_schema_is_refused(saved_model, tmp_path) -> None:
    copy = tamper(saved_model, tmp_path, lambda p: p["metadata"].update(sklearn_version="0.24"))
    with pytest.raises(RiskModelError, match="scikit-learn 0.24"):
        RiskModel.load(copy)
    copy = tamper(saved_model, tmp_path, lambda p: p["metadata"].update(schema_version=0))
    with pytest.raises(RiskModelError, match="feature schema 0"):
        RiskModel.load(copy)


def test_a_sidecar_that_does_not_match_its_model_is_refused(saved_model, tmp_path) -> None:
    copy = tamper(saved_model, tmp_path, lambda p: None)
    meta = json.loads(sidecar_path(saved_model).read_text())
    meta["features"] = meta["features"][:-1]
    sidecar_path(copy).write_text(json.dumps(meta))
    with pytest.raises(RiskModelError, match="do not belong together"):
        RiskModel.load(copy)
    original = json.loads(sidecar_path(saved_model).read_text())
    assert RiskModel.load(saved_model).features == original["features"]


def test_score_with_a_missing_or_foreign_model_file_says_what_to_do(tmp_path) -> None:
    junk = tmp_path / "junk.joblib"
    joblib.dump({"hello": 1}, junk)
    proc = run(
        "risk", "score", "--invoices", str(SMALL_IBM), "--format", "ibm", "--model", str(junk),
        "--out", str(tmp_path / "x.csv"),
    )  # fmt: skip
    assert proc.returncode == 2 and "not a dunning risk model" in proc.stderr
    proc = run(
        "risk", "score", "--invoices", str(SMALL_IBM), "--format", "sap",
        "--model", str(tmp_path / "none.joblib"), "--out", str(tmp_path / "x.csv"),
    )  # fmt: skip
    assert proc.returncode == 2 and "dunning risk train" in proc.stderr
