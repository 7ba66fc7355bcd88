"""moto's DynamoDB Scan without its per-call sorting and hashing cost: the same items, pages and segments.

moto 5.2 answers every Scan call (every page of every segment of a parallel scan) by sorting the
whole table with ``DynamoType`` comparisons, each of which casts both values again (``Table.all_items``),
and by taking the MD5 of every item's partition key to find its segment (``Item.is_within_segment``).
A parallel Scan of a 20,000-item ledger in 8 segments is 16 such calls: about 60 % of what moto's
server spent in a keyless ``status`` over 10,000 secrets, work the real service does not charge a
client for. :func:`quick_scans` sorts by each key's value cast once per item (``DynamoType.__lt__``
compares ``cast_value``; a table's key attributes have one declared type each, so the order is the
same), and remembers each partition key's segment byte (the same MD5 byte moto computes). Nothing
else of the scan changes: the 1 MB page limit, ``Limit``, filters, projection and
``LastEvaluatedKey`` are moto's own.

AWS's parallel scan assigns every item of one partition key to one segment, the same segment on
every call (DynamoDB Developer Guide, *Parallel scan*: each segment is scanned independently);
moto's MD5 rule has that property and this keeps it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table
from moto.utilities.utils import md5_hash

from rotation.emulation.moto_patch import replaced


@functools.lru_cache(maxsize=1 << 17)
def _segment_byte(partition_key: str) -> int:
    """The first byte of the key's MD5, as moto's ``Item.is_within_segment`` computes it per call."""
    return int(md5_hash(partition_key.encode("utf8")).digest()[0])


def _within_segment(item: Any, segments: tuple[None, None] | tuple[int, int]) -> bool:
    segment, total = segments
    if segment is None or total is None:  # (None, None): the whole table
        return True
    return segment == _segment_byte(item.hash_key.value) % total


def _cast(value: Any) -> Any:
    """``DynamoType.cast_value``: a string or binary key is its value as is (no type checks on the way)."""
    return value.value if value.type in ("S", "B") else value.cast_value


def _all_items(table: Any) -> list[Any]:
    """``Table.all_items``: every item ordered by partition key, then sort key, each key cast once."""
    items: list[Any] = []
    for hash_set in table.items.values():
        if table.range_key_attr:
            items.extend(hash_set.values())
        else:
            items.append(hash_set)
    # moto's key, with each DynamoType replaced by the value its comparisons use
    return sorted(
        items,
        key=lambda x: (_cast(x.hash_key), _cast(x.range_key)) if x.range_key else _cast(x.hash_key),
    )


@contextlib.contextmanager
def quick_scans() -> Iterator[None]:
    """moto's Scan (and everything else that walks ``all_items``) at one cast and one hash per item."""
    with replaced(Table, all_items=_all_items), replaced(Item, is_within_segment=_within_segment):
        yield
