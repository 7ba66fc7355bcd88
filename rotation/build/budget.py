"""The size budget of the SSM documents: each as submitted plus the longest parameter values it admits.

CreateDocument's ``Content`` must not exceed 64 KB, and the API reference says the quota "also
includes the content specified for input parameters at runtime". So a document's worst case is
its text as the console and CLI submit it (the rendered YAML, UTF-8 bytes) plus, for each
parameter, the longest value its ``allowedPattern`` admits, counted once for every ``{{ Name }}``
the document carries (where SSM puts the value into the text) and at least once. certrotate keeps
every document's worst case within ``SIZE_BUDGET`` (56 KiB), leaving 8 KiB of the quota free.

The longest value is built, not estimated: ``longest_value`` walks the pattern and writes a value
of the greatest length it can match (a test has Go's regexp and RE2 accept each one). A pattern
that admits values without bound has no worst case and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

SIZE_BUDGET = 56 * 1024
SSM_DOCUMENT_QUOTA = 64 * 1024
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


class UnboundedPattern(ValueError):
    """The pattern admits values of any length (or uses a construct the walk does not know)."""


def longest_value(pattern: str) -> str:
    """Pure: a value of the greatest length ``pattern`` matches in full.

    Raises:
        UnboundedPattern: the pattern has an unbounded repeat, a negated class or an unknown construct.
    """
    return _longest(sre_parse.parse(pattern), pattern)


def _longest(items: Any, pattern: str) -> str:
    return "".join(_longest_item(op, argument, pattern) for op, argument in items)


def _longest_item(op: Any, argument: Any, pattern: str) -> str:
    if op is sre.LITERAL:
        return chr(argument)
    if op is sre.AT:
        return ""  # ^ and $: no width
    if op is sre.IN:
        return _class_member(argument, pattern)
    if op is sre.SUBPATTERN:
        return _longest(argument[-1], pattern)
    if op is sre.BRANCH:
        return str(max((_longest(branch, pattern) for branch in argument[1]), key=len))
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        _, most, body = argument
        if most is sre.MAXREPEAT:
            raise UnboundedPattern(f"allowedPattern {pattern} admits values of any length")
        return _longest(body, pattern) * int(most)
    raise UnboundedPattern(f"allowedPattern {pattern}: {op} is not bounded here")


def _class_member(members: Any, pattern: str) -> str:
    for op, argument in members:
        if op is sre.LITERAL:
            return chr(argument)
        if op is sre.RANGE:
            return chr(argument[0])
        if op is sre.NEGATE:
            break
    raise UnboundedPattern(f"allowedPattern {pattern}: a character class without a plain member")


@dataclass(frozen=True)
class DocumentSize:
    """One document's size as SSM counts it."""

    name: str
    submitted: int  # bytes of the YAML as submitted
    longest_values: Mapping[str, int]  # parameter -> length of the longest value it admits, times its uses

    @property
    def worst_case(self) -> int:
        return self.submitted + sum(self.longest_values.values())


def document_size(name: str, text: str, document: Mapping[str, Any]) -> DocumentSize:
    """Pure: the worst case of the document ``text`` (the rendered YAML) whose content is ``document``.

    Raises:
        UnboundedPattern: a parameter without a bounded ``allowedPattern``.
    """
    uses: dict[str, int] = {}
    for match in _PLACEHOLDER.finditer(text):
        uses[match.group(1)] = uses.get(match.group(1), 0) + 1
    lengths = {}
    for parameter, spec in (document.get("parameters") or {}).items():
        pattern = spec.get("allowedPattern")
        if not pattern:
            raise UnboundedPattern(f"parameter {parameter} has no allowedPattern: its values have no bound")
        lengths[parameter] = len(longest_value(pattern)) * max(1, uses.get(parameter, 0))
    return DocumentSize(name, len(text.encode("utf-8")), lengths)
