"""moto's DynamoDB Scan without its per-call sorting, hashing and copying cost: the same items, pages and segments.

moto 5.2 answers every Scan call (every page of every segment of a parallel scan) by sorting the
whole table with ``DynamoType`` comparisons, each of which casts both values again (``Table.all_items``),
by taking the MD5 of every item's partition key to find its segment (``Item.is_within_segment``),
by comparing every item before ``ExclusiveStartKey`` with it, and by deep-copying every item it
reads before the filter expression drops most of them. A parallel Scan of a 20,000-item ledger in
8 segments is 16 such calls: about 60 % of what moto's server spent in a keyless ``status`` over
10,000 secrets, work the real service does not charge a client for. :func:`quick_scans` sorts by
each key's value cast once per item (``DynamoType.__lt__`` compares ``cast_value``; a table's key
attributes have one declared type each, so the order is the same), remembers each partition key's
segment byte (the same MD5 byte moto computes), keeps the order between calls while no item is
added or removed, finds the start key by bisection, and copies only the items it returns. The
1 MB limit on the data read, ``Limit``, ``ScannedCount``, the filters, the projection and
``LastEvaluatedKey`` are moto's (tested page for page against moto's answers).

AWS's parallel scan assigns every item of one partition key to one segment, the same segment on
every call (DynamoDB Developer Guide, *Parallel scan*: each segment is scanned independently), and
applies the 1 MB limit to the items read before any filter (*Scan*, "Filter expressions for Scan");
moto's rules have both properties and this keeps them.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import functools
from collections.abc import Iterator
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table
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


def _sort_key(item: Any) -> Any:
    # moto's key, with each DynamoType replaced by the value its comparisons use
    return (_cast(item.hash_key), _cast(item.range_key)) if item.range_key else _cast(item.hash_key)


_CACHE = "_certrotate_sorted_items"
#: A new object each time :func:`quick_scans` begins or ends: an order kept from another while (the
#: writes between two were not counted) is never used.
_EPOCH: list[object] = [object()]
_GENERATION = "_certrotate_generation"


def _keyed_items(table: Any) -> list[tuple[Any, Any]]:
    """Every item of the table with its sort key, ordered as ``Table.all_items`` orders them.

    The order is kept between calls while the table's keys are the same: moto adds, replaces and
    removes items only in ``Table.put_item`` and ``Table.delete_item`` (wrapped here to count a
    generation), a restore gives the table a new ``items`` dictionary, and an order kept from
    another :func:`quick_scans` is not used. An update changes an
    item in place, which the kept order (of the item objects themselves) sees.
    """
    generation = table.__dict__.get(_GENERATION, 0)
    kept = table.__dict__.get(_CACHE)
    if kept is not None and kept[0] is table.items and kept[1] == generation and kept[3] is _EPOCH[0]:
        return kept[2]
    keyed = _sorted_now(table)
    table.__dict__[_CACHE] = (table.items, generation, keyed, _EPOCH[0])
    return keyed


def _sorted_now(table: Any) -> list[tuple[Any, Any]]:
    items: list[Any] = []
    for hash_set in table.items.values():
        if table.range_key_attr:
            items.extend(hash_set.values())
        else:
            items.append(hash_set)
    names = (table.hash_key_attr, table.range_key_attr)
    if table.range_key_attr and all(_declared_type(table, name) in ("S", "B") for name in names):
        # the ledger's keys: strings, whose cast value is the value itself (moto refuses a key of another type)
        keyed = [((item.hash_key.value, item.range_key.value), item) for item in items]
    else:
        keyed = [(_sort_key(item), item) for item in items]
    keyed.sort(key=lambda pair: pair[0])
    return keyed


def _all_items(table: Any) -> list[Any]:
    """``Table.all_items``: every item ordered by partition key, then sort key, each key cast once."""
    return [item for _, item in _keyed_items(table)]


def _start_after(table: Any, exclusive_start_key: dict[str, Any]) -> Any:
    """The sort key of ``ExclusiveStartKey`` (moto's scan skips every item up to and including it), or
    None where it does not name exactly the table's key attributes (moto's own scan handles those)."""
    names = [table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])]
    if sorted(exclusive_start_key) != sorted(names):
        return None
    values = [DynamoType(exclusive_start_key[name]) for name in names]
    if [v.type for v in values] != [_declared_type(table, name) for name in names]:
        return None
    return (_cast(values[0]), _cast(values[1])) if len(values) == 2 else _cast(values[0])


def _declared_type(table: Any, name: str) -> str:
    return next((str(a["AttributeType"]) for a in table.attr if a["AttributeName"] == name), "")


def _passes(item: Any, filters: dict[str, Any]) -> bool:
    """moto's check of the legacy ``ScanFilter`` conditions, as its scan loop makes it."""
    for attribute_name, (operator, values) in filters.items():
        attribute = item.attrs.get(attribute_name)
        if attribute:
            if not attribute.compare(operator, values):
                return False
        elif operator != "NULL":
            return False
    return True


