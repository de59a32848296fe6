"""The typed action (`dunning.action`) and the core sweep (`dunning.sweep`), without Prefect."""

from __future__ import annotations

import logging
import pickle

import pandas as pd
import pytest

from dunning.action import (
    ActionKey,
    Outcome,
    PlannedAction,
    key_column,
    stage_column,
    stage_keys,
    with_channels,
)
from dunning.importers import ImportResult
from dunning.ledger import SyncReport
from dunning.plan import action_dicts, plan, planned_actions
from dunning.policy import default_policy
from dunning.smtp import DEFAULT_POOL_SIZE, NotSent
from dunning.sweep import SEND_WORKERS, act_in_threads, run_sweep
from tests.test_plan import at, frame, invoice

NOW = at("2026-12-09T10:00:00+01:00")  # F-1 (due 2026-11-02) is at overdue_30, inside the window


def action(key: str = "F-1:overdue_7:email", stage: str = "overdue_7") -> PlannedAction:
    return PlannedAction(key=ActionKey.parse(key), customer="C1", stage=stage)


# -- ActionKey -----------------------------------------------------------------------------


def test_a_key_parses_and_formats_back_to_the_same_string():
    key = ActionKey.parse("F-1:promise_broken-7:whatsapp")
    assert (key.invoice, key.stage, key.channel) == ("F-1", "promise_broken-7", "whatsapp")
    assert str(key) == key.format() == "F-1:promise_broken-7:whatsapp"
    assert ActionKey.parse(str(key)) == key


def test_an_invoice_number_with_colons_keeps_them():
    key = ActionKey("2026:A:17", "final", "email")
    assert ActionKey.parse(str(key)) == key


@pytest.mark.parametrize("text", ["F-1", "F-1:overdue_7", ":overdue_7:email", "F-1::email"])
def test_a_string_that_is_not_a_key_is_refused(text):
    with pytest.raises(ValueError, match="not an action key"):
        ActionKey.parse(text)


def test_on_moves_a_key_to_another_channel():
    assert str(ActionKey.parse("F-1:final:whatsapp").on("email")) == "F-1:final:email"


def test_the_vectorized_forms_agree_with_the_key():
    invoices = pd.Series(["F-1", "2026:A:17"])
    keys = key_column(invoices, ["overdue_7", "final"], ["email", "whatsapp"])
    assert [ActionKey.parse(k) for k in keys] == [
        ActionKey("F-1", "overdue_7", "email"),
        ActionKey("2026:A:17", "final", "whatsapp"),
    ]
    assert list(stage_column(pd.Series(keys))) == list(stage_keys(invoices, ["overdue_7", "final"]))
    assert list(stage_column(pd.Series(keys))) == ["F-1:overdue_7", "2026:A:17:final"]
    moved = with_channels(pd.Series(keys), pd.Series(["task", "email"]))
    assert list(moved) == ["F-1:overdue_7:task", "2026:A:17:final:email"]


# -- PlannedAction and Outcome -------------------------------------------------------------


def test_a_planned_action_round_trips_through_its_json_form():
    a = PlannedAction(
        key=ActionKey("F-1", "overdue_7", "email"),
        customer="C1",
        stage="overdue_7",
        segment="vip",
        timezone="Europe/Madrid",
        language="es",
        country="ES",
    )
    data = a.to_dict()
    assert data["key"] == "F-1:overdue_7:email"
    assert (data["invoice"], data["channel"]) == ("F-1", "email")
    assert PlannedAction.from_dict(data) == a
    assert pickle.loads(pickle.dumps(a)) == a  # what a task run's parameters need


def test_missing_plan_values_become_empty_strings():
    a = PlannedAction.from_dict(
        {"key": "F-1:final:task", "customer": "C1", "stage": "final", "segment": None}
        | {"language": float("nan")}
    )
    assert (a.segment, a.language, a.timezone, a.channel) == ("", "", "", "task")


def test_the_task_run_name_reads_invoice_and_stage_from_the_action():
    from tasks.act import send_reminder

    # Prefect formats a task's run name with its parameters, as str.format does.
    a = action("F-1:promise_broken-7:email", stage="promise_broken")
    assert send_reminder.task_run_name.format(action=a) == "F-1-promise_broken"


def test_a_failed_outcome_keeps_the_action_and_a_bounded_reason():
    out = Outcome.failed(action(), RuntimeError("x" * 1000))
    assert (out.status, out.invoice, out.stage, out.channel) == (
        "failed",
        "F-1",
        "overdue_7",
        "email",
    )
    assert len(out.reason) == 300
    assert out.to_dict() == {
        "key": "F-1:overdue_7:email",
        "invoice": "F-1",
        "stage": "overdue_7",
        "channel": "email",
        "status": "failed",
        "reason": "x" * 300,
        "recipient": "",
        "message_id": "",
        "escalations": [],
        "fallback_from": "",
        "fallback_reason": "",
    }
    assert pickle.loads(pickle.dumps(out)) == out  # what a task run's result needs


