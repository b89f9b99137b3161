"""The one redaction function: everything printed, logged or journaled goes through it."""

from __future__ import annotations

import re
from typing import Any

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_KV_SECRET = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|authorization)\b\s*[=:]\s*)(?P<val>[^\s&;,]+)"
)
_QUERY_SECRET = re.compile(r"(?i)(?P<key>[?&](?:password|token|key|secret|sig)=)(?P<val>[^&\s]+)")
MASK = "***"

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a value that must never be shown (e.g. an environment variable marked secret)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(value: Any) -> Any:
    """Return `value` with passwords, tokens and registered secrets masked. Walks dicts, lists and tuples."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: (MASK if _secret_key(k) and v else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value


def redact_text(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _KV_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)
    return text


def _secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(re.search(r"(?i)password|secret|token|api_?key", key))
