"""An install and a rollback: read and check everything, swap the files in, and return the
``Outcome`` (what the finishers print and record)."""

import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from .aws_cli import fetch_secret
from .certificate import KEY_LABELS, CertificateFacts, live_facts, pem, pem_blocks
from .fleet_record import INVENTORY_STATE
from .host import Host, Outcome
from .output import Exit, InstallError, classify, out, refused, say, warn
from .parameters import Action
from .path_policy import PREVIOUS_SUFFIX, Target, target_files
from .recovery import commit_under_guard, roll_back
from .served_check import RECHECK_SECONDS
from .swap import Swap
from .validation import Bundle, check_existing_content, key_matches, parse_bundle, validate_bundle

MANAGED_NAME = "managed.json"  # the target paths certrotate created or installed on this host


def managed_paths(host: Host) -> Set[str]:
    """The files certrotate may replace: those it created or installed on this host (the state
    directory's ``managed.json``; before it existed, the files of the fleet records of successful
    runs) and those the host file names in ``managed_files``."""
    return set(host.config.managed_files) | recorded_managed(host)


def recorded_managed(host: Host) -> Set[str]:
    paths: Set[str] = set()
    recorded = host.read_state(MANAGED_NAME)
    if isinstance(recorded, list):
        paths.update(entry for entry in recorded if isinstance(entry, str))
    elif recorded is None:
        state = host.read_state(INVENTORY_STATE)
        records = state.get("records") if isinstance(state, dict) else state
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict) and record.get("Status") in ("installed", "unchanged", "rolled-back"):
                paths.update(str(record.get(key, "")) for key in ("CertificateFile", "KeyFile", "ChainFile"))
    return paths


def remember_managed(host: Host, targets: Sequence[Target]) -> None:
    """Record the files this run installed as certrotate's own; a failure to record is a warning."""
    try:
        paths = recorded_managed(host) | {target.path for target in targets}
        host.guard.protect(lambda: host.write_state(MANAGED_NAME, sorted(p for p in paths if isinstance(p, str))))
    except (OSError, InstallError) as exc:
        warn("warning: the installed files were not recorded as certrotate's own: " + classify(exc)[1])


def read_live(host: Host, targets: Sequence[Target]) -> List[Optional[bytes]]:
    """The live files; an existing one must be certrotate's own (see ``managed_paths``) and of its kind.

    Raises:
        InstallError: REFUSED.
    """
    live: List[Optional[bytes]] = []
    managed: Optional[Set[str]] = None
    for target in targets:
        data = target.read()
        if data is not None:
            check_existing_content(target.kind, data, target.path)
            managed = managed_paths(host) if managed is None else managed
            if target.path not in managed:
                raise refused(
                    f"{target.path} ({target.kind.parameter}) exists and was not created or installed by certrotate; "
                    f"certrotate replaces only its own files, or those {host.config.source} names in managed_files"
                )
        live.append(data)
    return live


def old_pair_matches(host: Host, live: Sequence[Optional[bytes]]) -> bool:
    """Whether the live files may become the previous files: all present, key matching."""
    if any(data is None for data in live):
        return False
    certificate, key = live[0], live[-1] if len(live) == 1 else live[1]
    assert certificate is not None and key is not None
    return key_matches(certificate, key, host.journal_fd)


def swap_in(host: Host, targets: Sequence[Target], bundle: Bundle, keep_previous: bool) -> str:
    """Stage, swap, config test, reload, prove over TLS; undo everything on any failure. Returns the
    served-truth check's summary; a failure (``InstallError``) carries it too, once the check ran.
    """
    swap = Swap(
        host.request.action, targets, layout_contents(bundle, targets), keep_previous, host.journal, host.faults
    )
    mode = host.request.reload_mode
    served = ""
    try:
        swap.stage()
        swap.apply()
        ok, output = host.server.config_test()
        if not ok:
            for line in output.strip().splitlines()[-3:]:
                warn("  " + line)
            raise InstallError(Exit.CONFIG_TEST_FAILED, host.server.title + " config test failed")
        ok, output = host.server.reload(mode)
        if not ok:
            lines = [line for line in output.splitlines() if line.strip()]
            detail = ": " + lines[-1] if lines else ""
            raise InstallError(Exit.RELOAD_FAILED, f"{host.server.title} {mode} failed{detail}")
        host.faults.point("reloaded")
        proof = host.server.wait_for(bundle.facts)
        served = proof.summary
        if not proof.ok:
            why = proof.why(host.request.port)
            raise InstallError(Exit.RELOAD_FAILED, host.server.title + " does not serve the new certificate: " + why)
    except BaseException as exc:  # every failure after the first change is undone
        raise roll_back(host, swap, exc).with_served_check(served) from None
    commit_under_guard(host, swap, served)
    remember_managed(host, targets)
    return served


BUNDLE_FIELDS = ("CERTIFICATE_PEM", "PRIVATE_KEY_PEM", "CERTIFICATE_CHAIN_PEM")


def layout_contents(bundle: Bundle, targets: Sequence[Target]) -> List[bytes]:
    """Pure: what each target holds: the three files, or one file of certificate, chain and key."""
    if len(targets) == 1:
        return [bundle.certificate + bundle.chain + bundle.key]
    return list(bundle.contents())


