"""DynamoDB table deletion in moto as AWS does it: a deleted table's resource policy goes with it.

A resource-based policy is attached to one table (API Reference, PutResourcePolicy: it "attaches a
resource-based policy document to the resource"; CreateTable's ``ResourcePolicy`` is "attached to the
table" being created), and a table created again under the same name is a new resource that starts
without one: issue 25's third attack pass deleted the ledger on AWS and found the new table, same
ARN, with no policy. moto 5.2 keeps its policies in a dictionary keyed by the table ARN and never
forgets one on DeleteTable, so a table re-created under the same name silently inherits the old
policy: exactly the protection an attacker who replaces the ledger removes
(rotation.fleet.ledger_protection). While :func:`strict_table_deletion`
is active, DeleteTable also drops the table's policy.

moto is lenient in ways this does not change, and the tests say so where it matters: it enforces no
resource policy (a Deny in one stops nobody), and DescribeTable returns no ``TableId``; deletion
protection it does enforce (DeleteTable refuses, as AWS does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rotation.emulation.moto_patch import replaced


@contextlib.contextmanager
def strict_table_deletion() -> Iterator[None]:
    """DeleteTable drops the table's resource policy, for the duration (in process and in a server)."""
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.delete_table

    def delete_table(self: Any, name: str) -> Any:
        table = original(self, name)
        self.resource_policies.pop(table.table_arn, None)
        return table

    with replaced(DynamoDBBackend, delete_table=delete_table):
        yield
