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

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from rotation.aws import aws_call
from rotation.errors import AwsCallError
from rotation.fleet.ledger_protection import ProtectionCheck
from rotation.fleet.ledger_table import (
    KEPT_AFTER_EXPIRY,
    OPEN_ATTRIBUTE,
    OPEN_INDEX,
    OPEN_SORT_ATTRIBUTE,
    TTL_ATTRIBUTE,
    create_table,
    entry_item,
    entry_of,
    text,
    time_text,
    whole_second,
)
from rotation.fleet.revocation import IssuedCertificate
from rotation.fleet.view import normalize_serial

LEDGER_TABLE_ENV = "CERTROTATE_LEDGER_TABLE"
_SERVICE = "dynamodb"
#: The longest ``Refusal`` text kept.
REFUSAL_LIMIT = 1000
#: The versions, besides ``VersionId``, that hold an entry's certificate (rotations that kept it).
KEPT_VERSIONS = "KeptVersions"
#: The per-secret marker "every open entry of this secret carries OpenFor": partition
#: ``certrotate-open-index#SECRET_ARN`` (beside the pacer's ``certrotate-pacer#...``), this sort key.
INDEXED_PREFIX = "certrotate-open-index#"
INDEXED_SORT_KEY = "indexed"
_NEVER = "9999-12-31T23:59:59Z"
#: BatchGetItem reads at most 100 items a call (API Reference, BatchGetItem).
BATCH_GET_KEYS = 100


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
        self._put(entry_item(entry, certificate_arn))

    def record_refused(self, entry: IssuedCertificate, refusal: str, certificate_arn: str = "") -> None:
        """Add a certificate the CA issued and the rotation refused: ``RefusedAt`` and ``SupersededAt``
        are its issue time, ``Refusal`` says why (at most :data:`REFUSAL_LIMIT` characters)."""
        item = entry_item(entry, certificate_arn)
        item["RefusedAt"] = item["SupersededAt"] = {"S": time_text(entry.issued_at)}
        item["Refusal"] = {"S": refusal[:REFUSAL_LIMIT] or "refused"}
        self._put(item)

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
            found.extend(entry_of(item) for item in page.get("Items", []))
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
            "ExpressionAttributeValues": {":arn": {"S": secret_arn}, ":now": {"S": time_text(now)}},
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
                if text(item, "SecretArn") == INDEXED_PREFIX + secret_arn:
                    indexed = text(item, "Serial") == INDEXED_SORT_KEY or indexed
                elif text(item, "SecretArn") == secret_arn:
                    found.append(entry_of(item))
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
        return entry_of(item) if item else None

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
            found.extend(entry_of(item) for item in page.get("Responses", {}).get(self.table, []))
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
                recorded = text(item, "CertificateArn")
                if recorded == certificate_arn:
                    return True
                legacy = not recorded and text(item, "CertificateType") == "ACM_ISSUED"
                if legacy and text(item, "Serial") in serials:
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
                self._set(secret_arn, serial, {"CurrentFrom": time_text(now)})
                changed = replace(entry, current_from=whole_second(now))
            elif entry.serial != serial and entry.superseded_at is None:
                self._set(secret_arn, entry.serial, {"SupersededAt": time_text(now)})
                changed = replace(entry, superseded_at=whole_second(now))
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
                ExpressionAttributeValues={":hosts": {"SS": names}, ":seen": {"S": time_text(seen_at)}},
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
                ExpressionAttributeValues={":at": {"S": time_text(now)}, ":reason": {"S": reason}},
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


__all__ = [  # the table's shape and create_table live in rotation.fleet.ledger_table; named here too
    "BATCH_GET_KEYS",
    "INDEXED_PREFIX",
    "INDEXED_SORT_KEY",
    "KEPT_AFTER_EXPIRY",
    "KEPT_VERSIONS",
    "LEDGER_TABLE_ENV",
    "OPEN_ATTRIBUTE",
    "OPEN_INDEX",
    "OPEN_SORT_ATTRIBUTE",
    "REFUSAL_LIMIT",
    "TTL_ATTRIBUTE",
    "Ledger",
    "create_table",
]
