"""The fleet view: what this host serves, recorded as SSM custom inventory after every run.

The record's schema is defined here (type, keys, bounds; ``served_check`` the ServedCheck form):
the installer ships alone, so the Lambda's reader (``rotation/fleet/view.py``) keeps its own names, and
``tests/installer/test_fleet_schema.py`` pins them to these.
"""

import contextlib
import enum
import json
import os
import re
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .aws_cli import run_aws
from .certificate import CertificateFacts, live_facts
from .host import Host, Outcome
from .output import Exit, InstallError, classify, printable, say, warn
from .parameters import MAX_PATH_LENGTH, Action, Request
from .path_policy import Target, target_files
from .served_check import SUMMARY_LIMIT

INVENTORY_TYPE = "Custom:CertrotateCertificate"
INVENTORY_SCHEMA_VERSION = "1.0"
INVENTORY_STATE = "inventory.json"
INVENTORY_ITEMS = "inventory-items.json"  # what put-inventory sends (--items file://...)
INSTANCE_ID_VARIABLE = "AWS_SSM_INSTANCE_ID"  # the SSM agent sets both for every command it runs
REGION_VARIABLE = "AWS_SSM_REGION_NAME"
INSTANCE_ID_PATTERN = r"i-(\w{8}|\w{17})|mi-\w{17}"  # PutInventory's InstanceId pattern
REGION_PATTERN = r"[a-z]{2}(-[a-z]{1,10}){1,3}-[0-9]{1,2}"
MAX_UNSERVED_RECORDS = 8  # records of files certrotate never installed (failed runs only); oldest dropped
MAX_INVENTORY_BYTES = 60000  # the records' JSON: far below SSM's item size limit (ItemSizeLimitExceeded)
MESSAGE_LIMIT = 512
SUBJECT_LIMIT = 256
# What the file serves: set by a successful install or rollback only (InstalledAt: when; empty
# when certrotate never installed the file and the facts are read off the live file).
SERVED_KEYS = ("SecretArn", "VersionStage", "Serial", "FingerprintSha256", "NotAfter", "Subject", "InstalledAt")
# Server: the server the file is for (apache, nginx, haproxy; empty in an older installer's records).
FILE_KEYS = ("CertificateFile", "KeyFile", "ChainFile", "HttpsPort", "Server")
# The latest run, whatever it did (a failed run shows as failed in the fleet view).
# ServedCheck: the run's served-truth check (``16/16``, ``stale: 3/16 serial ..., new: 13/16``;
# empty when the run did not get as far as a check, and in an older installer's records).
RUN_KEYS = ("Status", "ExitCode", "Message", "RecordedAt", "ServedCheck")
# The latest run when it failed: what it tried to install (empty after a successful run).
FAILURE_KEYS = (
    "LastFailureSecretArn",
    "LastFailureVersionStage",
    "LastFailureExitCode",
    "LastFailureMessage",
    "LastFailureAt",
)
INVENTORY_KEYS = SERVED_KEYS + FILE_KEYS + RUN_KEYS + FAILURE_KEYS


class Served(enum.Enum):
    INSTALLED = "installed"
    UNCHANGED = "unchanged"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"


def iso_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def bounded(text: str, limit: int) -> str:
    """Pure: printable ASCII, at most ``limit`` characters."""
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def facts_fields(facts: Optional[CertificateFacts]) -> Dict[str, str]:
    if facts is None:
        return {"Serial": "", "FingerprintSha256": "", "NotAfter": "", "Subject": ""}
    return {
        "Serial": facts.serial_hex,
        "FingerprintSha256": facts.fingerprint,
        "NotAfter": iso_time(facts.not_after),
        "Subject": bounded(facts.common_name, SUBJECT_LIMIT),
    }


class RunReport(NamedTuple):
    """One run's contribution to the fleet record of its certificate file."""

    status: Served
    request: Request
    files: Tuple[str, str, str]
    facts: Optional[CertificateFacts]  # success: what is served now; failure: the live file's certificate
    replaced: Optional[CertificateFacts]  # success: what the file served before (now the previous file)
    previous_kept: bool
    code: int
    message: str
    now: float
    served_check: str = ""  # the served-truth check's summary (empty: no check ran)


class FleetState(NamedTuple):
    """The state directory's ``inventory.json``: the records sent, and what each file's
    ``*.certrotate-previous`` serves (for the record after a rollback onto it)."""

    records: List[Dict[str, str]]
    previous: Dict[str, Dict[str, str]]


