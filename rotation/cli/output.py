"""Where the command line writes: results on stdout, messages and progress on stderr.

Key material a secret's writer pasted into any field never reaches the terminal: :func:`literal`,
:meth:`Output.emit_json` and :func:`error_line` pass every string through
:func:`rotation.redaction.redact`. User text (secret names, ARNs, subjects, error messages) is
otherwise printed literally: both consoles have
rich markup, emoji codes and highlighting off, so ``[/oops]`` or ``:secret:`` stay as written, and
:func:`literal` shows control characters as escapes, so a secret's writer cannot send terminal
control sequences (retitle, clear, hide text) to the operator's terminal through ``status``.
With ``--output json`` stdout carries only the JSON document (``json.dumps`` escapes them too).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

from rotation.redaction import redact

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def literal(value: object, style: str = "") -> Text:
    """``value`` as text to show: no markup, key material redacted, control characters as visible escapes."""
    return Text(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", redact(str(value))), style=style)


def _redacted(data: Any) -> Any:
    """Every string in a JSON-able structure through :func:`rotation.redaction.redact`."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {_redacted(k): _redacted(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_redacted(v) for v in data]
    return data


def _console(*, stderr: bool, color: bool) -> Console:
    return Console(
        stderr=stderr,
        markup=False,
        emoji=False,
        highlight=False,
        no_color=not color,
        color_system="auto" if color else None,
    )


class Progress:
    """One live line while a command waits; plain lines (only when the text changes) off a terminal."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._last = ""
        self._status: Any = None

    def __enter__(self) -> Progress:
        if self._console.is_terminal:
            self._status = self._console.status(literal(""))
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)
            if self._last:
                self._console.print(literal(self._last))

    def update(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self._status is not None:
            self._status.update(literal(text))
        else:
            self._console.print(literal(text), soft_wrap=True)


class Output:
    def __init__(self, *, json_mode: bool = False, color: bool = True) -> None:
        self.json_mode = json_mode
        self.stdout = _console(stderr=False, color=color)
        self.stderr = _console(stderr=True, color=color)

    def say(self, text: str) -> None:
        """A human result line: stdout, or stderr when stdout is reserved for JSON."""
        (self.stderr if self.json_mode else self.stdout).print(literal(text), soft_wrap=True)

    def note(self, text: str) -> None:
        """A message about the run, never part of the result: stderr."""
        self.stderr.print(literal(text), soft_wrap=True)

    def show(self, renderable: RenderableType) -> None:
        self.stdout.print(renderable)

    def emit_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(_redacted(data), indent=2, default=lambda v: redact(str(v))) + "\n")
        sys.stdout.flush()

    @contextlib.contextmanager
    def progress(self) -> Iterator[Progress]:
        with Progress(self.stderr) as progress:
            yield progress


def error_line(problem: object) -> str:
    """One line for an error: whitespace collapsed, an HTML error page reduced to its title, key material redacted."""
    text = redact(str(problem))
    if re.search(r"<\s*(!doctype|html|head|body|title)\b", text, re.IGNORECASE):
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        body = re.sub(r"<[^>]*>", " ", title.group(1) if title else "")
        prefix = re.split(r"\s*\(?<", text, maxsplit=1)[0]
        text = f"{prefix} (an HTML page, not an AWS response{': ' + body.strip() if body.strip() else ''})"
    return " ".join(text.split())[:500]
