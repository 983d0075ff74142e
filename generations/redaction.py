"""Text safe for a log line or an error message: no OAuth token, cookie or URL signature.

One list of patterns for the whole project, so the engine's error details and the worker's
log lines hide the same things.
"""

from __future__ import annotations

import re

_PATTERNS = [
    # A signed media URL's query carries GoogleAccessId, Expires and the signature.
    (re.compile(r"(https?://[^\s\"'<>?]+)\?[^\s\"'<>]*"), r"\1?[signature removed]"),
    (re.compile(r"ya29\.[\w\-.~+/]+"), "ya29.[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[\w\-.~+/=]+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)((?:signature|googleaccessid|access_token|token)=)[^&\s\"']+"),
        r"\1[redacted]",
    ),
    (re.compile(r"(?i)(session-token=)[^;\s\"']+"), r"\1[redacted]"),
]


def redact(text: str, secrets: tuple[str, ...] = (), limit: int | None = None) -> str:
    """``text`` without any of ``secrets`` (values known to the caller) or anything that looks
    like a token, cookie or URL signature; cut to ``limit`` characters when given."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text if limit is None else text[:limit]
