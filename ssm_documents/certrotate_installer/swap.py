"""The swap (register, change, verify, undo on any failure) and the signal guard around it."""

import hashlib
import os
import signal
from typing import Any, Callable, Dict, Optional, Sequence

from .host_file import FaultInjector
from .journal import Journal, Phase
from .output import Interrupted, say
from .parameters import Action
from .path_policy import NEW_SUFFIX, PREVIOUS_SUFFIX, UNDO_SUFFIX, Target

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def sha256(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else hashlib.sha256(data).hexdigest()


class Swap:
    """Replace the three live files together, keeping what it takes to undo every step.

    For each target: ``NAME.certrotate-new`` is written (stage); the live file gets a second name
    ``NAME.certrotate-undo`` (a hard link: no copy, no space) and the new file is renamed over it
    (apply); on success the undo name becomes ``NAME.certrotate-previous`` when the old pair
    matched, else it is dropped (commit); on failure each undo name is renamed back (undo).
    Every phase is in the journal first, so the next run can finish or undo it after a SIGKILL.
    """

    def __init__(
        self,
        action: Action,
        targets: Sequence[Target],
        contents: Sequence[bytes],
        keep_previous: bool,
        journal: Journal,
        faults: FaultInjector,
    ) -> None:
        self.action = action
        self.targets = list(targets)
        self.contents = list(contents)
        self.keep_previous = keep_previous
        self.journal = journal
        self.faults = faults
        self.existed = [t.exists() for t in self.targets]
        self.new_hashes = [str(sha256(c)) for c in self.contents]
        self.phase: Optional[Phase] = None

    @classmethod
    def from_journal(
        cls, record: Dict[str, Any], targets: Sequence[Target], journal: Journal, faults: FaultInjector
    ) -> "Swap":
        swap = cls(
            Action(record["action"]), targets, [b""] * len(targets), bool(record["keep_previous"]), journal, faults
        )
        swap.existed = [bool(entry["existed"]) for entry in record["targets"]]
        swap.new_hashes = [str(entry["new_sha256"]) for entry in record["targets"]]
        swap.phase = Phase(record["phase"])
        return swap

    def record(self, phase: Phase) -> None:
        self.journal.write(
            {
                "version": 1,
                "action": self.action.value,
                "phase": phase.value,
                "keep_previous": self.keep_previous,
                "pid": os.getpid(),
                "targets": [
                    {"path": t.path, "kind": t.kind.name, "existed": existed, "new_sha256": digest}
                    for t, existed, digest in zip(self.targets, self.existed, self.new_hashes)
                ],
            }
        )
        self.phase = phase

    def stage(self) -> None:
        self.phase = Phase.STAGING  # a failure writing the first record leaves NAME.certrotate-new at most
        self.record(Phase.STAGING)
        for target, data in zip(self.targets, self.contents):
            target.write_new(data)
        self.faults.point("staged")

    def apply(self) -> None:
        self.record(Phase.SWAPPING)
        for target, existed in zip(self.targets, self.existed):
            if existed:
                target.remove(UNDO_SUFFIX)
                target.link("", UNDO_SUFFIX)
                self.faults.changed()
            target.rename(NEW_SUFFIX, "")
            self.faults.changed()
        for target in self.targets:
            target.sync_directory()
        self.record(Phase.SWAPPED)
        self.faults.point("swapped")

    def commit(self) -> None:
        """Record COMMITTING, then turn the undo names into the previous files.

        When the state file system is full the record cannot be written and the journal still
        says SWAPPED, which the next run would undo (taking the served certificate away): the
        commit then goes on without it (renames and unlinks need no space) and clears the
        journal; only when that fails too does the journal stay, and ``swap_in`` says what the
        next run will do with it.
        """
        try:
            self.record(Phase.COMMITTING)
        except OSError:
            self.faults.point("commit-record-failed")
        self.finish_commit()

    def finish_commit(self) -> None:
        for target in self.targets:
            if target.exists(UNDO_SUFFIX):
                if self.keep_previous:
                    target.rename(UNDO_SUFFIX, PREVIOUS_SUFFIX)
                    self.faults.changed()
                else:
                    target.remove(UNDO_SUFFIX)
            target.remove(NEW_SUFFIX)
            target.sync_directory()
        self.journal.clear()

    def undo(self) -> None:
        """Put every live file back as it was; idempotent, so recovery runs the same code."""
        for target, existed, digest in zip(self.targets, self.existed, self.new_hashes):
            if target.exists(UNDO_SUFFIX):
                if target.same_file(UNDO_SUFFIX, ""):
                    target.remove(UNDO_SUFFIX)  # linked, not yet replaced: rename would do nothing
                else:
                    target.rename(UNDO_SUFFIX, "")
            elif not existed and target.exists() and sha256(target.read()) == digest:
                target.remove("")
            target.remove(NEW_SUFFIX)
            target.sync_directory()
        self.journal.clear()


class SignalGuard:
    """Turns SIGTERM/SIGINT/SIGHUP into ``Interrupted``, except while an undo, a commit or the reload
    after an undo runs: those are the way back to a consistent host, so a signal then is ignored
    and the run ends as soon as they are done (SIGKILL is left to the journal)."""

    def __init__(self) -> None:
        self.deferred = False
        self.pending: Optional[int] = None

    def install(self) -> None:
        for signum in SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.deferred:
            raise Interrupted(signum)
        self.pending = signum

    def protect(self, work: Callable[[], None]) -> None:
        before = self.deferred
        self.deferred = True
        try:
            work()
        finally:
            self.deferred = before

    def hold(self) -> None:
        """From now on a signal is noted, not raised: the install is committed (or its failure is
        being recorded), and only the finishing steps are left."""
        self.deferred = True

    def report(self) -> None:
        if self.pending is not None:
            say(
                f"signal {signal.Signals(self.pending).name} arrived after the run was decided; "
                "it was finished first (the exit code says what it did)"
            )