def split_saved(saved: Sequence[bytes]) -> Tuple[str, str, str]:
    """The certificate, key and chain texts of saved files (one combined file: its blocks).

    Raises:
        ValueError: UnicodeDecodeError on non-ASCII content.
    """
    texts = [data.decode("ascii") for data in saved]
    if len(texts) == 3:
        return texts[0], texts[1], texts[2]
    blocks = pem_blocks(texts[0], "the saved combined file")
    certificates = [pem(label, der) for label, der in blocks if label == "CERTIFICATE"]
    keys = [pem(label, der) for label, der in blocks if label in KEY_LABELS]
    rest = [label for label, _ in blocks if label != "CERTIFICATE" and label not in KEY_LABELS]
    if rest or not certificates:
        raise ValueError("the saved combined file holds other blocks than certificates and one key")
    return certificates[0].decode(), b"".join(keys).decode(), b"".join(certificates[1:]).decode()


def check_in_place(host: Host, facts: CertificateFacts) -> str:
    """The served-truth check of a certificate already installed (nothing reloaded): its summary,
    for the fleet view; a failure is a warning, since the files are right and nothing is undone."""
    proof = host.server.wait_for(facts, RECHECK_SECONDS)
    if not proof.ok:
        why = proof.why(host.request.port)
        warn(f"warning: the installed certificate is not served on every connection: {why}; reload or restart")
    return proof.summary


def run_install(host: Host, targets: Sequence[Target]) -> Outcome:
    fields = fetch_secret(host.request, host.server.env)
    try:
        bundle = parse_bundle(
            fields[BUNDLE_FIELDS[0]], fields[BUNDLE_FIELDS[1]], fields[BUNDLE_FIELDS[2]], BUNDLE_FIELDS
        )
    except ValueError as exc:
        raise InstallError(Exit.BUNDLE_INVALID, str(exc)) from None
    validate_bundle(bundle, time.time(), host.config.ca_pins, host.journal_fd)
    live = read_live(host, targets)
    files = target_files(targets)
    port = host.request.port
    if live == layout_contents(bundle, targets):
        served = check_in_place(host, bundle.facts)
        return Outcome(Action.INSTALL, False, bundle.facts, files, port, False, served_check=served)
    keep = old_pair_matches(host, live)
    served = swap_in(host, targets, bundle, keep)
    return Outcome(Action.INSTALL, True, bundle.facts, files, port, keep, live_facts(live[0]), served)


def run_rollback(host: Host, targets: Sequence[Target]) -> Outcome:
    saved: List[bytes] = []
    for target in targets:
        data = target.read(PREVIOUS_SUFFIX)
        if data is None:
            raise InstallError(Exit.NOTHING_TO_ROLL_BACK, f"no previous file to restore for {target.path}")
        saved.append(data)
    files = target_files(targets)
    names = (files[0] + PREVIOUS_SUFFIX, files[1] + PREVIOUS_SUFFIX, files[2] + PREVIOUS_SUFFIX)
    try:
        bundle = parse_bundle(*split_saved(saved), names)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InstallError(
            Exit.BUNDLE_INVALID, f"the saved previous files are not a valid pair ({exc}); nothing was changed"
        ) from None
    try:
        validate_bundle(bundle, time.time(), host.config.ca_pins, host.journal_fd)
    except InstallError as exc:
        raise InstallError(
            Exit.BUNDLE_INVALID, f"the saved previous files are not a valid pair ({exc.message}); nothing was changed"
        ) from None
    live = read_live(host, targets)
    keep = old_pair_matches(host, live)
    served = swap_in(host, targets, bundle, keep)
    return Outcome(Action.ROLLBACK, True, bundle.facts, files, host.request.port, keep, live_facts(live[0]), served)


RUNS: Dict[Action, Callable[[Host, Sequence[Target]], Outcome]] = {
    Action.INSTALL: run_install,
    Action.ROLLBACK: run_rollback,
}


def print_outcome(host: Host, outcome: Outcome) -> None:
    facts = outcome.facts
    if not outcome.changed:
        say(f"certificate serial {facts.serial_hex} is already installed; nothing changed")
    elif outcome.action is Action.INSTALL:
        say(f"installed; {host.server.title} on port {outcome.port} serves:")
    else:
        say(f"rolled back; {host.server.title} on port {outcome.port} serves:")
    out(f"  subject=CN={facts.common_name}")
    out(f"  serial={facts.serial_hex}")
    out("  notAfter={}".format(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(facts.not_after))))
    out(f"  SHA256 Fingerprint={facts.fingerprint}")
    if outcome.changed:
        kept = (
            "previous kept as *" + PREVIOUS_SUFFIX
            if outcome.previous_kept
            else f"the replaced files were not a matching pair, so the *{PREVIOUS_SUFFIX} files were left as they were"
        )
        if len(set(outcome.targets)) == 1:
            say(f"file written: {outcome.targets[0]} (0600: certificate, chain and key); {kept}")
        else:
            say(f"files written: {outcome.targets[0]} {outcome.targets[1]} (0600) {outcome.targets[2]}; {kept}")
    sys.stdout.flush()
