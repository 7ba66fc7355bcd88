"""The one place where text from outside (a secret's fields, an AWS message, a host record) is made safe to show.

A secret's writer can paste anything into any field, and AWS validation errors may echo request
values back. Whatever reaches a log line, an exception message or the command line's output goes
through :func:`redact` (free text) or :func:`quote` (one value named in a message): PEM blocks and
long base64 runs (a key body without its armour) are replaced, control characters escaped. Pure.
"""

from __future__ import annotations

import re

#: A PEM block, or an unterminated one to the end of the text.
#: Whitespace after a block that ends the text goes with it: a pasted PEM file's last newline would
#: otherwise leave an empty line after the marker.
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----(?:\s*\Z)?|$)", re.DOTALL)
#: A base64 run as long as one line of a PEM body; with upper, lower and digits, never an ARN or hex.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{48,}={0,2}")
PEM_MARK = "<redacted PEM>"
BASE64_MARK = "<redacted base64>"


def _base64(match: re.Match[str]) -> str:
    run = match.group(0)
    mixed = any(c.isupper() for c in run) and any(c.islower() for c in run) and any(c.isdigit() for c in run)
    return BASE64_MARK if mixed else run


def redact(text: str) -> str:
    """``text`` with every PEM block and long mixed-case base64 run replaced by a marker."""
    return _BASE64_RUN.sub(_base64, _PEM_BLOCK.sub(PEM_MARK, text))


def quote(value: object) -> str:
    """One user value as it is named in a message: ``repr`` of the redacted text (newlines escaped)."""
    if value is None:
        return "<missing>"
    if isinstance(value, str):
        return repr(redact(value))
    return redact(repr(value))


def redact_data(data: object) -> object:
    """A JSON-like document with every string in it (keys too) passed through :func:`redact`."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact(str(k)) if isinstance(k, str) else k: redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v) for v in data]
    return data


def shorten(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters; longer, its start and a marker saying how much is not shown."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"
