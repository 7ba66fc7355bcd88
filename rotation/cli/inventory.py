"""The certificate secrets of an account: listed, or named, with their values read in batches.

ListSecrets (100 a page) or DescribeSecret per name, then BatchGetSecretValue (20 a call). A
secret whose value cannot be read or decoded is kept with its problem, never dropped silently
when it was named and never fatal for the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rotation.aws import aws_call
from rotation.cli import bulk_reads
from rotation.cli.session import AwsContext, InvalidInputError
from rotation.errors import AwsCallError
from rotation.redaction import quote

BATCH = 20
UNREADABLE = "unreadable"


class Source(StrEnum):
    """Where a record's ``fields`` come from."""

    VALUE = "value"  # the secret's AWSCURRENT value (GetSecretValue / BatchGetSecretValue)
    LEDGER = "ledger"  # the issuance ledger's entry for the AWSCURRENT version (no value read)


@dataclass(frozen=True)
class SecretRecord:
    """One secret: its ListSecrets/DescribeSecret metadata and its decoded AWSCURRENT value."""

    name: str
    arn: str
    metadata: Mapping[str, Any]
    fields: Mapping[str, Any] | None = None
    problem: str = ""  # why ``fields`` is None (unreadable, not JSON, binary)
    named: bool = field(default=False, compare=False)
    #: Where ``fields`` come from: ``value`` (the secret's AWSCURRENT value) or ``ledger``
    #: (the issuance ledger's entry for that version, :mod:`rotation.cli.keyless`; no value read).
    source: Source = field(default=Source.VALUE, compare=False)

    @property
    def is_certificate(self) -> bool:
        return self.fields is not None and "CERTIFICATE_TYPE" in self.fields

    @property
    def stages(self) -> Mapping[str, list[str]]:
        # ListSecrets says SecretVersionsToStages, DescribeSecret says VersionIdsToStages.
        found = self.metadata.get("VersionIdsToStages") or self.metadata.get("SecretVersionsToStages") or {}
        return dict(found)

    @property
    def rotation_lambda_arn(self) -> str:
        return str(self.metadata.get("RotationLambdaARN") or "")

    @property
    def stuck_pending(self) -> str:
        """The version holding AWSPENDING without AWSCURRENT (a rotation that never finished), or ""."""
        return next((v for v, s in self.stages.items() if "AWSPENDING" in s and "AWSCURRENT" not in s), "")

    @property
    def rotation_configured(self) -> bool:
        return bool(self.metadata.get("RotationEnabled")) and bool(self.rotation_lambda_arn)


