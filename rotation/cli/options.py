"""Flag value parsers: each names the flag, the value and what is allowed (a usage error, exit 2)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from urllib.parse import urlsplit

_REGION = re.compile(r"^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$")
# SSM SendCommand's own patterns for MaxConcurrency and MaxErrors.
_MAX_CONCURRENCY = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
_MAX_ERRORS = re.compile(r"^([1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")


def _invalid(flag: str, value: str, allowed: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{flag} {value!r}: {allowed}")


def positive_number(flag: str, *, unit: str, maximum: float | None = None) -> Callable[[str], float]:
    """A number greater than 0 (at most ``maximum``) of ``unit`` (seconds, minutes, days), named in errors."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise _invalid(flag, value, f"expected a number of {unit} greater than 0") from None
        if not number > 0 or (maximum is not None and number > maximum):
            upper = f" and at most {maximum:g}" if maximum is not None else ""
            raise _invalid(flag, value, f"expected a number greater than 0{upper}")
        return number

    return parse


def endpoint_url(value: str, source: str = "--endpoint-url") -> str:
    """An http(s) URL with a host, e.g. ``http://127.0.0.1:5000``."""
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query and not parts.fragment
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        valid = False
    if not valid:
        raise _invalid(source, value, "expected http(s)://HOST[:PORT]")
    return value


def region(value: str) -> str:
    if not _REGION.match(value):
        raise _invalid("--region", value, "expected a region name such as us-east-1")
    return value


def tag(value: str) -> tuple[str, str]:
    key, sep, tag_value = value.partition("=")
    if not sep or not key or not _TAG_KEY.match(key):
        raise _invalid("--tag", value, "expected KEY=VALUE")
    return key, tag_value


def tag_filter(value: str) -> tuple[str, str]:
    if not value.startswith("tag:"):
        raise _invalid("--filter", value, "expected tag:KEY=VALUE")
    key, value_ = tag(value.removeprefix("tag:"))
    return key, value_


def comma_list(value: str) -> list[str]:
    """``a,b`` or ``a`` → ``["a", "b"]`` (spaces around items dropped, empty items ignored)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def max_concurrency(value: str) -> str:
    if not _MAX_CONCURRENCY.match(value):
        raise _invalid("--max-concurrency", value, "expected a number of instances >= 1 or a percentage 1%-100%")
    return value


def max_errors(value: str) -> str:
    if not _MAX_ERRORS.match(value):
        raise _invalid("--max-errors", value, "expected a number of instances >= 0 or a percentage 0%-100%")
    return value


def json_alias(parser: argparse.ArgumentParser) -> None:
    """``--json``, kept for the commands that had it: the same as the global ``--output json``."""
    parser.add_argument(
        "--json", dest="output", action="store_const", const="json", default=argparse.SUPPRESS, help="= --output json"
    )


def secret_selection(parser: argparse.ArgumentParser) -> None:
    """``--prefix`` and ``--tag``: which certificate secrets a listing command reads."""
    parser.add_argument("--prefix", help="only secrets whose name starts with this")
    parser.add_argument(
        "--tag", type=tag, action="append", default=[], metavar="KEY=VALUE", help="only secrets with this tag"
    )


# CreateSecret's Name: "The secret name can contain ASCII letters, numbers, and the following
# characters: /_+=.@-", 1 to 512 characters (Secrets Manager API reference, CreateSecret).
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
# Secrets Manager schedule expressions (RotationRulesType.ScheduleExpression): rate(N hours|days),
# "as often as every four hours", at most 1000 days; cron() with six fields (minutes hours
# day-of-month month day-of-week year), as in the Secrets Manager guide's schedule expressions.
_RATE = re.compile(r"^rate\((?P<n>[1-9][0-9]*) (?P<unit>hours?|days?)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/#-]+$")


def secret_name(value: str) -> str:
    if not _SECRET_NAME.match(value):
        raise _invalid("name", value, "a secret name is 1 to 512 ASCII letters, digits and /_+=.@- (no spaces)")
    return value


def schedule(value: str) -> str:
    """A Secrets Manager rotation schedule: ``rate(4 hours)`` … ``rate(1000 days)`` or a six-field ``cron(…)``."""
    rate, cron = _RATE.match(value), _CRON.match(value)
    if rate:
        hours = int(rate["n"]) * (24 if rate["unit"].startswith("day") else 1)
        if 4 <= hours <= 1000 * 24:
            return value
    elif cron:
        fields = cron["fields"].split()
        if len(fields) == 6 and all(_CRON_FIELD.match(f) for f in fields):
            return value
    raise _invalid(
        "--schedule",
        value,
        "expected rate(N hours) with N >= 4, rate(N days) with N <= 1000, or cron(MIN HOUR DAY MONTH WEEKDAY YEAR)",
    )


def jmespath_query(value: str) -> object:
    """A compiled JMESPath expression (``--query``), as the AWS CLI takes it."""
    import jmespath  # type: ignore[import-untyped]
    from jmespath.exceptions import JMESPathError  # type: ignore[import-untyped]

    try:
        return jmespath.compile(value)
    except JMESPathError as exc:
        raise _invalid("--query", value, f"not a JMESPath expression ({' '.join(str(exc).split())})") from None
