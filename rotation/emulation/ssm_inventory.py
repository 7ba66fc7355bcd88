"""SSM custom inventory for moto: PutInventory, GetInventory and ListInventoryEntries.

moto 5.2 has none of the three (its server answers "not yet implemented"). The installer records
what a host serves as the custom inventory type ``Custom:CertrotateCertificate`` and ``certrotate
hosts`` reads it back, so :func:`ssm_inventory_in_moto` adds the three operations to moto's SSM
responses: in process (``mock_aws``) and in a ``ThreadedMotoServer`` of the same process alike.

What is emulated follows the API model (botocore's ``ssm`` service model) and the API reference:

- PutInventory: ``InstanceId`` pattern, 1 to 30 items, ``TypeName`` ``^(AWS|Custom):.*$`` (only
  ``Custom:`` types can be put by a caller), ``SchemaVersion`` and ``CaptureTime`` patterns, Content
  up to 10,000 string maps of at most 50 entries (keys 1-64 characters, values up to 4,096). A put
  replaces the whole type for the instance, except that an unchanged ``ContentHash`` leaves the
  stored item as it was. A type's attribute names are fixed by its first put for that schema
  version (``ItemContentMismatchException`` otherwise is what AWS documents for a changed schema;
  we keep the simpler rule of the same SchemaVersion).
- GetInventory: one ``ResultAttributes`` type, ``Filters`` on ``TYPE.Attribute`` keys of stored
  types and on ``AWS:InstanceInformation.InstanceId`` (the node's id) with
  ``Equal``, ``NotEqual``, ``BeginWith`` and ``Exists``, ``MaxResults`` (1-50) and ``NextToken``
  (opaque to callers; here the last instance id of the page, so a page costs its own entities and
  a full read of n instances is O(n));
  ``Aggregators`` are not emulated and are refused (InvalidAggregatorException).
- ListInventoryEntries: one instance and type, ``MaxResults`` and ``NextToken``.

Not emulated: whether the instance is a managed node (any well-formed id is accepted), the 200 KB
size limits, ``Context``, and the ``AWS:*`` types the SSM agent gathers itself.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult

from rotation.emulation.moto_patch import replaced

INSTANCE_ID = re.compile(r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)")
TYPE_NAME = re.compile(r"^(AWS|Custom):.*$")
SCHEMA_VERSION = re.compile(r"^([0-9]{1,6})(\.[0-9]{1,6})$")
CAPTURE_TIME = re.compile(
    r"^(20)[0-9][0-9]-(0[1-9]|1[012])-([12][0-9]|3[01]|0[1-9])(T)(2[0-3]|[0-1][0-9])(:[0-5][0-9])(:[0-5][0-9])(Z)$"
)
MAX_ITEMS = 30
MAX_CONTENT = 10_000
MAX_ATTRIBUTES = 50
MAX_KEY = 64
MAX_VALUE = 4096
FILTER_TYPES = ("Equal", "NotEqual", "BeginWith", "Exists")


class InventoryError(ServiceException):
    """An SSM error with the code the API model names for the operation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


@dataclass(frozen=True)
class StoredItem:
    type_name: str
    schema_version: str
    capture_time: str
    content_hash: str
    content: tuple[Mapping[str, str], ...]

    def result_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "TypeName": self.type_name,
            "SchemaVersion": self.schema_version,
            "CaptureTime": self.capture_time,
            "Content": [dict(entry) for entry in self.content],
        }
        if self.content_hash:
            item["ContentHash"] = self.content_hash
        return item


# (account, region) -> instance id -> type name -> item
_STORE: dict[tuple[str, str], dict[str, dict[str, StoredItem]]] = {}
# (account, region) -> the instance ids of _STORE, sorted: GetInventory pages walk it from the token on
_ORDER: dict[tuple[str, str], list[str]] = {}


def reset() -> None:
    """Forget every stored item (moto's own reset does not know this store)."""
    _STORE.clear()
    _ORDER.clear()


def _instance(value: Any) -> str:
    if not isinstance(value, str) or not INSTANCE_ID.match(value):
        raise InventoryError("InvalidInstanceId", f"InstanceId {value!r} is not a managed node id (i-… or mi-…)")
    return value


def _check_content(type_name: str, content: Any) -> tuple[Mapping[str, str], ...]:
    if not isinstance(content, list) or len(content) > MAX_CONTENT:
        raise InventoryError(
            "InvalidItemContentException", f"{type_name}: Content must be a list of at most {MAX_CONTENT} maps"
        )
    checked = []
    for index, entry in enumerate(content):
        if not isinstance(entry, dict) or len(entry) > MAX_ATTRIBUTES:
            raise InventoryError(
                "InvalidItemContentException",
                f"{type_name}: Content[{index}] must be a map of at most {MAX_ATTRIBUTES} entries",
            )
        for key, value in entry.items():
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
                raise InventoryError(
                    "InvalidItemContentException",
                    f"{type_name}: Content[{index}] key {key!r} must be 1-{MAX_KEY} characters",
                )
            if not isinstance(value, str) or len(value) > MAX_VALUE:
                raise InventoryError(
                    "InvalidItemContentException",
                    f"{type_name}: Content[{index}].{key} must be a string of at most {MAX_VALUE} characters",
                )
        checked.append(dict(entry))
    return tuple(checked)