def listed(sm: Any, *, prefix: str | None, tags: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return list(_list(sm, prefix, tags))


def _list(sm: Any, prefix: str | None, tags: Sequence[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    for page in listed_pages(sm, prefix=prefix, tags=tags):
        yield from page


def listed_pages(sm: Any, *, prefix: str | None, tags: Sequence[tuple[str, str]]) -> Iterator[list[dict[str, Any]]]:
    """The listed secrets a ListSecrets page at a time (so each page can be read while the next is listed)."""
    filters = [{"Key": "name", "Values": [prefix]}] if prefix else []
    for key, value in tags:
        filters += [{"Key": "tag-key", "Values": [key]}, {"Key": "tag-value", "Values": [value]}]
    arguments: dict[str, Any] = {"MaxResults": 100, **({"Filters": filters} if filters else {})}
    with aws_call("secretsmanager", "ListSecrets"):
        for page in sm.get_paginator("list_secrets").paginate(**arguments):
            yield [
                secret
                for secret in page.get("SecretList", [])
                if all(_tags(secret).get(k) == v for k, v in tags) and not secret.get("DeletedDate")
            ]


def _shown(secret: Mapping[str, Any], tags: Sequence[tuple[str, str]]) -> bool:
    return all(_tags(secret).get(k) == v for k, v in tags) and not secret.get("DeletedDate")


def split_pages(
    sm: Any, *, prefix: str | None, tags: Sequence[tuple[str, str]], max_rate: float
) -> Iterator[list[dict[str, Any]]]:
    """What :func:`listed_pages` lists, by ListSecrets chains read side by side (``bulk_reads.split_listing``).

    Each chain's ``name`` filter (case-sensitive prefix match, values OR-ed) is ANDed with the tag
    filters; ListSecrets (quota 100 requests per second) and the DescribeSecret of a split prefix's
    own name take tokens from one ``max_rate`` limiter.
    """
    lister = bulk_reads.rate_limited(sm, max_rate)
    tag_filters: list[dict[str, Any]] = []
    for key, value in tags:
        tag_filters += [{"Key": "tag-key", "Values": [key]}, {"Key": "tag-value", "Values": [value]}]

    def list_page(values: tuple[str, ...], token: str | None) -> bulk_reads.Page:
        filters = ([{"Key": "name", "Values": list(values)}] if values != ("",) else []) + tag_filters
        arguments: dict[str, Any] = {"MaxResults": 100, **({"Filters": filters} if filters else {})}
        with aws_call("secretsmanager", "ListSecrets"):
            page = lister.list_secrets(**arguments, **({"NextToken": token} if token else {}))
        return [s for s in page.get("SecretList", []) if _shown(s, tags)], page.get("NextToken")

    def describe(name: str) -> dict[str, Any] | None:
        try:
            with aws_call("secretsmanager", "DescribeSecret"):
                secret: dict[str, Any] = lister.describe_secret(SecretId=name)
        except AwsCallError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            return None
        return secret if secret.get("Name") == name and _shown(secret, tags) else None

    return bulk_reads.split_listing(list_page, describe, prefix or "")


def _tags(secret: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in secret.get("Tags") or []}


def described(sm: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """DescribeSecret for each name, in order; an unknown name is an invalid-input error."""
    found = []
    for name in names:
        try:
            with aws_call("secretsmanager", "DescribeSecret"):
                found.append(sm.describe_secret(SecretId=name))
        except AwsCallError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            raise AwsCallError(exc.service, exc.operation, exc.code, f"no secret {quote(name)}") from exc
    return found


def records(sm: Any, metadata: Sequence[Mapping[str, Any]], *, named: bool = False) -> list[SecretRecord]:
    """Each secret with its AWSCURRENT value decoded (BatchGetSecretValue, 20 a call)."""
    arns = [str(m["ARN"]) for m in metadata]
    values: dict[str, tuple[Mapping[str, Any] | None, str]] = {}
    for start in range(0, len(arns), BATCH):
        try:
            with aws_call("secretsmanager", "BatchGetSecretValue"):
                response = sm.batch_get_secret_value(SecretIdList=arns[start : start + BATCH])
        except AwsCallError as exc:
            if exc.code not in _ONE_SECRET_FAILS_THE_BATCH:
                raise
            # One secret without an AWSCURRENT value fails the whole batch: read these one by one,
            # so that secret is flagged on its own row and the others are shown.
            response = _one_by_one(sm, arns[start : start + BATCH])
        for item in response.get("SecretValues", []):
            values[item["ARN"]] = decode_value(item)
        for error in response.get("Errors", []):
            values[str(error.get("SecretId"))] = (None, f"{UNREADABLE}: {error.get('ErrorCode', 'error')}")
    return [
        SecretRecord(
            name=str(m.get("Name") or m["ARN"]),
            arn=str(m["ARN"]),
            metadata=m,
            fields=values.get(str(m["ARN"]), (None, "no value"))[0],
            problem=values.get(str(m["ARN"]), (None, "no value"))[1],
            named=named,
        )
        for m in metadata
    ]


#: Errors of BatchGetSecretValue that one secret of the batch causes (a secret with no AWSCURRENT value).
_ONE_SECRET_FAILS_THE_BATCH = {"ResourceNotFoundException", "InvalidRequestException", "DecryptionFailure"}


def _one_by_one(sm: Any, arns: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """GetSecretValue per secret, in BatchGetSecretValue's response shape (``SecretValues``, ``Errors``)."""
    response: dict[str, list[dict[str, Any]]] = {"SecretValues": [], "Errors": []}
    for arn in arns:
        try:
            with aws_call("secretsmanager", "GetSecretValue"):
                item = sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
        except AwsCallError as exc:
            if exc.code in _UNREACHABLE_CODES:
                raise
            response["Errors"].append({"SecretId": arn, "ErrorCode": f"{exc.code}, no AWSCURRENT value read"})
        else:
            response["SecretValues"].append({**item, "ARN": arn})
    return response


_UNREACHABLE_CODES = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}


def decode_value(item: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
    """A secret value's JSON object, or None and what the value is instead."""
    if "SecretString" not in item:
        return None, "a binary secret (SecretBinary), not a JSON certificate specification"
    try:
        fields = json.loads(item["SecretString"])
    except ValueError:
        return None, "plain text, not a JSON certificate specification"
    except RecursionError:  # a writer's "[[[…": one secret must not end the command for every other
        return None, "JSON nested too deeply to decode, not a certificate specification"
    if not isinstance(fields, dict):
        return None, f"a JSON {type(fields).__name__}, not a certificate specification object"
    return fields, ""


def certificate_secrets(
    aws: AwsContext,
    *,
    names: Sequence[str] = (),
    prefix: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
    max_rate: float = bulk_reads.DEFAULT_MAX_RATE,
) -> list[SecretRecord]:
    """Named secrets (each must be a certificate secret) or every listed certificate secret.

    Raises:
        InvalidInputError: a named secret holds no certificate specification.
        AwsCallError: a call failed (an unknown name: ResourceNotFoundException).
    """
    sm = aws.client("secretsmanager")
    if names:
        found = records(sm, described(sm, names), named=True)
        for record in found:
            if not record.is_certificate:
                why = record.problem or "a JSON object without CERTIFICATE_TYPE"
                raise InvalidInputError(f"{record.name} is not a certificate secret: it holds {why}")
        return found
    # A secret we cannot read may be a certificate secret: keep it, with its problem, for ``status``.
    # Each page's batches are read (at most max_rate BatchGetSecretValue a second) while the next is listed.
    limited = bulk_reads.rate_limited(sm, max_rate)
    found = bulk_reads.overlapped(
        split_pages(sm, prefix=prefix, tags=tags, max_rate=max_rate), BATCH, lambda chunk: records(limited, chunk)
    )
    return [r for r in found if r.is_certificate or r.problem.startswith(UNREADABLE)]
