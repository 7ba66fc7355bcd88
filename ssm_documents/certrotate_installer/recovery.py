"""The way back: undo a failed run, recover a killed one, say what a failed commit left."""

import contextlib
import os
from typing import List, Optional, Sequence

from .certificate import CertificateFacts, live_facts
from .directories import open_directory
from .host import Host
from .journal import Phase
from .output import Exit, InstallError, classify, describe_os_error, say
from .path_policy import Target, TargetKind
from .served_check import RECHECK_SECONDS
from .swap import Swap


def reload_after_undo(host: Host, restored: Optional[CertificateFacts] = None) -> str:
    """Reload the server onto the restored files and, given the ``restored`` certificate, check that
    fresh connections get it (RECHECK_SECONDS); a failure here is reported, never raised."""
    title = host.server.title
    try:
        ok, _ = host.server.config_test()
        if not ok:
            return f"{title} was not reloaded: its config test fails with the restored files too"
        ok, _ = host.server.reload("graceful")
        if ok and restored is not None:
            proof = host.server.wait_for(restored, RECHECK_SECONDS)
            served = f"served on {proof.summary} fresh connections"
            if not proof.ok:
                served = "not served on every connection: " + proof.why(host.request.port)
            return f"{title} reloaded; the restored serial {restored.serial_hex} is {served}"
    except Exception as exc:  # the restore is done; say why the reload is not
        return f"{title} was not reloaded: {classify(exc)[1]}"
    return f"{title} reloaded" if ok else f"{title} did not reload"


def recover(host: Host) -> None:
    """Before anything else: undo (or finish) a run that was killed halfway.

    Raises:
        InstallError: ROLLBACK_INCOMPLETE when it cannot, the journal kept for the next run.
    """
    record = host.journal.read()
    if record is None:
        return
    targets: List[Target] = []
    try:
        try:
            for entry in record["targets"]:
                path = str(entry["path"])
                targets.append(
                    Target(TargetKind[entry["kind"]], path, open_directory(os.path.dirname(path), host.euid))
                )
            swap = Swap.from_journal(record, targets, host.journal, host.faults)
            host.server.files = tuple(t.path for t in targets if t.kind.parameter == "CertificateFile")
        except (KeyError, ValueError, TypeError) as exc:
            raise InstallError(
                Exit.ROLLBACK_INCOMPLETE,
                f"journal {host.journal.path} cannot be used ({exc}); inspect the certificate files by hand",
            ) from None
        try:
            if swap.phase is Phase.COMMITTING:
                host.guard.protect(swap.finish_commit)
                say(f"finished an interrupted {swap.action.value} (its certificate was served); previous files kept")
            else:
                host.guard.protect(swap.undo)
                note = ""
                if swap.phase is Phase.SWAPPED:
                    note = "; " + reload_after_undo(host)
                say(
                    "recovered an interrupted {} (stopped while {}): the files it replaced are back{}".format(
                        swap.action.value, swap.phase.value if swap.phase else "?", note
                    )
                )
        except OSError as exc:
            raise InstallError(
                Exit.ROLLBACK_INCOMPLETE,
                f"cannot recover an interrupted install ({describe_os_error(exc)}); "
                f"the journal {host.journal.path} is kept for the next run",
            ) from None
    finally:
        for target in targets:
            os.close(target.dir_fd)


def release(targets: Sequence[Target], host: Optional[Host], lock_fd: Optional[int]) -> None:
    """Close what a run opened (its directories, the host's descriptors, the lock), whatever happened."""
    for target in targets:
        os.close(target.dir_fd)
    if host is not None:
        host.close()
    if lock_fd is not None:
        os.close(lock_fd)


def roll_back(host: Host, swap: Swap, exc: BaseException) -> InstallError:
    code, reason = classify(exc)
    phase = swap.phase
    if phase is None:
        return InstallError(code, reason + "; nothing was changed")
    try:
        host.guard.protect(swap.undo)
    except Exception as undo_exc:
        return InstallError(
            Exit.ROLLBACK_INCOMPLETE,
            f"{reason}; restoring the previous files failed too ({classify(undo_exc)[1]}); "
            f"the journal {host.journal.path} is kept and the next run finishes the rollback",
        )
    if phase is Phase.STAGING:
        return InstallError(code, reason + "; no live file was changed")
    note = ""
    if phase is Phase.SWAPPED:
        notes: List[str] = []
        restored: Optional[CertificateFacts] = None
        with contextlib.suppress(OSError):
            certificate = swap.existed[0] and swap.targets[0].kind in (TargetKind.CERTIFICATE, TargetKind.COMBINED)
            restored = live_facts(swap.targets[0].read()) if certificate else None
        host.guard.protect(lambda: notes.append(reload_after_undo(host, restored)))
        note = f" ({notes[0]})" if notes else ""
        if not server_listens(host):
            return InstallError(
                Exit.SERVER_DOWN,
                f"{reason}; the previous certificate files are restored{note}, but {host.server.title} could not "
                f"be brought back onto them: nothing of it listens on port {host.request.port}",
            )
    return InstallError(code, f"{reason}; the previous certificate files are restored{note}")


def server_listens(host: Host) -> bool:
    """Whether a process of the server's own listens on the run's port (``Server.listeners``)."""
    try:
        return bool(host.server.listeners())
    except Exception:  # a failure to look is a failure to prove the server is back
        return False


def commit_failure_message(host: Host, swap: "Swap", exc: OSError) -> str:
    """What a failed commit left, in agreement with what the next run does with the journal."""
    served = f"the new certificate is served, but finishing the install failed ({describe_os_error(exc)})"
    phase = host.journal.phase()
    if phase == Phase.COMMITTING.value:
        return served + "; the next run finishes it (keeping the previous files) before anything else"
    if phase is None:
        return served + "; the previous files were not kept (*.certrotate-undo files may be left)"
    try:
        host.guard.protect(host.journal.clear)  # a journal saying "swapped" would make the next run undo the install
    except OSError:
        return (
            served + f"; the journal {host.journal.path} still says {phase}: the next run restores the previous "
            f"certificate files and reloads {host.server.title} (free space in the state directory and run again)"
        )
    return served + "; the previous files were not kept (*.certrotate-undo files may be left)"


def commit_under_guard(host: Host, swap: "Swap", served: str) -> None:
    """Commit a verified swap with signals held: from here on a signal cannot undo it.

    Raises:
        InstallError: WRITE_FAILED, saying what the failed commit left (``served`` travels on it).
    """
    failures: List[OSError] = []

    def commit() -> None:
        try:
            swap.commit()
        except OSError as exc:
            failures.append(exc)

    host.guard.protect(commit)
    host.guard.hold()  # committed (or as good as): a signal from here on cannot undo it
    if failures:
        raise InstallError(Exit.WRITE_FAILED, commit_failure_message(host, swap, failures[0]), served) from None
