"""Whether the issuance ledger table still has the protections the central stack gave it.

The ledger is authority: it proves which ACM certificates a secret's rotations requested (and may
be exported into it), and which certificates each secret's rotations issued (and may be revoked).
The table's resource policy denies item writes to all but the rotation role and the operators, and
denies ``DeleteTable``, ``UpdateTable``, ``PutResourcePolicy`` and ``DeleteResourcePolicy`` to all
but the stack's administrators; deletion protection (``DeletionProtectionEnabled``) is on. A table
deleted and created again under the same name has the same ARN and none of that, and whoever created
it may have written any entry. So before the rotation takes an ownership proof or a revocation from
the table, it checks the protections are still there (:func:`protection_problems`, pure), and refuses,
failing the step, when they are not (:class:`LedgerUnprotected`; the ``LedgerUnprotected`` metric and
the step's ``RotationStepFailures`` or ``RevocationFailures`` raise the stack's alarms).

AWS facts relied on: DescribeTable reports ``DeletionProtectionEnabled`` and ``CreationDateTime``
(a table created again has a new one); GetResourcePolicy returns the policy document as JSON text
and ``PolicyNotFoundException`` when the table has none (DynamoDB API Reference, DescribeTable,
GetResourcePolicy). The account's root user may always delete or replace a table's resource policy,
whatever it denies (API Reference, DeleteResourcePolicy: "the root principal ... can perform
DeleteResourcePolicy requests, even if your resource-based policy explicitly denies the root
principal's access"), so the root user is always one of the administrators.

Cached per container (:class:`ProtectionCheck`): each check costs one DescribeTable; the policy is
read again when the table's creation time changes or :data:`RECHECK_SECONDS` have passed.

What this cannot see: a principal who may create the table *and* put a resource policy can rebuild
the same protections after writing entries; the stack's administrators (and IAM) must keep
``dynamodb:CreateTable`` and ``dynamodb:PutResourcePolicy`` on this table name to themselves.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from rotation.aws import aws_call
from rotation.errors import AwsCallError, CertRotateError

#: The function's environment: every principal ARN the table's policy may exempt (the rotation
#: role, the operators, the table's administrators), comma-separated; unset: not checked.
LEDGER_PRINCIPALS_ENV = "CERTROTATE_LEDGER_PRINCIPALS"
#: Denied to every principal but the administrators.
ADMIN_ACTIONS = ("DeleteTable", "UpdateTable", "PutResourcePolicy", "DeleteResourcePolicy")
#: Denied to every principal but the rotation role and the operators.
ITEM_WRITES = (
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "PartiQLInsert",
    "PartiQLUpdate",
    "PartiQLDelete",
)
RECHECK_SECONDS = 300.0
_EXEMPTING = ("ArnNotEquals", "StringNotEquals")


class LedgerUnprotected(CertRotateError):
    """The ledger table lost a protection: nothing it says is taken as proof."""


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def _everyone(principal: object) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and list(principal) == ["AWS"] and _strings(principal["AWS"]) == ["*"]


def _exemptions(condition: object) -> list[str] | None:
    """The principal ARNs a Deny's condition exempts (ArnNotEquals/StringNotEquals on
    aws:PrincipalArn, exact ARNs); None when the condition is anything else (it could exempt anyone)."""
    if condition is None:
        return []
    if not isinstance(condition, Mapping) or not condition:
        return None
    exempt: list[str] = []
    for operator, test in condition.items():
        if operator not in _EXEMPTING or not isinstance(test, Mapping) or len(test) != 1:
            return None
        key, values = next(iter(test.items()))
        arns = _strings(values)
        if str(key).lower() != "aws:principalarn" or not arns or any("*" in a or "?" in a for a in arns):
            return None
        exempt.extend(arns)
    return exempt


def _covers(actions: Iterable[str], wanted: str) -> bool:
    return any(fnmatch.fnmatchcase(f"dynamodb:{wanted}".lower(), a.lower()) for a in actions)


def protection_problems(table: Mapping[str, Any], policy: str | None, principals: Collection[str] = ()) -> list[str]:
    """What the table lacks of its protections (empty: protected). Pure.

    Args:
        table: DescribeTable's ``Table``.
        policy: GetResourcePolicy's ``Policy`` text; None when the table has no policy.
        principals: the ARNs an exemption may name (:data:`LEDGER_PRINCIPALS_ENV`); empty: any exact ARN.
    """
    problems = []
    if table.get("DeletionProtectionEnabled") is not True:
        problems.append("deletion protection is off")
    if policy is None:
        return [*problems, "the table has no resource policy"]
    try:
        document = json.loads(policy)
    except ValueError:
        return [*problems, "the resource policy is not JSON"]
    statements = document.get("Statement") if isinstance(document, Mapping) else None
    if isinstance(statements, Mapping):
        statements = [statements]
    arn = str(table.get("TableArn", ""))
    denies = []
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Deny":
            continue
        resources = _strings(statement.get("Resource"))
        exempt = _exemptions(statement.get("Condition"))
        if not _everyone(statement.get("Principal")) or not ({"*", arn} & set(resources)) or exempt is None:
            continue
        strangers = [a for a in exempt if principals and a not in principals]
        if strangers:
            problems.append(f"statement {statement.get('Sid', '?')} exempts {', '.join(strangers)}")
            continue
        denies.append(_strings(statement.get("Action")))
    for action in (*ADMIN_ACTIONS, *ITEM_WRITES):
        if not any(_covers(actions, action) for actions in denies):
            problems.append(f"nothing denies dynamodb:{action} to other principals")
    return problems


class ProtectionCheck:
    """The per-container check of one table (the ledger owns one)."""

    def __init__(
        self,
        client: Any,
        table: str,
        principals: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table
        self._principals = frozenset(principals)
        self._clock = clock
        self._verified: tuple[str, float] | None = None  # (CreationDateTime, when checked)

    def require(self) -> None:
        """Raises:
        LedgerUnprotected: a protection is missing (logged, counted, never cached).
        AwsCallError: DescribeTable or GetResourcePolicy failed for another reason."""
        with aws_call("dynamodb", "DescribeTable"):
            table = self._client.describe_table(TableName=self._table)["Table"]
        created = str(table.get("CreationDateTime", ""))
        verified = self._verified
        if (
            table.get("DeletionProtectionEnabled") is True
            and verified is not None
            and verified[0] == created
            and self._clock() - verified[1] < RECHECK_SECONDS
        ):
            return
        self._verified = None
        try:
            with aws_call("dynamodb", "GetResourcePolicy"):
                policy: str | None = str(self._client.get_resource_policy(ResourceArn=table["TableArn"])["Policy"])
        except AwsCallError as exc:
            if exc.code != "PolicyNotFoundException":
                raise
            policy = None
        problems = protection_problems(table, policy, self._principals)
        if problems:
            from rotation import telemetry  # here: the command line imports the ledger before its log level is set

            telemetry.ledger_unprotected()
            raise LedgerUnprotected(
                f"the issuance ledger table {self._table} lost its protections ({'; '.join(problems)}): "
                "it is not trusted to prove ownership or drive revocation until the stack's administrators "
                "restore it (deletion protection, the central template's resource policy)"
            )
        self._verified = (created, self._clock())


def principals_from_environment(environ: Mapping[str, str]) -> frozenset[str]:
    """:data:`LEDGER_PRINCIPALS_ENV` as a set (empty when unset)."""
    return frozenset(p.strip() for p in environ.get(LEDGER_PRINCIPALS_ENV, "").split(",") if p.strip())
