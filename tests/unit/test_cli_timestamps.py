"""The CLI's clients read response timestamps as UTC instants, the same instants botocore's parser reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.utils import parse_timestamp
from moto import mock_aws

from rotation.cli.session import AwsContext, utc_timestamp


@pytest.mark.parametrize(
    "value",
    [
        0,
        1_796_083_200,
        1_796_083_200.123456,
        "1796083200",
        "2026-12-07T03:30:00Z",
        "2026-12-07T05:30:00+02:00",
        "Mon, 07 Dec 2026 03:30:00 GMT",
    ],
)
def test_the_same_instant_as_botocore_reads_in_utc(value: Any) -> None:
    parsed = utc_timestamp(value)
    assert parsed == parse_timestamp(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_no_local_zone_is_built_per_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's default builds a dateutil ``tzlocal()`` for every epoch timestamp it parses."""
    import dateutil.tz

    built = 0
    original = dateutil.tz.tzlocal.__init__

    def counted(self: Any) -> None:
        nonlocal built
        built += 1
        original(self)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(dateutil.tz.tzlocal, "__init__", counted)
    with mock_aws():
        made = boto3.client("secretsmanager", region_name="us-east-1")
        for n in range(5):
            made.create_secret(Name=f"t/{n}", SecretString="{}")
        sm = AwsContext(None, "us-east-1", None, 3.0, 10.0).client("secretsmanager")
        built = 0
        listed = sm.list_secrets()["SecretList"]
        assert len(listed) == 5 and built == 0
        assert all(s["CreatedDate"].tzinfo == UTC and s["CreatedDate"] <= datetime.now(UTC) for s in listed)
        made.list_secrets()
        assert built >= 5  # a client made the ordinary way still pays it: the count above measures something