def load_fleet_state(recorded: Any) -> FleetState:
    """Pure: the kept state (a list: the records of an older installer). Malformed records are dropped."""
    records = recorded.get("records") if isinstance(recorded, dict) else recorded
    previous = recorded.get("previous") if isinstance(recorded, dict) else None
    kept: List[Dict[str, str]] = []
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
            continue
        if not all(isinstance(record.get(key), str) for key in ("CertificateFile", "RecordedAt")):
            continue
        entry = dict.fromkeys(INVENTORY_KEYS, "")
        entry.update((key, bounded(record[key], MAX_PATH_LENGTH)) for key in INVENTORY_KEYS if key in record)
        if "InstalledAt" not in record and record.get("Status") != Served.FAILED.value:
            entry["InstalledAt"] = entry["RecordedAt"]  # an older installer's record of a successful run
        kept.append(entry)
    saved: Dict[str, Dict[str, str]] = {}
    for path, fields in previous.items() if isinstance(previous, dict) else []:
        if isinstance(fields, dict) and all(isinstance(fields.get(key), str) for key in SERVED_KEYS):
            saved[str(path)] = {key: fields[key] for key in SERVED_KEYS}
    return FleetState(kept, saved)


def served_of(record: Optional[Dict[str, str]], facts: Optional[CertificateFacts]) -> Dict[str, str]:
    """Pure: the served fields for a file that serves ``facts``: ``record``'s when it describes that
    certificate (same fingerprint), else the certificate's own facts with no known secret."""
    if record is not None and facts is not None and record.get("FingerprintSha256") == facts.fingerprint:
        return {key: record.get(key, "") for key in SERVED_KEYS}
    return dict(facts_fields(facts), SecretArn="", VersionStage="", InstalledAt="")


def next_fleet_state(state: FleetState, report: RunReport, exists: Callable[[str], bool]) -> FleetState:
    """Pure: the records after one run.

    A record says what its certificate file serves: the served fields change only with a successful
    install (this run's secret and certificate) or rollback (the secret recorded for the previous
    file when it was kept, if it is that certificate). A failed run changes the run fields and adds
    LastFailure* only. Records of files certrotate installed are never dropped for count; records
    of files it never installed are kept up to MAX_UNSERVED_RECORDS, newest first; over
    MAX_INVENTORY_BYTES those go first, then failure messages, then records of files that no
    longer exist.
    """
    records = {record["CertificateFile"]: record for record in state.records}
    previous = dict(state.previous)
    certificate_file = report.files[0]
    old = records.get(certificate_file)
    entry = dict.fromkeys(INVENTORY_KEYS, "")
    request = report.request
    run = {
        "Status": report.status.value,
        "ExitCode": str(int(report.code)),
        "Message": bounded(report.message, MESSAGE_LIMIT),
        "RecordedAt": iso_time(report.now),
        "ServedCheck": bounded(report.served_check, SUMMARY_LIMIT),
    }
    if report.status is Served.FAILED:
        if old is not None:
            entry.update((key, old[key]) for key in SERVED_KEYS + FILE_KEYS)
        else:
            entry.update(served_of(None, report.facts))
            entry.update(zip(FILE_KEYS[:3], report.files), HttpsPort=str(request.port), Server=request.server)
        entry.update(
            LastFailureSecretArn=request.secret_arn,
            LastFailureVersionStage=request.version_stage if request.secret_arn else "",
            LastFailureExitCode=run["ExitCode"],
            LastFailureMessage=run["Message"],
            LastFailureAt=run["RecordedAt"],
        )
    else:
        if report.status is Served.ROLLED_BACK:
            served = dict(served_of(previous.get(certificate_file), report.facts), InstalledAt=run["RecordedAt"])
        else:
            served = dict(facts_fields(report.facts), SecretArn=request.secret_arn, VersionStage=request.version_stage)
            same = old is not None and report.facts is not None and old["FingerprintSha256"] == report.facts.fingerprint
            kept = old["InstalledAt"] if old is not None and same and report.status is Served.UNCHANGED else ""
            served["InstalledAt"] = kept or run["RecordedAt"]
        if report.previous_kept and report.replaced is not None:
            previous[certificate_file] = served_of(old, report.replaced)
        entry.update(served)
        entry.update(zip(FILE_KEYS[:3], report.files), HttpsPort=str(request.port), Server=request.server)
    entry.update(run)
    records[certificate_file] = entry
    return bound_fleet_state(FleetState(list(records.values()), previous), exists)


def _size(records: List[Dict[str, str]]) -> int:
    return len(json.dumps(records, sort_keys=True))


def bound_fleet_state(state: FleetState, exists: Callable[[str], bool]) -> FleetState:
    """Pure (``exists`` aside): the caps of ``next_fleet_state``."""
    served = [r for r in state.records if r["InstalledAt"]]
    unserved = sorted((r for r in state.records if not r["InstalledAt"]), key=lambda r: r["RecordedAt"], reverse=True)
    unserved = unserved[:MAX_UNSERVED_RECORDS]
    while unserved and _size(served + unserved) > MAX_INVENTORY_BYTES:
        unserved.pop()
    if _size(served + unserved) > MAX_INVENTORY_BYTES:
        served = [dict(r, Message=r["Message"][:64], LastFailureMessage=r["LastFailureMessage"][:64]) for r in served]
    if _size(served + unserved) > MAX_INVENTORY_BYTES:
        served = [r for r in served if exists(r["CertificateFile"])]
    records = sorted(served + unserved, key=lambda record: record["CertificateFile"])
    files = {record["CertificateFile"] for record in records}
    return FleetState(records, {path: fields for path, fields in state.previous.items() if path in files})


