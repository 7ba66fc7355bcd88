"""The CRLs a host installed for its server, recorded as SSM custom inventory (its own type) after every CRL run.

Next to the trust bundles' type (``trust_record``) and for the same reason (PutInventory replaces a
custom type whole): ``Custom:CertrotateCrl``, one entry per CA whose CRL the server's CRL file holds.
A failed run keeps what was installed and says its failure on every entry (one entry with no CA when
nothing was ever installed).
"""

import time
from typing import Any, Dict, List, Sequence, Tuple

from .crl import CrlFacts
from .fleet_record import MESSAGE_LIMIT, bounded, iso_time, put_inventory
from .host import Host
from .output import classify, say, warn
from .parameters import MAX_PATH_LENGTH

CRL_INVENTORY_TYPE = "Custom:CertrotateCrl"
CRL_SCHEMA_VERSION = "1.0"
CRL_STATE = "crl-inventory.json"
# CaName: the CN of the CA that signed the CRL; CrlNumber: its cRLNumber (decimal); ThisUpdate and
# NextUpdate: ISO 8601 UTC; Status: installed, unchanged or failed (the latest run).
CRL_KEYS = (
    "CaName",
    "CrlNumber",
    "ThisUpdate",
    "NextUpdate",
    "Revoked",
    "Source",
    "File",
    "Status",
    "ExitCode",
    "Message",
    "RecordedAt",
)
Result = Tuple[str, int, str]


def next_crl_records(
    records: Any, installed: Sequence[Dict[str, str]], result: Result, now: float
) -> List[Dict[str, str]]:
    """Pure: the records after this run: the CRLs it installed (or found installed), else the kept
    ones (malformed dropped) with the failure of this run."""
    status, code, message = result
    stamp = {"Status": status, "ExitCode": str(code), "Message": bounded(message, MESSAGE_LIMIT)}
    if installed:
        return [{**entry, **stamp, "RecordedAt": iso_time(now)} for entry in installed]
    kept = [
        {key: record[key] for key in CRL_KEYS}
        for record in (records if isinstance(records, list) else [])
        if isinstance(record, dict) and all(isinstance(record.get(key), str) for key in CRL_KEYS)
    ]
    if not kept:
        kept = [{key: "" for key in CRL_KEYS}]
    return [{**entry, **stamp, "RecordedAt": iso_time(now)} for entry in kept]


def entries(crls: Sequence[CrlFacts], signers: Sequence[str], path: str) -> List[Dict[str, str]]:
    """Pure: one record per installed CRL (Status, ExitCode, Message and RecordedAt still to come)."""
    return [
        {
            "CaName": bounded(signer, 256),
            "CrlNumber": "" if crl.number is None else str(crl.number),
            "ThisUpdate": iso_time(crl.this_update),
            "NextUpdate": "" if crl.next_update is None else iso_time(crl.next_update),
            "Revoked": str(crl.revoked),
            "Source": bounded(crl.source, MAX_PATH_LENGTH),
            "File": bounded(path, MAX_PATH_LENGTH),
        }
        for crl, signer in zip(crls, signers)
    ]


def record_crls(host: Host, crls: Sequence[CrlFacts], signers: Sequence[str], path: str, result: Result) -> None:
    """Fold this run into the host's CRL records and send them; never fails the run."""
    now = time.time()
    try:
        records = next_crl_records(host.read_state(CRL_STATE), entries(crls, signers, path), result, now)
        host.write_state(CRL_STATE, records)
        items = [
            {
                "TypeName": CRL_INVENTORY_TYPE,
                "SchemaVersion": CRL_SCHEMA_VERSION,
                "CaptureTime": iso_time(now),
                "Content": records,
            }
        ]
        where = put_inventory(host, items, host.server.env)
        say(f"fleet view: CRL run {result[0]} recorded ({where})")
    except Exception as exc:
        warn("warning: fleet view not recorded: " + classify(exc)[1])