# -- the plan's boundary -------------------------------------------------------------------


def test_planned_actions_leave_the_frame_typed_one_per_channel():
    planned = plan(frame(invoice("F-1"), invoice("F-2", customer_id="C2")), default_policy(), NOW)
    actions = planned_actions(planned)
    assert [a.invoice for a in actions] == ["F-1", "F-2"]
    assert all(str(a.key) == k for a, k in zip(actions, planned["key"], strict=True))
    assert action_dicts(planned) == [a.to_dict() for a in actions]

    both = planned.assign(channels=["whatsapp,email", "email"], channel=["whatsapp", "email"])
    both = both.assign(key=with_channels(both["key"], both["channel"]))
    assert [str(a.key) for a in planned_actions(both)] == [
        f"F-1:{actions[0].stage}:whatsapp",
        f"F-1:{actions[0].stage}:email",
        f"F-2:{actions[1].stage}:email",
    ]


# -- the core sweep ------------------------------------------------------------------------


def test_the_sweep_runs_its_steps_in_order_and_summarizes(caplog):
    later = invoice("F-9", customer_id="C9", timezone="America/New_York", country="US")
    invoices = frame(invoice("F-1"), invoice("F-2", customer_id="C2"), later)
    quarantine = pd.DataFrame(
        {
            "row": [7, 7],
            "line": [8, 8],
            "invoice_number": ["F-7", "F-7"],
            "field": ["due_date", "amount_due"],
            "value": ["31/02/2026", "-"],
            "reason": ["not a date", "not a number"],
        }
    )
    calls: list[str] = []

    def fetch() -> ImportResult:
        calls.append("fetch")
        return ImportResult(invoices, quarantine)

    def sync(frame_: pd.DataFrame) -> SyncReport:
        calls.append(f"sync {len(frame_)}")
        return SyncReport(new=len(frame_))

    def plan_all(frame_: pd.DataFrame) -> pd.DataFrame:
        calls.append("plan")
        return plan(frame_, default_policy(), NOW)

    def act(actions: list[PlannedAction]) -> list[Outcome]:
        calls.append(f"act {[a.invoice for a in actions]}")
        return [
            Outcome(actions[0].key, actions[0].stage, "sent"),
            Outcome.failed(actions[1], "SMTP down"),
        ]

    with caplog.at_level(logging.INFO, logger="dunning.sweep"):
        summary = run_sweep(fetch=fetch, sync=sync, plan=plan_all, act=act, now=NOW)
    # 10:00 in Madrid is 04:00 in New York: F-9 waits for its window.
    assert calls == ["fetch", "sync 3", "plan", "act ['F-1', 'F-2']"]
    assert "2 actions due now, 1 waiting for their window" in caplog.text
    assert (summary.invoices, summary.sent, summary.failed, summary.deferred) == (3, 1, 1, 1)
    assert summary.quarantined_rows == 1 and summary.sync["new"] == 3
    assert summary.quarantine[0].startswith("quarantined row 7")
    assert summary.next_send_at is not None and summary.next_send_at.startswith("2026-12-09T14:")
    assert [a["status"] for a in summary.actions] == ["sent", "failed"]
    assert summary.actions[1]["reason"] == "SMTP down"


def test_acting_in_threads_retries_temporary_refusals_only():
    tries: dict[str, int] = {}

    def act_one(a: PlannedAction) -> Outcome:
        tries[a.invoice] = tries.get(a.invoice, 0) + 1
        if a.invoice == "T-1" and tries["T-1"] < 3:
            raise NotSent("451 try later")
        if a.invoice == "P-1":
            raise NotSent("550 no such user", permanent=True)
        if a.invoice == "X-1":
            raise KeyError("boom")
        return Outcome(a.key, a.stage, "sent")

    actions = [action(f"{n}:overdue_7:email") for n in ("T-1", "P-1", "X-1", "OK-1")]
    outcomes = act_in_threads(actions, act_one, workers=2, retry_delays=[0, 0])
    assert [(o.invoice, o.status) for o in outcomes] == [
        ("T-1", "sent"),
        ("P-1", "failed"),
        ("X-1", "failed"),
        ("OK-1", "sent"),
    ]
    assert tries == {"T-1": 3, "P-1": 1, "X-1": 1, "OK-1": 1}
    assert "550" in outcomes[1].reason

    tries.clear()
    (gave_up,) = act_in_threads(actions[:1], act_one, retry_delays=[0])
    assert (gave_up.status, tries["T-1"]) == ("failed", 2)  # out of retries


def test_the_sweep_sends_with_no_more_threads_than_the_pool_has_connections():
    assert SEND_WORKERS <= DEFAULT_POOL_SIZE
