"""SSM State Manager for moto: associations, their schedules and their runs on the emulated hosts.

moto 5.2 has no association operation at all (``moto/ssm/responses.py`` has none of
CreateAssociation, UpdateAssociation, DescribeAssociation, ListAssociations, DeleteAssociation,
StartAssociationsOnce, DescribeAssociationExecutions, DescribeAssociationExecutionTargets; its
``associations`` attribute is patch-group bookkeeping). :class:`StateManager` keeps them as the
service does, and ``association_api`` answers the eight operations from it in moto (in process and
in a ``ThreadedMotoServer`` alike). Requests are checked as ``association_rules`` says; the
document must exist in moto's SSM and the parameters must pass it (``ssm_runner``'s checks:
names, types, allowedValues, allowedPattern with SSM Agent's Go semantics).

When an association runs (API reference, ``ApplyOnlyAtCronInterval`` of CreateAssociation and
UpdateAssociation: by default the system runs an association immediately after it is created or
updated, then on its schedule "and when target changes are detected"; UpdateAssociation: "When
you update an association, the association immediately runs against the specified targets";
StartAssociationsOnce runs it once, now; all as the AWS SDK references of the SSM model repeat
them, e.g. docs.aws.amazon.com/sdk-for-kotlin/api/latest/ssm/...-update-association-request/):
the service works asynchronously, so a request only marks a run as due, and
:meth:`StateManager.run_due_associations` (driven by the caller's emulated clock) performs what is
due: requested runs, rate schedules whose time has come, and the catch-up of a node that missed a
run or matched the targets only since (a target change, above; the User Guide's "About targets
and rate controls in State Manager associations": a new node given the targeted tag has the
association applied and run at once; that an agent back online applies what it missed is the
emulation's model of the agent, which the references do not spell out).
Several requests before a run coalesce into one run. A cron schedule is accepted and stored but
runs only when started: the emulation does not evaluate cron fields.

UpdateAssociation replaces the association: every optional field the request omits becomes empty
(API reference, UpdateAssociation: the system overwrites the association with null values for
the optional parameters a call leaves out); ``Name`` and ``Targets`` are kept when omitted.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from rotation.emulation import association_rules as rules
from rotation.emulation.association_rules import AssociationError, Target
from rotation.emulation.association_runs import Execution, run_on_targets
from rotation.emulation.managed_hosts import ManagedHosts
from rotation.emulation.ssm_runner import DocumentParameterError, resolve_parameters

_OPTIONAL = (
    "AssociationName",
    "Parameters",
    "ScheduleExpression",
    "ApplyOnlyAtCronInterval",
    "MaxConcurrency",
    "MaxErrors",
    "ComplianceSeverity",
    "SyncCompliance",
    "DocumentVersion",
)
#: Request fields the emulation does not model; a request naming one is refused, never ignored.
_NOT_EMULATED = (
    "OutputLocation",
    "AutomationTargetParameterName",
    "CalendarNames",
    "TargetLocations",
    "ScheduleOffset",
    "Duration",
    "TargetMaps",
    "AlarmConfiguration",
    "AssociationDispatchAssumeRole",
)
_DOCUMENT_VERSION = re.compile(r"^([$]LATEST|[$]DEFAULT|[1-9][0-9]*)$")


@dataclass(frozen=True)
class Association:
    """One association version as the service stores it."""

    association_id: str
    account: str
    region: str
    document: str
    document_version: str
    version: int
    targets: tuple[Target, ...]
    parameters: Mapping[str, list[str]]
    created: float
    updated: float
    association_name: str | None = None
    schedule: str | None = None
    apply_only_at_cron_interval: bool = False
    max_concurrency: str | None = None
    max_errors: str | None = None
    compliance_severity: str | None = None
    sync_compliance: str | None = None

    def fields(self) -> dict[str, Any]:
        """The request-shaped fields DescribeAssociation and ListAssociations return (absent when empty)."""
        shown: dict[str, Any] = {
            "Name": self.document,
            "AssociationId": self.association_id,
            "AssociationVersion": str(self.version),
            "DocumentVersion": self.document_version,
            "Targets": [t.as_dict() for t in self.targets],
            "AssociationName": self.association_name,
            "ScheduleExpression": self.schedule,
            "Parameters": {k: list(v) for k, v in self.parameters.items()} if self.parameters else None,
            "MaxConcurrency": self.max_concurrency,
            "MaxErrors": self.max_errors,
            "ComplianceSeverity": self.compliance_severity,
            "SyncCompliance": self.sync_compliance,
            "ApplyOnlyAtCronInterval": self.apply_only_at_cron_interval,
        }
        return {k: v for k, v in shown.items() if v is not None}


def load_command_document(account: str, region: str, name: object, version: str) -> dict[str, Any]:
    """The Command document ``name`` from moto's SSM, parsed.

    Raises:
        AssociationError: InvalidDocument (missing, not a Command document), InvalidDocumentVersion.
    """
    from moto.ssm.models import ssm_backends

    documents = ssm_backends[account][region]._documents.get(str(name))
    if not isinstance(name, str) or documents is None:
        raise AssociationError("InvalidDocument", f"Name {name!r}: the specified document does not exist")
    if version == "$LATEST":
        stored = documents.get_latest_version()
    elif version == "$DEFAULT":
        stored = documents.get_default_version()
    else:
        found = documents.find_by_version(version)
        if found is None:
            raise AssociationError("InvalidDocumentVersion", f"DocumentVersion {version!r} of {name} does not exist")
        stored = found
    if stored.document_type != "Command":
        raise AssociationError(
            "InvalidDocument", f"Name {name}: a {stored.document_type} document; the emulation runs Command documents"
        )
    parsed = yaml.safe_load(stored.content)
    if not isinstance(parsed, dict):
        raise AssociationError("InvalidDocument", f"Name {name}: the document content is not an object")
    return parsed


class StateManager:
    """The associations of every emulated account and region, their executions and what is due."""

    def __init__(self, hosts: ManagedHosts | None = None, clock: Callable[[], float] = time.time) -> None:
        self.hosts = hosts if hosts is not None else ManagedHosts()
        self.clock = clock
        self._associations: dict[str, Association] = {}
        self._executions: dict[str, list[Execution]] = {}
        self._requested: set[str] = set()  # runs requested (create, update, StartAssociationsOnce), not yet run
        self._issued: dict[str, float] = {}  # when each association last ran for all its targets
        self._next_scheduled: dict[str, float] = {}
        self._applied: dict[tuple[str, str], float] = {}  # (association, instance) -> its last run there
        self._lock = threading.RLock()

    # --- the API ---------------------------------------------------------------------------

    def _checked(self, account: str, region: str, request: Mapping[str, Any], base: Association | None) -> Association:
        named = [k for k in _NOT_EMULATED if request.get(k) is not None]
        if named:
            raise AssociationError("ValidationException", f"{', '.join(named)}: not emulated (refused, not ignored)")
        document_name = request.get("Name") if request.get("Name") is not None else base and base.document
        version = request.get("DocumentVersion") or "$DEFAULT"
        if not _DOCUMENT_VERSION.match(str(version)):
            raise AssociationError(
                "InvalidDocumentVersion", f"DocumentVersion {version!r}: $LATEST, $DEFAULT or a number"
            )
        document = load_command_document(account, region, document_name, str(version))
        name = request.get("AssociationName")
        if name is not None:
            rules.check_association_name(name)
        given_targets = (
            request.get("Targets")
            if request.get("Targets") is not None
            else base and [t.as_dict() for t in base.targets]
        )
        targets = rules.check_targets(given_targets, request.get("InstanceId"))
        self.hosts.check_known(targets)
        apply_only = bool(request.get("ApplyOnlyAtCronInterval") or False)
        schedule = rules.check_schedule(request.get("ScheduleExpression"), apply_only_at_cron_interval=apply_only)
        concurrency = request.get("MaxConcurrency")
        errors = request.get("MaxErrors")
        if concurrency is not None:
            rules.check_rate_control("maxConcurrency", concurrency, rules.MAX_CONCURRENCY)
        if errors is not None:
            rules.check_rate_control("maxErrors", errors, rules.MAX_ERRORS)
        severity = rules.check_choice(
            "complianceSeverity", request.get("ComplianceSeverity"), rules.COMPLIANCE_SEVERITIES
        )
        sync = rules.check_choice("syncCompliance", request.get("SyncCompliance"), rules.SYNC_COMPLIANCE)
        parameters = request.get("Parameters")
        try:
            resolve_parameters(document, rules.association_parameters(document, parameters))
        except DocumentParameterError as exc:
            raise AssociationError("InvalidParameters", f"Parameters for {document_name}: {exc}") from None
        now = self.clock()
        return Association(
            association_id=base.association_id if base else str(uuid.uuid4()),
            account=account,
            region=region,
            document=str(document_name),
            document_version=str(version),
            version=base.version + 1 if base else 1,
            targets=targets,
            parameters={k: list(v) for k, v in (parameters or {}).items()},
            created=base.created if base else now,
            updated=now,
            association_name=name,
            schedule=schedule,
            apply_only_at_cron_interval=apply_only,
            max_concurrency=concurrency,
            max_errors=errors,
            compliance_severity=severity,
            sync_compliance=sync,
        )

    def _store(self, association: Association) -> dict[str, Any]:
        with self._lock:
            self._associations[association.association_id] = association
            minutes = rules.schedule_minutes(association.schedule)
            if minutes is not None:
                self._next_scheduled[association.association_id] = association.updated + minutes * 60
            else:
                self._next_scheduled.pop(association.association_id, None)
            if not association.apply_only_at_cron_interval:
                self._requested.add(association.association_id)
        return self.description(association.association_id)

    def create_association(self, account: str, region: str, request: Mapping[str, Any]) -> dict[str, Any]:
        return self._store(self._checked(account, region, request, None))

    def update_association(self, account: str, region: str, request: Mapping[str, Any]) -> dict[str, Any]:
        current = self._get(account, region, request.get("AssociationId"))
        asked = request.get("AssociationVersion")
        if asked is not None and asked not in ("$LATEST", str(current.version)):
            raise AssociationError(
                "InvalidAssociationVersion",
                f"AssociationVersion {asked!r}: the association's latest version is {current.version}",
            )
        return self._store(self._checked(account, region, request, current))

    def _get(self, account: str, region: str, association_id: object) -> Association:
        with self._lock:
            found = self._associations.get(str(association_id))
        if found is None or (found.account, found.region) != (account, region):
            raise AssociationError("AssociationDoesNotExist", f"AssociationId {association_id!r} does not exist")
        return found

    def description(self, association_id: str) -> dict[str, Any]:
        with self._lock:
            association = self._associations[association_id]
            executions = self._executions.get(association_id, [])
        last = executions[-1] if executions else None
        overview: dict[str, Any] = {"Status": "Pending", "DetailedStatus": "Creating"}
        described = association.fields() | {
            "Date": association.created,
            "LastUpdateAssociationDate": association.updated,
        }
        if last is not None:
            overview = {
                "Status": last.status,
                "DetailedStatus": last.status,
                "AssociationStatusAggregatedCount": last.count_by_status(),
            }
            described["LastExecutionDate"] = last.created
            successes = [e for e in executions if e.status == "Success"]
            if successes:
                described["LastSuccessfulExecutionDate"] = successes[-1].created
        return described | {"Overview": overview}

    def describe_association(self, account: str, region: str, request: Mapping[str, Any]) -> dict[str, Any]:
        if request.get("AssociationId") is None:
            raise AssociationError(
                "ValidationException", "AssociationId is required (Name + InstanceId is not emulated)"
            )
        association = self._get(account, region, request["AssociationId"])
        asked = request.get("AssociationVersion")
        if asked is not None and asked not in ("$LATEST", str(association.version)):
            raise AssociationError(
                "InvalidAssociationVersion", f"AssociationVersion {asked!r}: only the latest is kept by the emulation"
            )
        return self.description(association.association_id)

    def associations(self, account: str, region: str) -> list[Association]:
        with self._lock:
            return [a for a in self._associations.values() if (a.account, a.region) == (account, region)]

    def delete_association(self, account: str, region: str, request: Mapping[str, Any]) -> None:
        association = self._get(account, region, request.get("AssociationId"))
        with self._lock:
            self._associations.pop(association.association_id, None)
            self._requested.discard(association.association_id)
            self._next_scheduled.pop(association.association_id, None)

    def start_associations_once(self, account: str, region: str, ids: Iterable[str]) -> None:
        found = [self._get(account, region, i) for i in ids]  # all exist, or nothing starts
        with self._lock:
            self._requested.update(a.association_id for a in found)

    def executions(self, account: str, region: str, association_id: object) -> list[Execution]:
        association = self._get(account, region, association_id)
        with self._lock:
            return list(reversed(self._executions.get(association.association_id, [])))

    # --- what the service does in the background -------------------------------------------

    def run_due_associations(self, now: float | None = None) -> list[Execution]:
        """Perform every run that is due at ``now`` (default: the clock); returns the executions made.

        Due: a requested run, a rate schedule whose time has come (all online targets), and the
        online targets that have not run the association since its last full run (new nodes,
        nodes back from offline). Offline targets are not run and not recorded.
        """
        now = self.clock() if now is None else now
        made: list[Execution] = []
        with self._lock:
            associations = list(self._associations.values())
        for association in associations:
            execution = self._run_if_due(association, now)
            if execution is not None:
                made.append(execution)
        return made

    def _run_if_due(self, association: Association, now: float) -> Execution | None:
        key = association.association_id
        with self._lock:
            full = key in self._requested
            self._requested.discard(key)
            scheduled = self._next_scheduled.get(key)
            minutes = rules.schedule_minutes(association.schedule)
            if scheduled is not None and minutes is not None and now >= scheduled:
                full = True
                while scheduled <= now:
                    scheduled += minutes * 60
                self._next_scheduled[key] = scheduled
            if full:
                self._issued[key] = now
            issued = self._issued.get(key)
        if issued is None:
            return None
        online = [h for h in self.hosts.resolve(association.targets) if self.hosts.online(h.instance_id)]
        if not full:
            online = [h for h in online if self._applied.get((key, h.instance_id), float("-inf")) < issued]
        if not online and not full:
            return None
        document = load_command_document(
            association.account, association.region, association.document, association.document_version
        )
        parameters = rules.association_parameters(document, {k: list(v) for k, v in association.parameters.items()})
        size, allowed, targets = run_on_targets(
            document,
            parameters,
            online,
            max_concurrency=association.max_concurrency,
            max_errors=association.max_errors,
            region=association.region,
            clock=self.clock,
        )
        execution = Execution(str(uuid.uuid4()), key, str(association.version), now, size, allowed, targets)
        with self._lock:
            for host in online:
                self._applied[(key, host.instance_id)] = now
            self._executions.setdefault(key, []).append(execution)
        return execution
