"""The issuance ledger: which certificates each secret's rotations received from the CA (DynamoDB).

Secrets Manager keeps only the AWSCURRENT, AWSPREVIOUS and labelled versions of a secret (and a few
recent unlabelled ones), and whoever may call PutSecretValue writes their values. Revocation needs
the whole history, from a source the secret's writer cannot write: this table, written only by the
rotation function's role. Partition key ``SecretArn`` (the ARN DescribeSecret returned to the
rotation, never a value read from the secret), sort key ``Serial``; an entry is written in
createSecret when the issuer returned a new certificate, becomes current in finishSecret, is
superseded when a newer entry becomes current, and records its revocation. An entry expires from
the table (DynamoDB TTL on ``ExpiresAt``) :data:`KEPT_AFTER_EXPIRY` after its certificate does:
an expired certificate is never revoked, so the history stays bounded for secrets that rotate every
few hours.

What a rotation reads does not grow with that history: an entry carries ``OpenFor`` (the secret's
ARN) while it is open, from its write until its revocation, and the sparse global secondary index
:data:`OPEN_INDEX` (partition ``OpenFor``, sort ``NotAfter``) holds only entries that carry it. A
DynamoDB index holds an item only when the item has the index's key attributes (Developer Guide,
"Take advantage of sparse indexes"), so finishSecret's one Query (:meth:`Ledger.open_entries`,
``NotAfter`` after now) reads the entries that can still be revoked, whatever the secret's
history. Entries written before the index lack ``OpenFor``: the first read of a secret that has no
:data:`INDEXED_SORT_KEY` marker reads its whole history once, marks its open entries and writes the
marker (which the index holds too, so every later read finds it in the same Query). ``certrotate
status`` and the operator's revocation still read the whole history (:meth:`Ledger.entries`).

A certificate the rotation refuses after the CA issued it (the issuance policy or verification says
no) is written too, with ``RefusedAt`` and ``Refusal`` and superseded from the start
(:meth:`Ledger.record_refused`): it was never staged, so nothing serves it, and it is never lost from
``certrotate status`` nor from the revoker, which revokes it after the grace as any replaced one.

``CaArn`` is the CA that actually issued the certificate (Private CA's IssueCertificate target, or
ACM's ``CertificateAuthorityArn``), never the secret's ``CA_ARN``. ``CertificateArn`` (added with
the issuance policy; entries written before it lack it) is what the issuer returned: for ACM the
``CertificateArn`` of this secret's own ``RequestCertificate``, which is how the rotation knows
which ACM certificates it may export and renew (:meth:`Ledger.owns_certificate`); a tag on the
certificate proves nothing, as anyone with ``acm:AddTagsToCertificate`` can write one.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rotation.aws import aws_call
from rotation.errors import AwsCallError
from rotation.fleet.ledger_protection import ADMIN_ACTIONS, ITEM_WRITES, ProtectionCheck
from rotation.fleet.revocation import IssuedCertificate
from rotation.fleet.view import normalize_serial

LEDGER_TABLE_ENV = "CERTROTATE_LEDGER_TABLE"
_SERVICE = "dynamodb"
_TIME = "%Y-%m-%dT%H:%M:%SZ"
#: How long an entry outlives its certificate (``status NAME`` still shows it as expired).
KEPT_AFTER_EXPIRY = timedelta(days=90)
#: The longest ``Refusal`` text kept.
REFUSAL_LIMIT = 1000
#: The TTL attribute the central template's table declares.
TTL_ATTRIBUTE = "ExpiresAt"
#: The versions, besides ``VersionId``, that hold an entry's certificate (rotations that kept it).
KEPT_VERSIONS = "KeptVersions"
#: The sparse index of open entries (the central template declares it too).
OPEN_INDEX = "OpenEntries"
#: The index's partition key: the secret's ARN, present only while the entry is open (not revoked).
OPEN_ATTRIBUTE = "OpenFor"
#: The index's sort key: an entry's not-after (``%Y-%m-%dT%H:%M:%SZ`` sorts as time does).
OPEN_SORT_ATTRIBUTE = "NotAfter"
#: The per-secret marker "every open entry of this secret carries OpenFor": partition
#: ``certrotate-open-index#SECRET_ARN`` (beside the pacer's ``certrotate-pacer#...``), this sort key.
INDEXED_PREFIX = "certrotate-open-index#"
INDEXED_SORT_KEY = "indexed"
_NEVER = "9999-12-31T23:59:59Z"
#: BatchGetItem reads at most 100 items a call (API Reference, BatchGetItem).
BATCH_GET_KEYS = 100


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_TIME)


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("S"), str) or not value["S"]:
        return None
    return datetime.strptime(value["S"], _TIME).replace(tzinfo=UTC)


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return str(value.get("S", "")) if isinstance(value, Mapping) else ""


def _strings(item: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = item.get(key)
    found = value.get("SS", []) if isinstance(value, Mapping) else []
    return tuple(sorted(str(v) for v in found)) if isinstance(found, list) else ()


def _second(value: datetime) -> datetime:
    """A time as the table stores it (whole seconds, UTC)."""
    return value.astimezone(UTC).replace(microsecond=0)


class Ledger:
    """The ledger table on an injected DynamoDB client.

    ``principals``: the ARNs the table's resource policy may exempt (rotation.fleet.ledger_protection).
    """

    def __init__(self, client: Any, table: str, principals: Collection[str] = ()) -> None:
        self._client = client
        self.table = table
        self._principals = tuple(principals)
        self._protection: ProtectionCheck | None = None

    def require_protected(self) -> None:
        """Before the table's word is taken as proof (an ACM ownership, a revocation): the table still
        has its deletion protection and resource policy (cached per container).

        Raises:
            LedgerUnprotected: it lost one; AwsCallError: the check could not be made.
        """
        if self._protection is None:
            self._protection = ProtectionCheck(self._client, self.table, self._principals)
        self._protection.require()

    @property
    def client(self) -> Any:
        """The DynamoDB client (the issuance pacer books its slots in the same table)."""
        return self._client

    def record_issued(self, entry: IssuedCertificate, certificate_arn: str = "") -> None:
        """Add an issued certificate (a retry of the same createSecret writes the same entry)."""
        self._put(self._item(entry, certificate_arn))

    def record_refused(self, entry: IssuedCertificate, refusal: str, certificate_arn: str = "") -> None:
        """Add a certificate the CA issued and the rotation refused: ``RefusedAt`` and ``SupersededAt``
        are its issue time, ``Refusal`` says why (at most :data:`REFUSAL_LIMIT` characters)."""
        item = self._item(entry, certificate_arn)
        item["RefusedAt"] = item["SupersededAt"] = {"S": _time(entry.issued_at)}
        item["Refusal"] = {"S": refusal[:REFUSAL_LIMIT] or "refused"}
        self._put(item)

    @staticmethod
    def _item(entry: IssuedCertificate, certificate_arn: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            "SecretArn": {"S": entry.secret_arn},
            "Serial": {"S": normalize_serial(entry.serial)},
            "CaArn": {"S": entry.ca_arn},
            "CertificateType": {"S": entry.certificate_type},
            "VersionId": {"S": entry.version_id},
            "IssuedAt": {"S": _time(entry.issued_at)},
            "NotAfter": {"S": _time(entry.not_after)},
            "Fingerprint": {"S": entry.fingerprint},
            TTL_ATTRIBUTE: {"N": str(int((entry.not_after + KEPT_AFTER_EXPIRY).timestamp()))},
        }
        if entry.revoked_at is None:
            item[OPEN_ATTRIBUTE] = {"S": entry.secret_arn}
        if certificate_arn:
            item["CertificateArn"] = {"S": certificate_arn}
        return item

    def _put(self, item: dict[str, Any]) -> None:
        try:
            with aws_call(_SERVICE, "PutItem"):
                self._client.put_item(
                    TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(Serial)"
                )
        except AwsCallError as exc:
            if exc.code != "ConditionalCheckFailedException":
                raise

    def entries(self, secret_arn: str) -> list[IssuedCertificate]:
        """Every entry of one secret (Query, paged)."""
        found: list[IssuedCertificate] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "SecretArn = :arn",
            "ExpressionAttributeValues": {":arn": {"S": secret_arn}},
            "ConsistentRead": True,
        }
        while True:
            with aws_call(_SERVICE, "Query"):
                page = self._client.query(**request)
            found.extend(self._entry(item) for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def open_entries(self, secret_arn: str, now: datetime) -> list[IssuedCertificate]:
        """The entries of one secret that are neither revoked nor expired at ``now``: one Query of the
        sparse :data:`OPEN_INDEX`, its size independent of the secret's history.

        An index is read eventually consistent (DynamoDB refuses ``ConsistentRead`` on a global
        secondary index): an entry written a moment ago may be missing (:meth:`promote` reads the one
        it needs by its key), one revoked a moment ago may still show (Private CA then answers that it
        was already revoked). A secret without the marker is indexed first (:meth:`_index_history`).

        Raises:
            LedgerUnprotected: the index is missing and the table lost its protections (replaced).
            AwsCallError: a call failed.
        """
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": OPEN_INDEX,
            "KeyConditionExpression": "#open = :arn AND #after > :now",
            "ExpressionAttributeNames": {"#open": OPEN_ATTRIBUTE, "#after": OPEN_SORT_ATTRIBUTE},
            "ExpressionAttributeValues": {":arn": {"S": secret_arn}, ":now": {"S": _time(now)}},
        }
        found: list[IssuedCertificate] = []
        indexed = False
        while True:
            try:
                with aws_call(_SERVICE, "Query"):
                    page = self._client.query(**request)
            except AwsCallError as exc:
                if exc.code in ("ResourceNotFoundException", "ValidationException"):
                    self.require_protected()  # a table without the index may be a replaced one: say so
                raise
            for item in page.get("Items", []):
                if _text(item, "SecretArn") == INDEXED_PREFIX + secret_arn:
                    indexed = _text(item, "Serial") == INDEXED_SORT_KEY or indexed
                elif _text(item, "SecretArn") == secret_arn:
                    found.append(self._entry(item))
            if not page.get("LastEvaluatedKey"):
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found if indexed else self._index_history(secret_arn, now)

    def _index_history(self, secret_arn: str, now: datetime) -> list[IssuedCertificate]:
        """Once per secret: mark every open entry of its whole history (written before the index)
        with ``OpenFor``, then write the marker; the open entries."""
        open_now = [e for e in self.entries(secret_arn) if e.revoked_at is None and e.not_after > now]
        for entry in open_now:
            with aws_call(_SERVICE, "UpdateItem"):
                self._client.update_item(
                    TableName=self.table,
                    Key={"SecretArn": {"S": secret_arn}, "Serial": {"S": entry.serial}},
                    UpdateExpression="SET #open = :arn",
                    ConditionExpression="attribute_exists(Serial) AND attribute_not_exists(RevokedAt)",
                    ExpressionAttributeNames={"#open": OPEN_ATTRIBUTE},
                    ExpressionAttributeValues={":arn": {"S": secret_arn}},
                )
        with aws_call(_SERVICE, "PutItem"):
            self._client.put_item(
                TableName=self.table,
                Item={
                    "SecretArn": {"S": INDEXED_PREFIX + secret_arn},
                    "Serial": {"S": INDEXED_SORT_KEY},
                    OPEN_ATTRIBUTE: {"S": secret_arn},
                    OPEN_SORT_ATTRIBUTE: {"S": _NEVER},
                },
            )
        return open_now

    def entry(self, secret_arn: str, serial: str) -> IssuedCertificate | None:
        """One entry by its key (GetItem, strongly consistent), or None."""
        with aws_call(_SERVICE, "GetItem"):
            item = self._client.get_item(
                TableName=self.table,
                Key={"SecretArn": {"S": secret_arn}, "Serial": {"S": normalize_serial(serial)}},
                ConsistentRead=True,
            ).get("Item")
        return self._entry(item) if item else None

    def entries_by_serial(self, secret_arn: str, serials: Sequence[str]) -> list[IssuedCertificate]:
        """The entries of one secret with these serials, those that exist (BatchGetItem, 100 keys a
        call, strongly consistent; unprocessed keys asked again). Nothing is read for no serials."""
        keys = [
            {"SecretArn": {"S": secret_arn}, "Serial": {"S": s}}
            for s in dict.fromkeys(normalize_serial(s) for s in serials)
            if s
        ]
        found: list[IssuedCertificate] = []
        while keys:
            batch, keys = keys[:BATCH_GET_KEYS], keys[BATCH_GET_KEYS:]
            with aws_call(_SERVICE, "BatchGetItem"):
                page = self._client.batch_get_item(RequestItems={self.table: {"Keys": batch, "ConsistentRead": True}})
            found.extend(self._entry(item) for item in page.get("Responses", {}).get(self.table, []))
            keys = list(page.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])) + keys
        return found

    def owns_certificate(self, secret_arn: str, certificate_arn: str, serials_now: Collection[str] = ()) -> bool:
        """Whether this secret's rotations received ``certificate_arn`` from ACM.

        An entry of the secret whose ``CertificateArn`` is that ARN proves it. An entry written
        before the ledger kept certificate ARNs proves it too when its serial is the one ACM
        describes ``certificate_arn`` with now (``serials_now``, every reading of it): this secret's rotation exported
        that very certificate, and serials are unique per CA (the one-time migration; after ACM
        renews, the first rotation writes an entry with the ARN).
        """
        serials = {normalize_serial(s) for s in serials_now if s}
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "SecretArn = :arn",
            "ExpressionAttributeValues": {":arn": {"S": secret_arn}},
            "ProjectionExpression": "Serial, CertificateArn, CertificateType",
            "ConsistentRead": True,
        }
        while True:
            with aws_call(_SERVICE, "Query"):
                page = self._client.query(**request)
            for item in page.get("Items", []):
                recorded = _text(item, "CertificateArn")
                if recorded == certificate_arn:
                    return True
                legacy = not recorded and _text(item, "CertificateType") == "ACM_ISSUED"
                if legacy and _text(item, "Serial") in serials:
                    return True
            if not page.get("LastEvaluatedKey"):
                return False
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def mark_current(self, secret_arn: str, version_id: str, serial: str, now: datetime) -> bool:
        """The entry ``serial`` of ``version_id`` became AWSCURRENT: every other entry not yet
        superseded is superseded now. False (and nothing changes) when the ledger has no such entry:
        a certificate the rotation did not issue never supersedes one it did."""
        return self.promote(secret_arn, version_id, serial, now)[0]

    def promote(
        self, secret_arn: str, version_id: str, serial: str, now: datetime
    ) -> tuple[bool, list[IssuedCertificate]]:
        """:meth:`mark_current`, and the secret's open entries as they are after it (finishSecret reads
        the ledger once: one Query of :data:`OPEN_INDEX`, and a GetItem only when the index does not
        show the promoted entry yet). Entries revoked or expired are neither read nor changed."""
        entries = self.open_entries(secret_arn, now)
        serial = normalize_serial(serial)
        promoted = next((e for e in entries if e.serial == serial and e.version_id == version_id), None)
        if promoted is None:
            late = self.entry(secret_arn, serial)  # written in createSecret, not in the index yet
            if late is None or late.version_id != version_id:
                return False, entries
            entries.append(late)
        after = []
        for entry in entries:
            changed = entry
            if entry.serial == serial and entry.current_from is None:
                self._set(secret_arn, serial, {"CurrentFrom": _time(now)})
                changed = replace(entry, current_from=_second(now))
            elif entry.serial != serial and entry.superseded_at is None:
                self._set(secret_arn, entry.serial, {"SupersededAt": _time(now)})
                changed = replace(entry, superseded_at=_second(now))
            after.append(changed)
        return True, after

    def record_kept(self, secret_arn: str, serial: str, fingerprint: str, version_id: str) -> bool:
        """A rotation kept the certificate of entry ``serial`` in its new version ``version_id``:
        add the version to the entry's ``KeptVersions`` (a string set), so that the version holding
        it is known without reading any secret value (``certrotate status`` with the ledger).

        The entry must hold that very certificate (same fingerprint): a forged value that only
        reuses a serial gains no version. False when there is no such entry.
        """
        try:
            with aws_call(_SERVICE, "UpdateItem"):
                self._client.update_item(
                    TableName=self.table,
                    Key={"SecretArn": {"S": secret_arn}, "Serial": {"S": normalize_serial(serial)}},
                    UpdateExpression="ADD #kept :version",
                    ConditionExpression="attribute_exists(Serial) AND Fingerprint = :fingerprint",
                    ExpressionAttributeNames={"#kept": KEPT_VERSIONS},
                    ExpressionAttributeValues={
                        ":version": {"SS": [version_id]},
                        ":fingerprint": {"S": fingerprint},
                    },
                )
        except AwsCallError as exc:
            if exc.code != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def add_holders(self, secret_arn: str, serial: str, hosts: Iterable[str], seen_at: datetime) -> None:
        """Remember the hosts seen serving an entry (``HeldBy``, a string set) and when
        (``LastServedAt``): each must later show a newer certificate of the secret before the entry is
        revoked, until :data:`rotation.fleet.revocation.HOLDER_RELEASE_AFTER` after that time."""
        names = sorted(set(hosts))
        if not names:
            return
        with aws_call(_SERVICE, "UpdateItem"):
            self._client.update_item(
                TableName=self.table,
                Key={"SecretArn": {"S": secret_arn}, "Serial": {"S": normalize_serial(serial)}},
                UpdateExpression="ADD #held :hosts SET #seen = :seen",
                ConditionExpression="attribute_exists(Serial)",
                ExpressionAttributeNames={"#held": "HeldBy", "#seen": "LastServedAt"},
                ExpressionAttributeValues={":hosts": {"SS": names}, ":seen": {"S": _time(seen_at)}},
            )

    def mark_revoked(self, secret_arn: str, serial: str, reason: str, now: datetime) -> None:
        """Record a revocation; the entry leaves :data:`OPEN_INDEX` (its ``OpenFor`` removed)."""
        with aws_call(_SERVICE, "UpdateItem"):
            self._client.update_item(
                TableName=self.table,
                Key={"SecretArn": {"S": secret_arn}, "Serial": {"S": normalize_serial(serial)}},
                UpdateExpression="SET #at = :at, #reason = :reason REMOVE #open",
                ConditionExpression="attribute_exists(Serial)",
                ExpressionAttributeNames={"#at": "RevokedAt", "#reason": "RevocationReason", "#open": OPEN_ATTRIBUTE},
                ExpressionAttributeValues={":at": {"S": _time(now)}, ":reason": {"S": reason}},
            )

    def _set(self, secret_arn: str, serial: str, values: Mapping[str, str]) -> None:
        names = {f"#k{i}": key for i, key in enumerate(values)}
        updates = {f":v{i}": {"S": value} for i, value in enumerate(values.values())}
        with aws_call(_SERVICE, "UpdateItem"):
            self._client.update_item(
                TableName=self.table,
                Key={"SecretArn": {"S": secret_arn}, "Serial": {"S": serial}},
                UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(values))),
                ConditionExpression="attribute_exists(Serial)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=updates,
            )

    @staticmethod
    def _entry(item: Mapping[str, Any]) -> IssuedCertificate:
        issued = _parse(item.get("IssuedAt")) or datetime.min.replace(tzinfo=UTC)
        return IssuedCertificate(
            secret_arn=_text(item, "SecretArn"),
            serial=_text(item, "Serial"),
            ca_arn=_text(item, "CaArn"),
            certificate_type=_text(item, "CertificateType"),
            version_id=_text(item, "VersionId"),
            issued_at=issued,
            not_after=_parse(item.get("NotAfter")) or issued,
            fingerprint=_text(item, "Fingerprint"),
            current_from=_parse(item.get("CurrentFrom")),
            superseded_at=_parse(item.get("SupersededAt")),
            revoked_at=_parse(item.get("RevokedAt")),
            revocation_reason=_text(item, "RevocationReason"),
            held_by=_strings(item, "HeldBy"),
            refused_at=_parse(item.get("RefusedAt")),
            refusal=_text(item, "Refusal"),
            last_served_at=_parse(item.get("LastServedAt")),
        )


def create_table(client: Any, table: str, writers: Collection[str] = (), administrators: Collection[str] = ()) -> None:
    """The table as the central template declares it (the demo and tests on moto): deletion
    protection, TTL, and the resource policy that denies item writes to all but ``writers`` and table
    administration to all but ``administrators`` (the account's root user is always one of each)."""
    description = client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "SecretArn", "KeyType": "HASH"}, {"AttributeName": "Serial", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("SecretArn", "Serial", OPEN_ATTRIBUTE, OPEN_SORT_ATTRIBUTE)
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": OPEN_INDEX,
                "KeySchema": [
                    {"AttributeName": OPEN_ATTRIBUTE, "KeyType": "HASH"},
                    {"AttributeName": OPEN_SORT_ATTRIBUTE, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        DeletionProtectionEnabled=True,
    )["TableDescription"]
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    )
    arn = str(description["TableArn"])
    root = f"arn:{arn.split(':')[1]}:iam::{arn.split(':')[4]}:root"

    def deny(sid: str, actions: Collection[str], exempt: Collection[str]) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Deny",
            "Principal": "*",
            "Action": [f"dynamodb:{a}" for a in actions],
            "Resource": "*",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted({root, *exempt})}},
        }

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            deny("OnlyTheRotationRoleAndOperatorsWriteItems", ITEM_WRITES, writers),
            deny("OnlyTheStackAdministratorsAdministerTheTable", ADMIN_ACTIONS, administrators),
        ],
    }
    client.put_resource_policy(ResourceArn=arn, Policy=json.dumps(policy))
