"""One run's host: its request, settings, server, state directory and lock (set once, never
changed by the run); and ``Outcome``, the value a run returns."""

import errno
import fcntl
import json
import os
import stat
from typing import Any, NamedTuple, Optional, Tuple

from .certificate import CertificateFacts
from .directories import open_directory, owners, read_regular
from .host_file import FaultInjector, HostConfig
from .journal import Journal, replace_state_file
from .output import Exit, InstallError, refused, warn
from .parameters import Action, Request
from .servers.base import Server
from .swap import SignalGuard

LOCK_NAME = "install.lock"


class Outcome(NamedTuple):
    """What this run leaves the host serving: the input of every finishing step."""

    action: Action
    changed: bool
    facts: CertificateFacts
    targets: Tuple[str, str, str]
    port: int
    previous_kept: bool
    replaced: Optional[CertificateFacts] = None  # what the certificate file served before (kept as previous)
    served_check: str = ""  # the run's served-truth check's summary (the fleet record's ServedCheck)


class Host:
    """Everything one run works with, opened and checked once."""

    def __init__(self, request: Request, config: HostConfig, server: Server, euid: int, guard: SignalGuard) -> None:
        self.request = request
        self.config = config
        self.server = server
        self.euid = euid
        self.guard = guard
        self.faults = FaultInjector(config.fault)
        # The root-only state directory: the journal's, and the last place for an unnamed file
        # (``validation._memory_file``'s ``spare``, handed to each check that makes one).
        self.journal_fd = open_directory(config.journal_dir, euid, create_mode=0o700)
        self.journal = Journal(self.journal_fd, config.journal_dir)

    def close(self) -> None:
        os.close(self.journal_fd)

    def read_state(self, name: str) -> Any:
        """A JSON file of the state directory (None when absent or not JSON, with a warning)."""
        path = os.path.join(self.config.journal_dir, name)
        data = read_regular(self.journal_fd, name, path)
        if data is None:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            warn(f"warning: {path} is not valid JSON; starting it again from this run")
            return None

    def write_state(self, name: str, value: Any) -> None:
        replace_state_file(self.journal_fd, name, json.dumps(value, sort_keys=True).encode("utf-8"))


def acquire_lock(config: HostConfig, euid: int) -> int:
    """The host's one install lock, on a descriptor no child inherits (O_CLOEXEC).

    Raises:
        InstallError: BUSY when another run holds it, REFUSED when it is not ours.
    """
    dir_fd = open_directory(config.lock_dir, euid, create_mode=0o700)
    path = os.path.join(config.lock_dir, LOCK_NAME)
    try:
        fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refused(f"lock {path} is a symbolic link") from None
        raise
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, euid):
        os.close(fd)
        raise refused(f"lock {path} is not a regular file of {owners(euid)}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise InstallError(Exit.BUSY, f"another certrotate install is running on this host (lock {path})") from None
        raise
    return fd
