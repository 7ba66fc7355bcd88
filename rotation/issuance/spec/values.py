"""Reading a secret's JSON fields as text, a closed choice or a flag, each refusal naming the field. Pure."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from rotation.errors import SpecError

_E = TypeVar("_E", bound=Enum)

_TRUE = {"true", "yes", "1"}

_FALSE = {"false", "no", "0", ""}


def load_secret_fields(secret_string: str) -> dict[str, Any]:
    """Decode a secret's JSON object.

    Raises:
        SpecError: the value is not a JSON object (or is nested too deeply to decode).
    """
    try:
        fields = json.loads(secret_string)
    except json.JSONDecodeError as exc:
        raise SpecError(
            "SecretString",
            None,
            f"not valid JSON (line {exc.lineno}, column {exc.colno})",
            "a JSON object of certificate fields",
        ) from None
    except RecursionError:
        raise SpecError(
            "SecretString", None, "JSON nested too deeply to decode", "a JSON object of certificate fields"
        ) from None
    if not isinstance(fields, dict):
        raise SpecError(
            "SecretString",
            None,
            f"a JSON {type(fields).__name__}, not an object",
            "a JSON object of certificate fields",
        )
    return fields


def text(fields: Mapping[str, Any], name: str, *, required: bool = False, number: bool = False) -> str:
    """A field as stripped text; JSON integers are accepted, and finite JSON numbers when ``number``."""
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SpecError(name, None, "required field is missing or empty")
        return ""
    if number and isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SpecError(name, value, f"must be a string, not {type(value).__name__}")
    return str(value).strip()


def choice(fields: Mapping[str, Any], name: str, enum: type[_E], *, required: bool = False) -> _E | None:
    raw = text(fields, name, required=required)
    if not raw:
        return None
    for member in enum:
        if str(member.value).upper() == raw.upper():
            return member
    raise SpecError(name, raw, "unknown value", [str(m.value) for m in enum])


def flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name, "")
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SpecError(name, value, "not a boolean", ["true", "false"])