def _check_item(item: Any) -> StoredItem:
    if not isinstance(item, dict):
        raise InventoryError("ValidationException", "each of Items must be an InventoryItem")
    type_name = item.get("TypeName")
    if not isinstance(type_name, str) or not TYPE_NAME.match(type_name) or not 1 <= len(type_name) <= 100:
        raise InventoryError("InvalidTypeNameException", f"TypeName {type_name!r} must match ^(AWS|Custom):.*$")
    if not type_name.startswith("Custom:"):
        raise InventoryError("InvalidTypeNameException", f"TypeName {type_name!r}: only Custom: types can be put")
    schema = item.get("SchemaVersion")
    if not isinstance(schema, str) or not SCHEMA_VERSION.match(schema):
        raise InventoryError(
            "UnsupportedInventorySchemaVersionException", f"SchemaVersion {schema!r} must look like 1.0"
        )
    capture = item.get("CaptureTime")
    if not isinstance(capture, str) or not CAPTURE_TIME.match(capture):
        raise InventoryError("ValidationException", f"CaptureTime {capture!r} must be YYYY-MM-DDTHH:MM:SSZ")
    content_hash = item.get("ContentHash") or ""
    if not isinstance(content_hash, str) or len(content_hash) > 256:
        raise InventoryError("ValidationException", "ContentHash must be a string of at most 256 characters")
    content = _check_content(type_name, item.get("Content", []))
    return StoredItem(type_name, schema, capture, content_hash, content)


def put_inventory(account: str, region: str, instance_id: Any, items: Any) -> None:
    instance = _instance(instance_id)
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InventoryError("ValidationException", f"Items must hold 1 to {MAX_ITEMS} items")
    checked = [_check_item(item) for item in items]
    if len({item.type_name for item in checked}) != len(checked):
        raise InventoryError("ValidationException", "Items names a TypeName twice")
    instances = _STORE.setdefault((account, region), {})
    if instance not in instances:
        bisect.insort(_ORDER.setdefault((account, region), []), instance)
    stored = instances.setdefault(instance, {})
    for item in checked:
        before = stored.get(item.type_name)
        if before is not None and item.content_hash and item.content_hash == before.content_hash:
            continue  # AWS: an unchanged ContentHash does not update the item
        stored[item.type_name] = item


def _page_size(max_results: Any) -> int:
    size = 50 if max_results is None else int(max_results)
    if not 1 <= size <= 50:
        raise InventoryError("ValidationException", "MaxResults must be 1 to 50")
    return size


def _page(items: Sequence[Any], token: Any, max_results: Any) -> tuple[list[Any], str | None]:
    size = _page_size(max_results)
    start = 0
    if token:
        if not isinstance(token, str) or not token.isdigit() or int(token) > len(items):
            raise InventoryError("InvalidNextToken", "NextToken is not one this call returned")
        start = int(token)
    end = start + size
    return list(items[start:end]), (str(end) if end < len(items) else None)


def _matches(item: StoredItem, attribute: str, kind: str, values: Sequence[str]) -> bool:
    return _compare([entry[attribute] for entry in item.content if attribute in entry], kind, values)


#: The filter key on the managed node's own id (every managed node has AWS:InstanceInformation;
#: API reference, InventoryFilter: ``Key=AWS:InstanceInformation.InstanceId``).
INSTANCE_ID_KEY = ("AWS:InstanceInformation", "InstanceId")


def _passes(instance: str, types: Mapping[str, StoredItem], filters: Sequence[tuple[str, str, str, list[str]]]) -> bool:
    for type_name, attribute, kind, values in filters:
        if (type_name, attribute) == INSTANCE_ID_KEY:
            if not _compare([instance], kind, values):
                return False
        elif type_name not in types or not _matches(types[type_name], attribute, kind, values):
            return False
    return True


def _compare(present: Sequence[str], kind: str, values: Sequence[str]) -> bool:
    if kind == "Exists":
        return bool(present)
    if kind == "Equal":
        return any(v in values for v in present)
    if kind == "NotEqual":
        return any(v not in values for v in present)
    return any(v.startswith(prefix) for v in present for prefix in values)  # BeginWith


