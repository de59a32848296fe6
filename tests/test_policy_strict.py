"""A policy is strict at load: an unknown key names its path, the keys allowed there and the
closest one; a stage whose template is missing in a language in use fails at load, not at
send time; a policy's `templates_dir` overlays the built-in templates file by file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from blocks import DunningPolicy
from dunning.policy import PolicyError, load_policy
from dunning.render import message_context, render_email

STAGES = [
    {"name": "due", "offset_days": 0},
    {
        "name": "final",
        "offset_days": 30,
        "escalation": {"human_task": "Decide", "assignee": "manager"},
    },
]


def write(tmp_path: Path, policy: dict, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    return path


def problems(path: Path, **kwargs) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(path, **kwargs)
    assert str(path) in str(caught.value)
    return caught.value.problems


def test_a_misspelt_key_names_its_path_the_allowed_keys_and_the_closest(tmp_path):
    stages = [dict(s) for s in STAGES]
    stages[1] = {**stages[1], "escalation": {"human_task": "Decide", "asignee": "manager"}}
    assert problems(write(tmp_path, {"stages": stages})) == [
        "stages[1].escalation.asignee: unknown key (did you mean 'assignee'?); allowed keys: "
        "assignee, customer_status, human_task, notify, task_due_days"
    ]


def test_the_issues_send_customer_message_is_rejected_not_ignored(tmp_path):
    stages = [{**STAGES[0], "send_customer_message": False}, STAGES[1]]
    [line] = problems(write(tmp_path, {"stages": stages}))
    assert line.startswith("stages[0].send_customer_message: unknown key; allowed keys: ")
    assert "offset_days" in line and "template" in line and "escalation" in line


def test_unknown_keys_are_found_at_every_depth_and_all_reported(tmp_path):
    policy = {
        "stages": STAGES,
        "windw": {"start": "09:00"},
        "segments": [{"name": "vip", "stages": [{"name": "due", "ofset_days": 2}]}],
        "replies": {"manager_email": ["boss@acme.example"]},
    }
    found = problems(write(tmp_path, policy))
    assert any(p.startswith("windw: unknown key (did you mean 'window'?)") for p in found)
    assert any(
        p.startswith("segments[0].stages[0].ofset_days: unknown key (did you mean 'offset_days'")
        for p in found
    )
    assert any(
        p.startswith("replies.manager_email: unknown key (did you mean 'manager_emails'?)")
        for p in found
    )
    # the missing required key of the same stage is reported too, with its path
    assert "segments[0].stages[0].offset_days: Field required" in found


def test_a_stage_without_its_template_fails_at_load(tmp_path):
    stages = [*STAGES, {"name": "courtesy_call", "offset_days": 3}]
    [line] = problems(write(tmp_path, {"stages": stages}))
    assert line.startswith(
        "stages[2].template: stage 'courtesy_call' has no 'es' email template "
        "(missing email/es/courtesy_call.subject.txt, courtesy_call.txt, courtesy_call.html)"
    )
    # a template named by the stage is checked the same way
    stages = [{**STAGES[0], "template": "overdue_77"}, STAGES[1]]
    [line] = problems(write(tmp_path, {"stages": stages, "language": "pt"}))
    assert line.startswith("stages[0].template: stage 'due' has no 'pt' email template")


def overlay(tmp_path: Path) -> Path:
    """A templates folder holding only a Spanish courtesy_call and a new due subject."""
    folder = tmp_path / "my-templates" / "email" / "es"
    folder.mkdir(parents=True)
    (folder / "courtesy_call.subject.txt").write_text("Una llamada sobre {{ invoice_number }}")
    (folder / "courtesy_call.txt").write_text(
        '{% extends "email/_layout.txt" %}{% block intro %}Le llamaremos.{% endblock %}'
    )
    (folder / "courtesy_call.html").write_text(
        '{% extends "email/_layout.html" %}{% block intro %}<p>Le llamaremos.</p>{% endblock %}'
    )
    (folder / "due.subject.txt").write_text("Nuestro asunto: {{ invoice_number }}")
    return tmp_path / "my-templates"


def test_templates_dir_overlays_the_built_in_templates_file_by_file(tmp_path):
    overlay(tmp_path)
    stages = [*STAGES, {"name": "courtesy_call", "offset_days": 3}]
    # relative to the policy file's folder
    policy = load_policy(write(tmp_path, {"stages": stages, "templates_dir": "my-templates"}))
    assert Path(policy.templates_dir) == (tmp_path / "my-templates").resolve()

    ctx = message_context(
        customer_name="Ebro S.L.",
        invoice_number="F-1",
        amount_due=10.0,
        amount_total=10.0,
        currency="EUR",
        due_date=date(2026, 12, 2),
        issue_date=None,
        today=date(2026, 12, 5),
        language="es",
        country="ES",
    )
    new = render_email("courtesy_call", "es", ctx, overlay=policy.templates_dir)
    assert new.subject == "Una llamada sobre F-1"
    assert "Le llamaremos." in new.text and "Ebro S.L." in new.text  # the built-in layout
    changed = render_email("due", "es", ctx, overlay=policy.templates_dir)
    built_in = render_email("due", "es", ctx)
    assert changed.subject == "Nuestro asunto: F-1"
    assert changed.text == built_in.text  # only the subject file was overlaid
    assert built_in.subject != changed.subject


def test_every_language_in_use_is_checked_overlay_included(tmp_path):
    overlay(tmp_path)
    stages = [*STAGES, {"name": "courtesy_call", "offset_days": 3}]
    path = write(tmp_path, {"stages": stages, "templates_dir": "my-templates"})
    assert load_policy(path, languages=["es"]).stages[2].name == "courtesy_call"
    [line] = problems(path, languages=["es", "pt"])
    assert line.startswith("stages[2].template: stage 'courtesy_call' has no 'pt' email template")


def test_the_built_in_ladder_and_the_policy_block_load_strictly(tmp_path):
    assert [s.name for s in load_policy().stages][:2] == ["pre_due", "due"]
    assert DunningPolicy.from_yaml(None).name == "default"
    with pytest.raises(PolicyError, match=r"stages\[0\]\.tono: unknown key"):
        DunningPolicy.from_yaml(write(tmp_path, {"stages": [{**STAGES[0], "tono": "firm"}]}))


def test_a_sweep_sends_the_overlaid_template(tmp_path):
    """The policy's templates_dir reaches the send step, not only `dunning plan`'s preview."""
    from apps.mailsink import MailSink
    from dunning.ledger import Ledger
    from dunning.smtp import SmtpPool, SmtpSettings
    from tests.faults import core
    from tests.invoices import write_invoices

    overlay(tmp_path)
    stages = [*STAGES, {"name": "courtesy_call", "offset_days": 3}]
    policy = load_policy(write(tmp_path, {"stages": stages, "templates_dir": "my-templates"}))
    due_today = core.NOW.date().isoformat()
    csv = write_invoices(
        tmp_path / "invoices.csv", [{"invoice_number": "F-1", "due_date": due_today}]
    )
    read, lookup = core.csv_source(str(csv))
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(sink.host, sink.port, timeout=10), size=1)
        outcomes = core.sweep(
            read, lookup, Ledger(f"sqlite:///{tmp_path}/l.db"), pool, policy=policy
        )
        pool.close()
        (mail,) = sink.messages()
    assert [o["status"] for o in outcomes] == ["sent"]
    assert mail["Subject"] == "Nuestro asunto: F-1"


def test_the_policy_block_refuses_an_unknown_top_level_key_as_the_file_does():
    """A Prefect Block accepts extra keys; the Dunning Policy block must not ignore them."""
    with pytest.raises(ValueError, match="send_customer_message: unknown key") as err:
        DunningPolicy(stages=[{"name": "due", "offset_days": 0}], send_customer_message=False)
    assert "allowed keys: business_day_offsets" in str(err.value)
    with pytest.raises(ValueError, match=r"did you mean 'stages'"):
        DunningPolicy.model_validate({"stagess": []})
    # What Prefect writes into a saved block's data still loads.
    saved = DunningPolicy.default().model_dump()
    assert "block_type_slug" in saved
    assert DunningPolicy.model_validate(saved).stages == DunningPolicy.default().stages
