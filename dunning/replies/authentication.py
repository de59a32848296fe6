"""What our receiving mail server said about a message's sender: SPF and DMARC verdicts.

The From header is written by whoever sends the mail; only the receiving server can check
it (SPF: was the sending host allowed for the envelope domain; DMARC: does the From domain
align with a passing SPF or DKIM). The server writes its verdicts in an
`Authentication-Results` header (RFC 8601), which `authres` parses (comments, quoting and
property types included, which a regular expression would get wrong).

A message that any such header marks `spf=fail` or `dmarc=fail` may change nothing (no
pause, promise or opt-out): it becomes a task for a person. Any header counts, not only the
top one: a forged header can only make its own message less trusted, never more, because a
`pass` never outweighs a `fail`. Without the header nothing is known and nothing changes
(see docs/security.md, "Mail authentication", for what the mail server must add).
"""

from __future__ import annotations

from collections.abc import Mapping

import authres

#: Header key the IMAP reader stores the verdicts under: one original header per line.
HEADER = "authentication-results"
#: Methods whose `fail` means the From address is not to be believed.
CHECKED = ("dmarc", "spf")


def authentication_failures(headers: Mapping[str, str] | None) -> list[str]:
    """The failed checks (`"dmarc=fail (mx.acme.es)"`, ...) that the stored
    Authentication-Results headers report; empty when none failed or none were added.

    A header that cannot be parsed counts as a failure: it was written to be read by us.

    Example:
        >>> authentication_failures({"authentication-results":
        ...     "mx.acme.es; spf=fail smtp.mailfrom=x.test; dmarc=fail header.from=x.test"})
        ['spf=fail (mx.acme.es)', 'dmarc=fail (mx.acme.es)']
    """
    value = {k.lower(): v for k, v in (headers or {}).items()}.get(HEADER, "")
    failures = []
    for line in value.splitlines():
        if not line.strip():
            continue
        try:
            parsed = authres.AuthenticationResultsHeader.parse_value(line.strip())
        except Exception as exc:  # authres raises several syntax error types
            failures.append(f"unreadable Authentication-Results ({type(exc).__name__})")
            continue
        for result in parsed.results:
            method, verdict = str(result.method).lower(), str(result.result).lower()
            if method in CHECKED and verdict == "fail":
                failures.append(f"{method}={verdict} ({parsed.authserv_id})")
    return failures
