"""A provider's quota as a Prefect rate limit shared by every worker: created by the sweep
itself (a limit that does not exist would be silently ignored by Prefect) and taken once per
message."""

from __future__ import annotations

from prefect.client.orchestration import get_client

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, LedgerDatabase
from flows.sweep import dunning_sweep
from tests.invoices import write_invoices
from tests.test_flows import NOW, channel_for


def test_smtp_quota_becomes_a_rate_limit_and_every_reminder_still_goes(prefect_api, tmp_path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number=f"Q-{i}", email=f"ap{i}@q.example", due_date="2026-12-02")
            for i in range(5)
        ],
    )
    with MailSink(tmp_path / "outbox", port=0) as sink:
        channel = channel_for(sink, messages_per_second=20)
        counts = dunning_sweep(
            source=CsvInvoiceSource(path=str(csv)),
            channel=channel,
            ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/ledger.db"),
            now=NOW,
        )
        assert counts["sent"] == 5 and len(sink.messages()) == 5
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(channel.rate_limit_name())
    assert channel.rate_limit_name() == "dunning-smtp-127.0.0.1"
    assert limit.slot_decay_per_second == 20 and limit.active


def test_no_quota_no_limit():
    from prefect_email import EmailServerCredentials

    from blocks import EmailChannel

    channel = EmailChannel(
        credentials=EmailServerCredentials(smtp_server="smtp.example", smtp_port=587),
        from_address="a@b.example",
    )
    assert channel.rate_limit_name() is None