def inventory_items(entries: List[Dict[str, str]], now: float) -> List[Dict[str, Any]]:
    """Pure: PutInventory's Items. No ContentHash: every run's RecordedAt changes the content anyway,
    and MD5 is unavailable on FIPS-mode hosts."""
    return [
        {
            "TypeName": INVENTORY_TYPE,
            "SchemaVersion": INVENTORY_SCHEMA_VERSION,
            "CaptureTime": iso_time(now),
            "Content": entries,
        }
    ]


def put_inventory(host: Host, items: List[Dict[str, Any]], env: Dict[str, str]) -> str:
    """PutInventory with the aws CLI for the instance the SSM agent runs us on; returns what it did.

    The items travel in a file (``--items file://``) of the root-only state directory, never in
    argv: one argv string is limited to 128 KiB (MAX_ARG_STRLEN), and a record over it made every
    later put-inventory fail with E2BIG.

    Raises:
        InstallError: the record could not be sent (the caller reports it and carries on).
    """
    instance = env.get(INSTANCE_ID_VARIABLE, "")
    region = env.get(REGION_VARIABLE, "")
    if not instance:
        return f"{INSTANCE_ID_VARIABLE} is not set (not run by the SSM agent): kept on this host only"
    if re.fullmatch(INSTANCE_ID_PATTERN, instance) is None:
        raise InstallError(Exit.INTERNAL, f"{INSTANCE_ID_VARIABLE} {instance[:64]!r} is not an instance id")
    if re.fullmatch(REGION_PATTERN, region) is None:
        raise InstallError(Exit.INTERNAL, f"{REGION_VARIABLE} {region[:64]!r} is not a region")
    size = _size(items[0]["Content"])
    if size > MAX_INVENTORY_BYTES:
        raise InstallError(
            Exit.INTERNAL,
            f"the records of this host's certificate files are {size} bytes (at most {MAX_INVENTORY_BYTES}); "
            "remove certificate files certrotate no longer manages from "
            + os.path.join(host.config.journal_dir, INVENTORY_STATE),
        )
    host.write_state(INVENTORY_ITEMS, items)
    items_path = os.path.join(host.config.journal_dir, INVENTORY_ITEMS)
    arguments = ["ssm", "put-inventory", "--instance-id", instance, "--region", region]
    arguments += ["--items", "file://" + items_path, "--output", "json"]
    run_aws(arguments, env, Exit.INTERNAL, "PutInventory")
    return f"{items[0]['TypeName']} of {instance} in {region}"


def record_fleet_view(host: Host, report: RunReport) -> None:
    """Fold this run into this host's records and send them all; never fails the run.

    PutInventory replaces a custom type whole, so every run sends the records of all the
    certificate files this host serves, kept in its state directory. A record that cannot be kept
    or sent is reported on stderr ("fleet view not recorded") and the run keeps its own exit code:
    the install itself is what the exit code describes, and a host that stops reporting shows as
    stale in ``certrotate hosts``.
    """
    try:
        state = load_fleet_state(host.read_state(INVENTORY_STATE))
        state = next_fleet_state(state, report, os.path.exists)
        host.write_state(INVENTORY_STATE, {"version": 2, "records": state.records, "previous": state.previous})
        where = put_inventory(host, inventory_items(state.records, report.now), host.server.env)
        entry = next(r for r in state.records if r["CertificateFile"] == report.files[0])
        check = f", served check {entry['ServedCheck']}" if entry["ServedCheck"] else ""
        say(f"fleet view: {report.status.value}; serves serial {entry['Serial'] or '-'}{check} recorded ({where})")
    except Exception as exc:
        warn("warning: fleet view not recorded: " + classify(exc)[1])


def record_outcome(host: Host, outcome: Outcome) -> None:
    if outcome.action is Action.ROLLBACK:
        status = Served.ROLLED_BACK
    else:
        status = Served.INSTALLED if outcome.changed else Served.UNCHANGED
    report = RunReport(
        status,
        host.request,
        outcome.targets,
        outcome.facts,
        outcome.replaced,
        outcome.previous_kept,
        Exit.OK,
        "",
        time.time(),
        outcome.served_check,
    )
    record_fleet_view(host, report)


def record_failure(host: Host, targets: Sequence[Target], code: int, message: str, served_check: str = "") -> None:
    """A failed run is recorded too: its failure, what the certificate file still serves, and the
    served-truth check the run made before it failed (``InstallError.served_check``)."""
    facts: Optional[CertificateFacts] = None
    with contextlib.suppress(Exception):
        facts = live_facts(targets[0].read())
    files = target_files(targets)
    report = RunReport(Served.FAILED, host.request, files, facts, None, False, code, message, time.time(), served_check)
    record_fleet_view(host, report)
