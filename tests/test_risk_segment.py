"""The ladder presses harder where payment is least likely: a risk segment of the policy
(`min_p_late`) gives a high-risk invoice its own, earlier stages; the plan shows the score."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from dunning.importers import normalize
from dunning.plan import plan
from dunning.policy import Policy, default_policy
from dunning.risk import RiskModel, ledger_history
from tests.test_risk import simulate_ledger

# A segment for likely-late invoices: a first reminder a week before the due date and a
# call task as soon as it is due.
HIGH_RISK = {
    "name": "high_risk",
    "min_p_late": 0.6,
    "stages": [
        {"name": "pre_due", "offset_days": -7, "tone": "friendly"},
        {
            "name": "due",
            "offset_days": 0,
            "tone": "firm",
            "escalation": {"human_task": "Call before it is late"},
        },
        {"name": "final", "offset_days": 20, "tone": "final"},
    ],
}


def test_high_risk_invoice_gets_the_segments_earlier_reminder(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    simulate_ledger(url)
    history = ledger_history(url)
    model = RiskModel.fit(history)
    invoices = normalize(
        pd.DataFrame(
            {
                "invoice_number": ["N-SLOW", "N-OK"],
                "customer_id": ["SLOW-1", "OK-1"],
                "email": ["ap@slow.example", "ap@ok.example"],
                "amount_total": "500.00",
                "amount_due": "500.00",
                "issue_date": "2025-06-10",
                "due_date": "2025-07-10",  # Thursday
            },
            dtype=str,
        )
    ).invoices
    invoices["p_late"] = model.score_invoices(invoices, history)
    policy = Policy.model_validate(default_policy().model_dump() | {"segments": [HIGH_RISK]})

    # Thursday 3 July, a week before the due date: only the high-risk invoice is reminded.
    planned = plan(invoices, policy, datetime.fromisoformat("2025-07-03T10:00:00+02:00"))
    by_invoice = planned.set_index("invoice")
    assert by_invoice.loc["N-SLOW", "p_late"] >= 0.6 > by_invoice.loc["N-OK", "p_late"]
    assert by_invoice.loc["N-SLOW", ["segment", "stage"]].tolist() == ["high_risk", "pre_due"]
    assert by_invoice.loc["N-OK", "segment"] == ""
    assert by_invoice.loc["N-OK", "skip_reason"] == "not_due_yet"

    # Without scores nobody is in the segment: the same day plans nothing for either.
    unscored = plan(
        invoices.drop(columns="p_late"), policy, datetime.fromisoformat("2025-07-03T10:00:00+02:00")
    )
    assert unscored["skip_reason"].tolist() == ["not_due_yet", "not_due_yet"]


def test_dunning_plan_scores_with_the_policys_model_and_shows_score_and_segment(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from apps.cli import app
    from tests.invoices import write_invoices

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    simulate_ledger(url)
    model = tmp_path / "risk.joblib"
    RiskModel.fit(ledger_history(url)).save(model)
    policy = default_policy().model_dump(mode="json") | {
        "segments": [HIGH_RISK],
        "risk_model": str(model),
    }
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    csv = write_invoices(
        tmp_path / "open.csv",
        [
            dict(
                invoice_number="N-SLOW",
                customer_id="SLOW-1",
                issue_date="2025-06-10",
                due_date="2025-07-10",
            ),
            dict(
                invoice_number="N-OK",
                customer_id="OK-1",
                issue_date="2025-06-10",
                due_date="2025-07-10",
            ),
        ],
    )
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "--invoices",
            str(csv),
            "--policy",
            str(tmp_path / "policy.yaml"),
            "--ledger",
            url,
            "--now",
            "2025-07-03T10:00:00+02:00",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {r["invoice"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["N-SLOW"]["segment"] == "high_risk" and rows["N-SLOW"]["stage"] == "pre_due"
    assert rows["N-SLOW"]["p_late"] >= 0.6 > rows["N-OK"]["p_late"]
    assert rows["N-OK"]["skip_reason"] == "not_due_yet"

    # A model file that is not there: a clear error naming it, nothing planned.
    policy["risk_model"] = str(tmp_path / "missing.joblib")
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    broken = CliRunner().invoke(
        app, ["plan", "--invoices", str(csv), "--policy", str(tmp_path / "policy.yaml")]
    )
    assert broken.exit_code == 2 and "missing.joblib" in broken.output