def _parse_filters(filters: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, list[str]]]:
    if len(filters) > 5:
        raise InventoryError("InvalidFilter", "at most 5 Filters")
    parsed = []
    for entry in filters:
        key, kind, values = entry.get("Key", ""), entry.get("Type", "Equal"), entry.get("Values") or []
        type_name, _, attribute = str(key).rpartition(".")
        if not TYPE_NAME.match(type_name) or not attribute:
            raise InventoryError("InvalidFilter", f"filter Key {key!r} must be TYPE.Attribute")
        if kind not in FILTER_TYPES:
            raise InventoryError(
                "InvalidFilter", f"filter Type {kind!r} is not emulated (emulated: {', '.join(FILTER_TYPES)})"
            )
        if not 1 <= len(values) <= 40:
            raise InventoryError("InvalidFilter", "filter Values must hold 1 to 40 values")
        parsed.append((type_name, attribute, kind, [str(v) for v in values]))
    return parsed


def get_inventory(account: str, region: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if params.get("Aggregators"):
        raise InventoryError("InvalidAggregatorException", "Aggregators are not emulated")
    attributes = params.get("ResultAttributes") or []
    if len(attributes) > 1:
        raise InventoryError("InvalidResultAttributeException", "ResultAttributes holds at most one type")
    wanted = attributes[0].get("TypeName") if attributes else None
    if wanted is not None and not TYPE_NAME.match(str(wanted)):
        raise InventoryError("InvalidResultAttributeException", f"TypeName {wanted!r} must match ^(AWS|Custom):.*$")
    parsed = _parse_filters(params.get("Filters") or [])
    size = _page_size(params.get("MaxResults"))
    order = _ORDER.get((account, region), [])
    store = _STORE.get((account, region), {})
    start = 0
    token = params.get("NextToken")
    if token:
        if not isinstance(token, str) or not INSTANCE_ID.match(token):
            raise InventoryError("InvalidNextToken", "NextToken is not one this call returned")
        start = bisect.bisect_right(order, token)
    # Walk the instances in id order from the token on, building only this page's entities (and
    # looking one match ahead to know whether there is a next page): a full read is O(n), not O(n²).
    entities: list[dict[str, Any]] = []
    next_token = None
    for instance in itertools.islice(order, start, None):
        types = store[instance]
        if wanted is not None and wanted not in types:
            continue
        if not _passes(instance, types, parsed):
            continue
        if len(entities) == size:
            next_token = entities[-1]["Id"]
            break
        shown = {wanted: types[wanted]} if wanted is not None else types
        entities.append({"Id": instance, "Data": {name: item.result_item() for name, item in shown.items()}})
    result: dict[str, Any] = {"Entities": entities}
    if next_token:
        result["NextToken"] = next_token
    return result


def list_inventory_entries(account: str, region: str, params: Mapping[str, Any]) -> dict[str, Any]:
    instance = _instance(params.get("InstanceId"))
    type_name = params.get("TypeName")
    if not isinstance(type_name, str) or not TYPE_NAME.match(type_name):
        raise InventoryError("InvalidTypeNameException", f"TypeName {type_name!r} must match ^(AWS|Custom):.*$")
    if params.get("Filters"):
        raise InventoryError("InvalidFilter", "Filters on ListInventoryEntries are not emulated")
    item = _STORE.get((account, region), {}).get(instance, {}).get(type_name)
    entries = list(item.content) if item else []
    page, token = _page(entries, params.get("NextToken"), params.get("MaxResults"))
    result: dict[str, Any] = {"TypeName": type_name, "InstanceId": instance, "Entries": [dict(e) for e in page]}
    if item:
        result.update(SchemaVersion=item.schema_version, CaptureTime=item.capture_time)
    if token:
        result["NextToken"] = token
    return result


def _body(response: Any) -> dict[str, Any]:
    body = json.loads(response.body or "{}")
    return body if isinstance(body, dict) else {}


def _put_inventory(self: Any) -> ActionResult:
    put_inventory(self.current_account, self.region, self._get_param("InstanceId"), self._get_param("Items"))
    return ActionResult({})


def _get_inventory(self: Any) -> str:
    # The result is already in the API's JSON shape: answered as JSON text, not through moto's
    # model-driven serializer, whose per-field walk cost more than the read it emulates (issue 18).
    return json.dumps(get_inventory(self.current_account, self.region, _body(self)))


def _list_inventory_entries(self: Any) -> ActionResult:
    return ActionResult(list_inventory_entries(self.current_account, self.region, _body(self)))


_OPERATIONS = {
    "put_inventory": _put_inventory,
    "get_inventory": _get_inventory,
    "list_inventory_entries": _list_inventory_entries,
}


@contextlib.contextmanager
def ssm_inventory_in_moto() -> Iterator[None]:
    """Give moto's SSM the three inventory operations for the duration (and an empty store)."""
    from moto.ssm.responses import SimpleSystemManagerResponse

    missing = {name: _OPERATIONS[name] for name in _OPERATIONS if not hasattr(SimpleSystemManagerResponse, name)}
    reset()
    try:
        with replaced(SimpleSystemManagerResponse, **missing):
            yield
    finally:
        reset()
