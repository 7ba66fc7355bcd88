"""Where the command line writes: results on stdout, messages and progress on stderr.

Every piece of user text the command line prints (secret names, ARNs, subjects, a secret's fields,
host records, error messages) goes through one path: :func:`literal` for the consoles and
:meth:`Output.emit_json` for JSON, both redacting through :mod:`rotation.redaction` first, so a
PEM block or a long base64 run pasted into any field never reaches a terminal or a monitoring
job's log. Both consoles have rich markup, emoji codes and highlighting off, so ``[/oops]`` or
``:secret:`` stay as written, and :func:`literal` shows control characters as escapes, so a
secret's writer cannot send terminal control sequences (retitle, clear, hide text) to the
operator's terminal through ``status``. With ``--output json`` stdout carries only the JSON
document (``json.dumps`` escapes control characters too).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

from rotation.redaction import redact, redact_data

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def literal(value: object, style: str = "") -> Text:
    """``value`` as text to show: redacted, no markup, control characters as visible escapes (``\\x1b``)."""
    return Text(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", redact(str(value))), style=style)


class _Console(Console):
    """rich's console, except that a reader gone (``certrotate … | head``) is the caller's to handle.

    rich's own :meth:`Console.on_broken_pipe` exits 1, the code of a failed command; the command
    line turns :class:`BrokenPipeError` into :attr:`rotation.cli.ExitCode.READER_GONE` instead.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader of the output is gone")


def _console(*, stderr: bool, color: bool) -> Console:
    # NO_COLOR (no-color.org) or --no-color: no ANSI styling at all, bold included (rich's own
    # no_color keeps bold and underline).
    color = color and not os.environ.get("NO_COLOR")
    return _Console(
        stderr=stderr,
        markup=False,
        emoji=False,
        highlight=False,
        no_color=not color,
        color_system="auto" if color else None,
    )


class Progress:
    """One live line while a command waits; plain lines (only when the text changes) off a terminal."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self._console = console
        self._quiet = quiet
        self._last = ""
        self._status: Any = None

    def __enter__(self) -> Progress:
        if self._console.is_terminal and not self._quiet:
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
        elif not self._quiet:
            self._console.print(literal(text), soft_wrap=True)


class Output:
    """``json_mode``: stdout carries only the result document, as JSON or (``text``) tab-separated,
    after ``query`` (JMESPath, as the AWS CLI's ``--query``) selected from it."""

    def __init__(self, *, json_mode: bool = False, color: bool = True, text: bool = False, query: Any = None) -> None:
        self.json_mode = json_mode or text or query is not None
        self.text = text
        self.query = query
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
        """The result document on stdout: redacted, ``--query`` applied, as JSON or ``--output text``."""
        document = redact_data(json.loads(json.dumps(data, default=lambda o: redact(str(o)))))
        if self.query is not None:
            document = self.query.search(document)
        sys.stdout.write(text_lines(document) if self.text else json.dumps(document, indent=2) + "\n")
        sys.stdout.flush()

    @contextlib.contextmanager
    def progress(self, *, quiet: bool = False) -> Iterator[Progress]:
        """The live line; ``quiet``: none (the caller reports each event itself)."""
        with Progress(self.stderr, quiet=quiet) as progress:
            yield progress


#: An error line longer than this (an AWS message echoing a large request) loses its middle, marked.
ERROR_LINE_LIMIT = 4000
#: What a shortened line keeps of its end: the fix to paste is always at the end of a message.
_KEPT_TAIL = 2500


def error_line(problem: object) -> str:
    """One line for an error: whitespace collapsed, an HTML error page reduced to its title.

    Never cut silently, never cut at the end: the terminal wraps a long line, and a command the
    message tells the user to paste (always its end) is kept whole. Only a line over
    :data:`ERROR_LINE_LIMIT` characters loses part of its middle, with a marker saying how much.
    """
    text = redact(str(problem))
    if re.search(r"<\s*(!doctype|html|head|body|title)\b", text, re.IGNORECASE):
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        body = re.sub(r"<[^>]*>", " ", title.group(1) if title else "")
        prefix = re.split(r"\s*\(?<", text, maxsplit=1)[0]
        text = f"{prefix} (an HTML page, not an AWS response{': ' + body.strip() if body.strip() else ''})"
    text = " ".join(text.split())
    if len(text) > ERROR_LINE_LIMIT:
        head = ERROR_LINE_LIMIT - _KEPT_TAIL
        cut = len(text) - head - _KEPT_TAIL
        text = f"{text[:head]} …[{cut} characters not shown]… {text[-_KEPT_TAIL:]}"
    return text


#: ``"│ "`` before each cell and ``" "`` after it.
CELL_BORDER = 3
#: A column that may wrap counts at most this wide when deciding what fits (one long name must
#: not push every other column off every row: it wraps instead).
FOLDED_WIDTH = 32


def columns_that_fit(
    rows: Sequence[Mapping[str, str]],
    columns: Sequence[str],
    width: int,
    *,
    always: int = 3,
    folded: Collection[str] = (),
) -> list[str]:
    """The columns to show at ``width``: the first ``always``, then each that still fits whole, in order.

    ``columns`` is in priority order. A ``folded`` column (it wraps, never cut) counts at most
    :data:`FOLDED_WIDTH` characters wide.
    """

    def natural(name: str) -> int:
        widest = max([len(name), *(len(row[name]) for row in rows)])
        return (min(widest, FOLDED_WIDTH) if name in folded else widest) + CELL_BORDER

    shown = list(columns[:always])
    used = sum(natural(name) for name in shown) + 1
    for name in columns[always:]:
        if used + natural(name) <= width:
            shown.append(name)
            used += natural(name)
    return shown


def text_lines(document: Any) -> str:
    """``--output text``: tab-separated, no box drawing, one line per object (as the AWS CLI).

    A list of objects is one line each, the fields in their order; a list of scalars one line;
    an object one line of its scalar fields, then each of its lists' items on a line; nested values
    inside a line are compact JSON. Empty (null) values are ``None``, as the AWS CLI prints them.
    """

    def cell(value: Any) -> str:
        if value is None:
            return "None"
        if isinstance(value, bool):
            return "True" if value else "False"
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"))
        return _CONTROL.sub(" ", str(value))

    def lines(value: Any) -> list[str]:
        if isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):
                return ["\t".join(cell(v) for v in value)] if value else []
            return [line for item in value for line in lines(item)]
        if isinstance(value, dict):
            scalars = [cell(v) for v in value.values() if not isinstance(v, list) or not _has_objects(v)]
            nested = [line for v in value.values() if isinstance(v, list) and _has_objects(v) for line in lines(v)]
            return (["\t".join(scalars)] if scalars else []) + nested
        return [cell(value)]

    return "".join(f"{line}\n" for line in lines(document))


def _has_objects(value: list[Any]) -> bool:
    return any(isinstance(item, dict) for item in value)
