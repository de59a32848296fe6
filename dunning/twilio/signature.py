"""`X-Twilio-Signature`: how Twilio signs its webhook requests, and the check of it.

The rule (contract §5, Twilio's RequestValidator): start from the full URL Twilio requested
(scheme, host, path, query), append every POST parameter as `name + value`, sorted by name
(a repeated name: each distinct value, sorted), HMAC-SHA1 with the Auth Token, Base64.

The URL is the *public* one the block declares (`SmsChannel.status_callback_url`, ...), not
the one the receiver sees behind a proxy: a request signed for another URL is refused.
Like Twilio's SDKs, the URL is also tried with and without the default port (`:443`/`:80`),
because Twilio's own signing is inconsistent about it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from dunning.inbound.verify import SignatureError

HEADER = "X-Twilio-Signature"


def twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str | Sequence[str]] | None = None
) -> str:
    """The signature Twilio sends for a form POST of `params` to `url`.

    Example (Twilio's own test vector):
        >>> twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
        ...     {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
        ...      "From": "+14158675309", "To": "+18005551212"})
        'RSOYDt4T1cUTdK1PDd93/VVr8B8='
    """
    data = url
    for name in sorted(params or {}):
        value = (params or {})[name]
        values = [value] if isinstance(value, str) else list(value)
        for item in sorted(set(values)):
            data += name + item
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def verify_twilio(
    url: str,
    params: Mapping[str, str | Sequence[str]],
    header: str | None,
    auth_token: str,
) -> None:
    """Raise `SignatureError` unless `header` is Twilio's signature of `params` at `url`."""
    if not header:
        raise SignatureError(f"no {HEADER} header")
    for candidate in _url_forms(url):
        expected = twilio_signature(auth_token, candidate, params)
        if hmac.compare_digest(expected.encode(), header.strip().encode()):
            return
    raise SignatureError(f"{HEADER} does not match the parameters signed for {url}")


def _url_forms(url: str) -> list[str]:
    """The URL as declared, and with the scheme's default port added or removed."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    forms = [url]
    if default is None or not parts.hostname:
        return forms
    host = parts.hostname
    if parts.port is None:
        forms.append(urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    elif parts.port == default:
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        forms.append(urlunsplit(parts._replace(netloc=f"{userinfo}{host}")))
    return forms
