"""``rotation.emulation.secrets_listing``: ListSecrets pages as moto answers them, at a page's cost."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.secretsmanager.models import FakeSecret

from rotation.emulation.secrets_listing import paged_list_secrets


def read_all(sm: Any, **arguments: Any) -> list[str]:
    return [s["Name"] for page in sm.get_paginator("list_secrets").paginate(**arguments) for s in page["SecretList"]]


def test_the_same_secrets_in_the_same_order_each_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        for n in range(260):
            team = "web" if n % 3 else "db"
            sm.create_secret(Name=f"{team}/{n:03d}", SecretString=json.dumps({"n": n}))
        sm.delete_secret(SecretId="web/001", RecoveryWindowInDays=7)
        cases: list[dict[str, Any]] = [
            {"MaxResults": 100},
            {"MaxResults": 7, "Filters": [{"Key": "name", "Values": ["db/"]}]},
            {"MaxResults": 100, "IncludePlannedDeletion": True},
            # name prefixes, OR-ed, case-sensitive: walked through the name index
            {"MaxResults": 7, "Filters": [{"Key": "name", "Values": ["db/0", "web/00", "Web/"]}]},
            {"MaxResults": 3, "IncludePlannedDeletion": True, "Filters": [{"Key": "name", "Values": ["web/00"]}]},
            {
                "MaxResults": 50,
                "Filters": [{"Key": "name", "Values": ["web/1"]}, {"Key": "description", "Values": ["x"]}],
            },
            {"MaxResults": 50, "Filters": [{"Key": "name", "Values": ["!web/"]}]},  # a negation: the full walk
        ]
        expected = [read_all(sm, **case) for case in cases]
        built = {"n": 0}
        real = FakeSecret.to_dict

        def counted(self: Any) -> dict[str, Any]:
            built["n"] += 1
            return real(self)

        monkeypatch.setattr(FakeSecret, "to_dict", counted)
        with paged_list_secrets():
            assert [read_all(sm, **case) for case in cases] == expected
        assert "web/001" not in expected[0] and "web/001" in expected[2] and "web/001" in expected[4]
        assert expected[3] and all(n.startswith(("db/0", "web/00")) for n in expected[3])
        assert expected[6] == expected[1]
        assert built["n"] == sum(len(names) for names in expected)  # moto alone: every secret for every page


def test_indexed_lookups_answer_as_moto_does() -> None:
    from rotation.emulation.secrets_listing import indexed_secret_lookups

    def answers(sm: Any, ids: list[str]) -> list[Any]:
        found: list[Any] = []
        for secret_id in ids:
            try:
                found.append(sm.get_secret_value(SecretId=secret_id)["Name"])
            except sm.exceptions.ResourceNotFoundException:
                found.append("not found")
        batch = sm.batch_get_secret_value(SecretIdList=ids[:20])
        found.append(sorted(v["Name"] for v in batch["SecretValues"]))
        found.append(sorted(e["SecretId"] for e in batch["Errors"]))
        return found

    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        arns = [sm.create_secret(Name=f"app/{n}", SecretString="{}")["ARN"] for n in range(30)]
        ids = [arns[3], "app/4", arns[5].rsplit("-", 1)[0], "app/none", arns[7] + "x", "app/1"]
        expected = answers(sm, ids)
        with indexed_secret_lookups():
            assert answers(sm, ids) == expected
            sm.delete_secret(SecretId="app/4", ForceDeleteWithoutRecovery=True)
            new = sm.create_secret(Name="app/new", SecretString="{}")["ARN"]
            assert answers(sm, ["app/4", new])[:2] == ["not found", "app/new"]
        from moto.secretsmanager.models import SecretsStore

        assert "__delitem__" not in SecretsStore.__dict__ and SecretsStore.get.__module__.startswith("moto")
        assert answers(sm, [arns[3], "app/4"])[:2] == ["app/3", "not found"]
