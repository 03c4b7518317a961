"""Redaction of secrets (passwords in URLs, account keys, SAS signatures, tokens) from any text
that may reach a log, an exception message, a repr, CLI output or Dagster metadata.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_PATTERNS = [
    # scheme://user:password@host
    (re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*://[^/:@\s]*:)[^/\s]+(?=@)"), r"\g<pre>***"),
    # AccountKey=...; SharedAccessSignature=...; in connection strings
    (
        re.compile(r"(?i)(?P<pre>(AccountKey|SharedAccessSignature|sig|password|secret|token|key)=)[^;&\s]+"),
        r"\g<pre>***",
    ),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text
