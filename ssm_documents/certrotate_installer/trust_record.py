"""The trust bundles a host installed, recorded as SSM custom inventory (its own type) after every trust run.

PutInventory replaces a custom type whole and leaves the host's other types alone, so the bundles have
their own type (``Custom:CertrotateTrustBundle``) beside the certificate files' and a trust run never
rewrites those. One entry per bundle name; a failed run keeps the fingerprint last installed and adds
its failure. ``rotation/fleet/view.py`` reads these names; ``tests/installer/test_fleet_schema.py``
pins them.
"""

import time
from typing import Any, Dict, List, Sequence, Tuple

from .fleet_record import MESSAGE_LIMIT, bounded, iso_time, put_inventory
from .host import Host
from .output import classify, say, warn
from .parameters import MAX_PATH_LENGTH, Request

TRUST_INVENTORY_TYPE = "Custom:CertrotateTrustBundle"
TRUST_SCHEMA_VERSION = "1.0"
TRUST_STATE = "trust-inventory.json"
# FingerprintSha256: SHA-256 (hex) of the bundle file as installed (``TrustBundle.fingerprint``);
# Files: the destinations, space separated; Status: installed, unchanged or failed (the latest run).
TRUST_KEYS = (
    "BundleName",
    "BundleArn",
    "FingerprintSha256",
    "Files",
    "InstalledAt",
    "Status",
    "ExitCode",
    "Message",
    "RecordedAt",
)
MAX_TRUST_RECORDS = 64
Result = Tuple[str, int, str]


def next_trust_records(records: Any, update: Dict[str, str]) -> List[Dict[str, str]]:
    """Pure: the kept records (malformed ones dropped) with ``update`` folded in by BundleName; a
    failure keeps the fingerprint, files and time of the last install."""
    kept: Dict[str, Dict[str, str]] = {}
    for record in records if isinstance(records, list) else []:
        if isinstance(record, dict) and all(isinstance(record.get(key), str) for key in TRUST_KEYS):
            kept[record["BundleName"]] = {key: record[key] for key in TRUST_KEYS}
    old = kept.get(update["BundleName"])
    entry = dict(update)
    if update["Status"] == "failed" and old is not None:
        entry.update((key, old[key]) for key in ("FingerprintSha256", "Files", "InstalledAt"))
    elif update["Status"] == "unchanged" and old is not None and old["FingerprintSha256"] == entry["FingerprintSha256"]:
        entry["InstalledAt"] = old["InstalledAt"] or update["InstalledAt"]
    kept[update["BundleName"]] = entry
    return sorted(kept.values(), key=lambda r: r["BundleName"])[-MAX_TRUST_RECORDS:]


def record_trust(
    host: Host, request: Request, name: str, fingerprint: str, files: Sequence[str], result: Result
) -> None:
    """Fold this run into the host's bundle records and send them; never fails the run. ``result``:
    (status: installed, unchanged or failed; exit code; message)."""
    status, code, message = result
    now = time.time()
    update = {
        "BundleName": name,
        "BundleArn": request.secret_arn,
        "FingerprintSha256": fingerprint,
        "Files": bounded(" ".join(files), MAX_PATH_LENGTH),
        "InstalledAt": iso_time(now) if status != "failed" else "",
        "Status": status,
        "ExitCode": str(code),
        "Message": bounded(message, MESSAGE_LIMIT),
        "RecordedAt": iso_time(now),
    }
    try:
        records = next_trust_records(host.read_state(TRUST_STATE), update)
        host.write_state(TRUST_STATE, records)
        items = [
            {
                "TypeName": TRUST_INVENTORY_TYPE,
                "SchemaVersion": TRUST_SCHEMA_VERSION,
                "CaptureTime": iso_time(now),
                "Content": records,
            }
        ]
        where = put_inventory(host, items, host.server.env)
        say(f"fleet view: trust bundle {name} {status} recorded ({where})")
    except Exception as exc:
        warn("warning: fleet view not recorded: " + classify(exc)[1])
