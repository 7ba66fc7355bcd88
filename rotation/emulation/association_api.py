"""The eight State Manager association operations in moto's SSM, answered from a :class:`StateManager`.

:func:`state_manager_in_moto` adds CreateAssociation, UpdateAssociation, DescribeAssociation,
ListAssociations, DeleteAssociation, StartAssociationsOnce, DescribeAssociationExecutions and
DescribeAssociationExecutionTargets to moto's SSM responses for its duration (moto 5.2 answers
each with "not yet implemented"), in process and in a ``ThreadedMotoServer`` of the same process.
Answers are the API's JSON (timestamps as epoch seconds, as the JSON protocol sends them).

ListAssociations filters (API model ``AssociationFilterKey``): ``AssociationName`` matches names
that begin with the value (the service does not promise an exact match, so a caller must compare
names itself: the emulation returns the wider answer), ``Name`` (the document), ``AssociationId``
and ``AssociationStatusName`` exactly; several filters must all hold. The time, instance and
resource-group filters are refused as not emulated. Pages hold ``MaxResults`` (1-50, default 50)
entries; ``NextToken`` is opaque to callers.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from moto.core.responses import ActionResult

from rotation.emulation.association_rules import AssociationError
from rotation.emulation.association_runs import Execution, TargetRun
from rotation.emulation.managed_hosts import ManagedHosts
from rotation.emulation.state_manager import StateManager

_ACTIVE: list[StateManager] = []
_LIST_FILTERS = ("AssociationName", "Name", "AssociationId", "AssociationStatusName")
_EXECUTION_FILTERS = ("Status",)
_TARGET_FILTERS = ("Status", "ResourceId", "ResourceType")
PAGE_LIMIT = 50


def _service() -> StateManager:
    if not _ACTIVE:
        raise AssociationError("InternalServerError", "State Manager is not emulated outside state_manager_in_moto()")
    return _ACTIVE[-1]


def _body(response: Any) -> dict[str, Any]:
    body = json.loads(response.body or "{}")
    return body if isinstance(body, dict) else {}


def _page(items: Sequence[Any], request: Mapping[str, Any]) -> tuple[list[Any], str | None]:
    size = request.get("MaxResults", PAGE_LIMIT)
    if not isinstance(size, int) or not 1 <= size <= PAGE_LIMIT:
        raise AssociationError("ValidationException", f"MaxResults {size!r}: 1 to {PAGE_LIMIT}")
    token = request.get("NextToken")
    start = 0
    if token is not None:
        if not isinstance(token, str) or not token.isdigit() or int(token) > len(items):
            raise AssociationError("InvalidNextToken", "NextToken is not one this call returned")
        start = int(token)
    end = start + size
    return list(items[start:end]), (str(end) if end < len(items) else None)


def _filters(entries: Any, allowed: Sequence[str], key: str, value: str) -> list[tuple[str, str]]:
    if entries is None:
        return []
    if not isinstance(entries, list) or not entries:
        raise AssociationError("ValidationException", "the filter list holds at least one filter")
    parsed = []
    for entry in entries:
        name, wanted = entry.get(key), entry.get(value)
        if name not in allowed:
            raise AssociationError(
                "ValidationException", f"filter {key} {name!r}: the emulation filters on {', '.join(allowed)}"
            )
        if not isinstance(wanted, str) or not wanted:
            raise AssociationError("ValidationException", f"filter {name}: a non-empty {value} is required")
        parsed.append((str(name), wanted))
    return parsed


def _json(result: Mapping[str, Any]) -> str:
    return json.dumps(result)


def _create(self: Any) -> str:
    return _json(
        {"AssociationDescription": _service().create_association(self.current_account, self.region, _body(self))}
    )


def _update(self: Any) -> str:
    return _json(
        {"AssociationDescription": _service().update_association(self.current_account, self.region, _body(self))}
    )


def _describe(self: Any) -> str:
    return _json(
        {"AssociationDescription": _service().describe_association(self.current_account, self.region, _body(self))}
    )


def _list(self: Any) -> str:
    request = _body(self)
    service = _service()
    filters = _filters(request.get("AssociationFilterList"), _LIST_FILTERS, "key", "value")
    listed = []
    for association in sorted(service.associations(self.current_account, self.region), key=lambda a: a.created):
        described = service.description(association.association_id)
        values = {
            "AssociationName": described.get("AssociationName", ""),
            "Name": described["Name"],
            "AssociationId": described["AssociationId"],
            "AssociationStatusName": described["Overview"]["Status"],
        }
        if all(
            values[name].startswith(wanted) if name == "AssociationName" else values[name] == wanted
            for name, wanted in filters
        ):
            keep = ("Name", "AssociationId", "AssociationVersion", "DocumentVersion", "Targets", "LastExecutionDate")
            summary = {k: described[k] for k in keep if k in described}
            for optional in ("ScheduleExpression", "AssociationName"):
                if optional in described:
                    summary[optional] = described[optional]
            listed.append(summary | {"Overview": described["Overview"]})
    page, token = _page(listed, request)
    return _json({"Associations": page} | ({"NextToken": token} if token else {}))


def _delete(self: Any) -> str:
    _service().delete_association(self.current_account, self.region, _body(self))
    return _json({})


def _start_once(self: Any) -> str:
    ids = _body(self).get("AssociationIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 10:
        raise AssociationError("ValidationException", f"AssociationIds {ids!r}: 1 to 10 association ids")
    _service().start_associations_once(self.current_account, self.region, [str(i) for i in ids])
    return _json({})


def _execution(execution: Execution) -> dict[str, Any]:
    return {
        "AssociationId": execution.association_id,
        "AssociationVersion": execution.association_version,
        "ExecutionId": execution.execution_id,
        "Status": execution.status,
        "DetailedStatus": execution.status,
        "CreatedTime": execution.created,
        "LastExecutionDate": max((t.finished for t in execution.targets), default=execution.created),
        "ResourceCountByStatus": execution.resource_count_by_status(),
    }


def _executions(self: Any) -> str:
    request = _body(self)
    filters = _filters(request.get("Filters"), _EXECUTION_FILTERS, "Key", "Value")
    if any(entry.get("Type") != "EQUAL" for entry in request.get("Filters") or []):
        raise AssociationError("ValidationException", "filter Status: only Type EQUAL is emulated")
    executions = [
        e
        for e in _service().executions(self.current_account, self.region, request.get("AssociationId"))
        if all(e.status == wanted for _, wanted in filters)
    ]
    page, token = _page([_execution(e) for e in executions], request)
    return _json({"AssociationExecutions": page} | ({"NextToken": token} if token else {}))


def _target(execution: Execution, target: TargetRun) -> dict[str, Any]:
    return {
        "AssociationId": execution.association_id,
        "AssociationVersion": execution.association_version,
        "ExecutionId": execution.execution_id,
        "ResourceId": target.instance_id,
        "ResourceType": "ManagedInstance",
        "Status": target.status.value,
        "DetailedStatus": target.detailed_status,
        "LastExecutionDate": target.finished,
    }


def _execution_targets(self: Any) -> str:
    request = _body(self)
    filters = _filters(request.get("Filters"), _TARGET_FILTERS, "Key", "Value")
    executions = _service().executions(self.current_account, self.region, request.get("AssociationId"))
    execution = next((e for e in executions if e.execution_id == request.get("ExecutionId")), None)
    if execution is None:
        raise AssociationError(
            "AssociationExecutionDoesNotExist", f"ExecutionId {request.get('ExecutionId')!r} does not exist"
        )
    targets = [_target(execution, t) for t in execution.targets]
    targets = [t for t in targets if all(t[name] == wanted for name, wanted in filters)]
    page, token = _page(targets, request)
    return _json({"AssociationExecutionTargets": page} | ({"NextToken": token} if token else {}))


_OPERATIONS: dict[str, Callable[[Any], str | ActionResult]] = {
    "create_association": _create,
    "update_association": _update,
    "describe_association": _describe,
    "list_associations": _list,
    "delete_association": _delete,
    "start_associations_once": _start_once,
    "describe_association_executions": _executions,
    "describe_association_execution_targets": _execution_targets,
}


@contextlib.contextmanager
def state_manager_in_moto(
    hosts: ManagedHosts | None = None, clock: Callable[[], float] = time.time
) -> Iterator[StateManager]:
    """Give moto's SSM the association operations for the duration; yields the service, whose
    ``hosts`` are the managed nodes and whose ``run_due_associations`` performs the runs."""
    from moto.ssm.responses import SimpleSystemManagerResponse

    missing = [name for name in _OPERATIONS if not hasattr(SimpleSystemManagerResponse, name)]
    for name in missing:
        setattr(SimpleSystemManagerResponse, name, _OPERATIONS[name])
    service = StateManager(hosts, clock)
    _ACTIVE.append(service)
    try:
        yield service
    finally:
        _ACTIVE.remove(service)
        if not _ACTIVE:
            for name in missing:
                delattr(SimpleSystemManagerResponse, name)
