"""The message builder's shortcuts write exactly what the standard library would.

`dunning.mail.MAIL_POLICY` writes a short printable-ASCII header as it is instead of
folding it through `email.header.Header`, and `build_email` sets the multipart boundaries
instead of letting the generator draw them. Both are for speed (a sweep builds thousands of
messages); neither may change a byte a mail server or a customer's client sees.
"""

from __future__ import annotations

import email
import re
from email.policy import Compat32

import pytest

from dunning.mail import MAIL_POLICY, build_email
from dunning.render import RenderedMessage


class _Reference(type(MAIL_POLICY)):
    """The same policy with the standard library's folding for every header."""

    def _fold(self, name, value, sanitize):  # noqa: ANN001, ANN202
        return Compat32._fold(self, name, value, sanitize)


CASES = [
    ("Recordatorio: factura F-2026-001", "ana@cliente.example", "Acme S.L."),
    ("Aviso final: factura F-1 vencida hace 30 días", "ana@cliente.example", "Cobros Ñandú"),
    ("x" * 300, "a@b.example, c@d.example", ""),
    ("Reminder: " + "invoice overdue " * 12, ", ".join(f"ap{i}@c.example" for i in range(9)), ""),
    ("Invoice " + "9" * 120 + " is overdue", "someone.with.a.very.long.address@example.com", ""),
    ("Tab\there and trailing space ", "a@b.example", "A \"quoted\" name"),
]


@pytest.mark.parametrize(("subject", "to", "from_name"), CASES)
def test_the_fast_header_writer_gives_the_standard_bytes(subject, to, from_name, tmp_path):
    pdf = tmp_path / "F-1.pdf"
    pdf.write_bytes(b"%PDF-1.4 test")
    rendered = RenderedMessage(subject, "Hola,\nsu factura vence.\n", "<p>Hola</p>", "es")
    message = build_email(
        rendered,
        from_address="cobros@acme.example",
        from_name=from_name,
        to=to,
        key="F-1:overdue_7:email",
        reply_to="Maria <maria@acme.example>",
        attachments=[pdf],
    )
    crlf = {"linesep": "\r\n"}
    fast = message.as_bytes(policy=MAIL_POLICY.clone(**crlf))
    reference = message.as_bytes(policy=_Reference().clone(**crlf))
    assert fast == reference
    parsed = email.message_from_bytes(fast)
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", parsed["Subject"])  # RFC 5322 unfolding
    assert str(email.header.make_header(email.header.decode_header(unfolded))) == subject
    assert all(len(line) <= 998 for line in fast.split(b"\r\n"))


def test_boundaries_are_set_distinct_and_absent_from_the_text():
    rendered = RenderedMessage("S", "text", "<p>html</p>", "en")
    message = build_email(rendered, from_address="a@acme.example", to="b@c.example", key="K")
    boundaries = [p.get_boundary() for p in message.walk() if p.is_multipart()]
    assert boundaries and all(boundaries) and len(set(boundaries)) == len(boundaries)
    # A text that happens to contain the boundary keeps the generator's own.
    stem = boundaries[0].rsplit("_", 1)[0]
    clash = RenderedMessage("S", f"see {stem}", "<p>x</p>", "en")
    message = build_email(clash, from_address="a@acme.example", to="b@c.example", key="K")
    assert all(p.get_boundary() is None for p in message.walk() if p.is_multipart())
    assert stem not in message.as_string().split("see ", 1)[0]