def _scan(
    table: Any,
    filters: dict[str, Any],
    limit: int,
    exclusive_start_key: dict[str, Any] | None,
    filter_expression: Any = None,
    index_name: str | None = None,
    consistent_read: bool = False,
    projection_expression: list[list[str]] | None = None,
    segments: tuple[None, None] | tuple[int, int] = (None, None),
) -> tuple[list[Any], int, dict[str, Any] | None]:
    """``Table.scan`` of the table itself: moto's loop (segment, start key, ``Limit``, the 1 MB limit on
    the items read, legacy filters, then the filter expression and the projection), with the start
    key found by bisection in the sorted items, and an item copied only when it is returned (moto
    copies every item read, then drops what the filter expression refuses; a projection builds new
    items anyway). A scan of an index, or a start key moto would compare differently, is moto's own.
    """
    after = None if index_name or exclusive_start_key is None else _start_after(table, exclusive_start_key)
    if index_name or (exclusive_start_key is not None and after is None):
        return _MOTO_SCAN(
            table,
            filters,
            limit,
            exclusive_start_key,
            filter_expression,
            index_name,
            consistent_read,
            projection_expression,
            segments,
        )
    keyed = _keyed_items(table)
    first = 0 if after is None else bisect.bisect_right(keyed, after, key=lambda pair: pair[0])
    read: list[Any] = []
    size = 0
    scanned = 0
    last_key = None
    for _, item in keyed[first:]:
        if not _within_segment(item, segments):
            continue
        item_size = item.size()
        if len(read) == limit or size + item_size > RESULT_SIZE_LIMIT:
            last_key = table._get_last_evaluated_key(copy.deepcopy(read[-1]), index_name)
            break
        if _passes(item, filters):
            read.append(item)
            size += item_size
        scanned += 1
    if filter_expression is not None:
        read = [item for item in read if filter_expression.expr(item)]
    if projection_expression:
        results = [item.project(projection_expression) for item in read]
    else:
        results = [copy.deepcopy(item) for item in read]
    return results, scanned, last_key


_MOTO_SCAN: Any = Table.scan
_MOTO_PUT: Any = Table.put_item
_MOTO_DELETE: Any = Table.delete_item


def _changing(write: Any) -> Any:
    def changed(table: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return write(table, *args, **kwargs)
        finally:  # before and after alike: a failed conditional write changed nothing, and costs a sort
            table.__dict__[_GENERATION] = table.__dict__.get(_GENERATION, 0) + 1

    return changed


@contextlib.contextmanager
def quick_scans() -> Iterator[None]:
    """moto's Scan (and everything else that walks ``all_items``) at one cast and one hash per item."""
    with (
        replaced(
            Table,
            all_items=_all_items,
            scan=_scan,
            put_item=_changing(_MOTO_PUT),
            delete_item=_changing(_MOTO_DELETE),
        ),
        replaced(Item, is_within_segment=_within_segment),
    ):
        _EPOCH[0] = object()
        try:
            yield
        finally:
            _EPOCH[0] = object()
